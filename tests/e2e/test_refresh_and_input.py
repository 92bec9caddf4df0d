"""Refresh tells the truth, interrupted updates converge, bad input changes nothing."""

import os
import signal
import subprocess
import time

import pytest
from pulumi import automation as auto

from .harness import (ROOT, container_id, containers, program_processes, served_versions,
                      session_processes, sh, split_exists, ssh_commands)


def test_refresh_then_up_after_the_guides_manual_rollback(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2", auto_promote="false")
    d.up()
    assert d.outputs()["phase"] == "holding"
    # The guide's "Manual Rollback", typed on the droplet.
    sh("docker stop odoo-canary && docker rm odoo-canary && "
       "rm /etc/nginx/conf.d/odoo-canary.conf && nginx -s reload")
    assert served_versions(20) == {"canary-demo v1": 20}
    d.refresh()
    out = d.outputs()
    assert out["phase"] == "aborted" and out["canary_image"] == ""
    # Converge to the config (a held v2 canary at 10 %): one canary, one split file.
    d.up()
    assert d.outputs()["phase"] == "holding"
    assert containers() == {"odoo": "canary-demo:v1", "odoo-canary": "canary-demo:v2"}
    d.preview(expect_no_changes=True)


def test_refresh_shows_a_container_changed_by_hand(deployment):
    d = deployment
    d.up()
    sh("docker rm -f odoo && docker run -d --name odoo -p 127.0.0.1:8069:8069 canary-demo:v2")
    r = d.cli("refresh", "--preview-only", "--diff")
    assert "canary-demo:v1" in r.stdout and "canary-demo:v2" in r.stdout, r.stdout
    d.refresh()
    assert d.outputs()["production_image"] == "canary-demo:v2"
    # A container started by hand (no stack label) is not touched without `adopt`...
    with pytest.raises(auto.CommandError) as refused:
        d.up()
    assert "adopt" in str(refused.value) and containers() == {"odoo": "canary-demo:v2"}
    # ...and with it, the config (still v1) wins: up converges back to it.
    d.set(adopt="true")
    d.up()
    assert containers() == {"odoo": "canary-demo:v1"}


def test_killed_mid_analysis_resumes_with_the_same_canary(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2", monitoring_duration="40s", check_interval="2s")
    cli = subprocess.Popen(["pulumi", "up", "--yes", "--stack", "e2e", "--non-interactive"],
                           cwd=d.project, env={**os.environ, **d.env}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = ""
    deadline = time.monotonic() + 120
    while "check 2/" not in seen and time.monotonic() < deadline:
        seen += cli.stdout.readline()
    assert "check 2/" in seen, seen
    canary = container_id("odoo-canary")
    os.kill(cli.pid, signal.SIGKILL)  # the CLI only: its plugins must notice and stop
    cli.wait()
    time.sleep(3)
    leftover = program_processes(d.project)
    assert leftover == [], "no provider or program goes on after the CLI is gone"
    # Nothing acts on the host any more: no new SSH session in the next seconds.
    sessions, lingering = ssh_commands(), session_processes(cli.pid)
    time.sleep(10)
    assert ssh_commands() == sessions, "a process opened an SSH session after the CLI died"
    print("still alive 13 s after kill -9 of the CLI:", lingering or "nothing")
    # Only Pulumi's own Go plugins may linger, idle: they check the engine every 5 minutes
    # (rpcutil.Healthcheck) and exit then; the docker provider's idle `ssh` carries its
    # dial-stdio connection until it does.
    official = ("pulumi-language-python", "pulumi-resource-command", "pulumi-resource-docker", "ssh")
    assert all(p.split()[1].rsplit("/", 1)[-1] in official for p in lingering), lingering
    sh(f"pkill -KILL -s {cli.pid} || true")
    # Production never stopped serving.
    assert set(served_versions(30)) <= {"canary-demo v1", "canary-demo v2"}
    d.cli("cancel", "--yes", check=False)
    d.refresh()
    assert d.outputs()["phase"] == "interrupted"
    d.set(monitoring_duration="6s")
    d.up()
    out = d.outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "canary-demo:v2"
    assert any("reusing the running canary" in line for line in d.log)
    assert canary is not None
    assert containers() == {"odoo": "canary-demo:v2"}
    assert not split_exists()


BAD_INPUTS = [
    ("canary_percentage", "-1"), ("canary_percentage", "101"), ("canary_percentage", "abc"),
    ("image_tag", "v2;reboot"), ("image_tag", "$(reboot)"), ("image_tag", "`id`"),
    ("image_tag", "a b"), ("image_tag", "x" * 200), ("monitoring_duration", "soon"),
    ("error_threshold", "150"), ("auto_promote", "maybe"), ("host", "example.com;id"),
    ("ssh_host_key", "not-a-key"), ("container_name", "odoo|id"), ("health_path", "/x\n/y"),
    ("server_name", "a.com; include /etc/passwd"), ("ssh_port", "70000"),
]


@pytest.mark.parametrize("key,value", BAD_INPUTS)
def test_bad_input_fails_preview_naming_the_key_and_touches_nothing(deployment, key, value):
    d = deployment
    d.set(**{key: value})
    before = ssh_commands()
    with pytest.raises(auto.CommandError) as failed:
        d.preview()
    assert f"canary:{key}" in str(failed.value), str(failed.value)
    assert ssh_commands() == before, "no command reached the host"
    assert containers() == {}


def test_missing_or_wrong_host_key_is_refused(deployment, tmp_path):
    d = deployment
    d.set(ssh_host_key_file=str(tmp_path / "missing.pub"))
    with pytest.raises(auto.CommandError) as failed:
        d.preview()
    assert "canary:ssh_host_key" in str(failed.value)
    # A well-formed key that is not the host's: the connection is refused before login.
    other = tmp_path / "other"
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    d.set(ssh_host_key_file=f"{other}.pub")
    before = ssh_commands()
    with pytest.raises(auto.CommandError) as refused:
        d.up()
    assert "host key" in str(refused.value).lower(), str(refused.value)
    assert ssh_commands() == before
    assert containers() == {}
    assert ROOT.exists()


def test_preview_runs_nothing_on_the_host(deployment):
    d = deployment
    before = ssh_commands()
    d.preview()  # a fresh stack: everything to create
    assert ssh_commands() == before
    d.up()
    d.set(image_tag="v2", listen_port="8089")
    before = ssh_commands()
    d.preview(diff=True)
    assert ssh_commands() == before, "a preview only reads the stack"
    assert containers() == {"odoo": "canary-demo:v1"}
