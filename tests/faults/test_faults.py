"""Fault injection through the real CLI on the local test host (`scripts/faults`).

Every fault is injected while users hit the site. A fault is *survived* when production
kept serving and `pulumi refresh` + `pulumi up` converge afterwards with no orphaned
container or split file. The summary line at the end counts faults, survivals, bad
inputs and lost requests (requests lost while the Docker daemon restarts are reported
apart: no deployment tool can serve through that).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from pulumi import automation as auto

from canary.config_fields import FIELDS, bad_input_batches, names_key
from canary.remote.ssh import ConnectionFailed, Host, Target
from tests.e2e.harness import (TESTHOST, TESTHOST_DIR, Deployment, Load, containers, program_processes, reset_host,
                               served_versions, sh, split_exists, ssh_commands)

from .conftest import record


def when_logged(d: Deployment, needle: str, action, timeout: float = 120) -> threading.Thread:
    """Runs `action` once a line containing `needle` appears in the update's output."""
    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in list(d.log)):
                action()
                return
            time.sleep(0.1)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def converge(d: Deployment) -> dict[str, bool]:
    """refresh + up leave the host as the stack says: production serving, no orphans.
    Runs them (once per call); returns what must hold afterwards, by name, for record()."""
    d.cli("cancel", "--yes", check=False)
    d.refresh()
    try:
        d.up()
    except auto.CommandError:
        pass  # a recorded rollback fails the run, by design
    out = d.outputs()
    held = out["phase"] in ("holding", "inconclusive")
    expected = {"odoo": out["production_image"]}
    if held:
        expected["odoo-canary"] = out["canary_image"]
    serving = set(served_versions(20)) <= {out["production_image"].replace(":", " "),
                                           (out["canary_image"] or "-").replace(":", " ")}
    return {"after refresh + up: the app's containers are the stack's": containers() == expected,
            "after refresh + up: a split file only while a canary is held": split_exists() == held,
            "after refresh + up: only production's or the canary's version answers": serving}


@pytest.fixture
def d(tmp_path):
    reset_host()
    dep = Deployment(tmp_path)
    dep.up()
    dep.set(image_tag="v2", monitoring_duration="10s", check_interval="2s")
    yield dep
    reset_host()


def test_canary_crashes_mid_analysis(d):
    when_logged(d, "check 1/", lambda: sh("docker rm -f odoo-canary"))
    with Load() as load:
        with pytest.raises(auto.CommandError):
            d.up()
    out = d.outputs()
    record("canary container crashes mid-analysis",
           {"the canary is rolled back": out["phase"] == "rolled_back",
            "v1 stays production": out["production_image"] == "canary-demo:v1", **converge(d)},
           lost=load.failures)


def test_ssh_connection_drops_mid_analysis(d):
    # sshd's per-connection processes die; the listener stays (a network blip).
    when_logged(d, "check 2/", lambda: sh("pkill -f 'sshd: [r]oot@notty' || true"))
    with Load() as load:
        try:
            d.up()
        except auto.CommandError:
            pass
    out = d.outputs()
    # Promoted only on complete data: the analysis ran all its checks.
    complete = out["phase"] != "promoted" or out["analysis"]["checks"] == 5
    record("SSH connection drops mid-analysis",
           {"promoted only after all 5 checks ran": complete, **converge(d)}, lost=load.failures)


def _cli_up(d: Deployment) -> subprocess.Popen:
    return subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--stack", "e2e", "--non-interactive"],
                            cwd=d.project, env={**os.environ, **d.env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_cli_when(d: Deployment, needle: str) -> bool:
    cli = _cli_up(d)
    seen = ""
    deadline = time.monotonic() + 120
    while needle not in seen and time.monotonic() < deadline:
        line = cli.stdout.readline()
        if not line:
            break
        seen += line
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    time.sleep(3)
    return needle in seen


@pytest.mark.parametrize("moment", ["check 2/", "promoting"])
def test_pulumi_up_killed(d, moment):
    with Load() as load:
        killed = _kill_cli_when(d, moment)
        time.sleep(2)
    leftover = program_processes(d.project)
    record(f"pulumi up killed mid-{'analysis' if 'check' in moment else 'promotion'}",
           {f"the CLI got to {moment!r} before it was killed": killed,
            "no program or provider process of the killed run left": not leftover, **converge(d),
            "v2 is production after the next up": d.outputs()["production_image"] == "canary-demo:v2"},
           lost=load.failures)


def test_nginx_reload_fails(d):
    broken = "/etc/nginx/conf.d/zz-injected.conf"
    when_logged(d, "is healthy", lambda: sh(f"echo 'upstream broken {{ server 127.0.0.1:0 weight=x; }}' > {broken}"))
    with Load() as load:
        with pytest.raises(auto.CommandError) as failed:
            d.up()
    checks = {"the update fails naming nginx -t": "nginx -t" in str(failed.value),
              "the split file is removed again": not split_exists(),
              "v1 answers all of 20 requests after": served_versions(20) == {"canary-demo v1": 20}}
    sh(f"rm -f {broken}")
    record("nginx -t fails on a change (bad config injected)", {**checks, **converge(d)}, lost=load.failures)


def test_docker_daemon_restarts_mid_analysis(d):
    def restart():
        sh("pkill -TERM -x dockerd; while pgrep -x dockerd >/dev/null; do sleep 0.2; done; "
           f"bash {TESTHOST} start >/dev/null 2>&1")
    when_logged(d, "check 1/", restart)
    with Load() as load:
        try:
            d.up()
        except auto.CommandError:
            pass
    # Docker brings the containers back by itself once it runs again: the update may
    # have ended before that (its cleanup could not reach the daemon), so wait for it.
    deadline = time.monotonic() + 60
    while not (back := bool({"canary-demo v1", "canary-demo v2"} & set(served_versions(10)))) \
            and time.monotonic() < deadline:
        time.sleep(1)
    record("Docker daemon restarts mid-analysis",
           {"the site answers again (v1 or v2) after the restart": back, **converge(d)},
           lost=load.failures, outage=True)


def test_canary_port_is_taken(d):
    squatter = subprocess.Popen(["python3", "-m", "http.server", "8070", "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        with Load() as load:
            with pytest.raises(auto.CommandError) as failed:
                d.up()
        checks = {"the error names port 8070": "port 8070" in str(failed.value),
                  "the error says the port is taken": "taken" in str(failed.value),
                  "production v1 is the only container": containers() == {"odoo": "canary-demo:v1"},
                  "no split file": not split_exists()}
    finally:
        squatter.terminate()
    record("canary port already taken", {**checks, **converge(d)}, lost=load.failures)


def test_two_updates_of_one_stack(d):
    d.set(monitoring_duration="20s")
    first = _cli_up(d)
    time.sleep(8)
    second = d.cli("up", "--yes", "--skip-preview", check=False)
    first.communicate(timeout=180)
    record("two `pulumi up` on the same stack",
           {"the second up fails": second.returncode != 0,
            "the second up says the stack is locked": "locked" in (second.stdout + second.stderr),
            **converge(d)})


def test_two_stacks_on_one_host_and_app(d, tmp_path):
    d.set(monitoring_duration="30s")
    first = _cli_up(d)
    time.sleep(8)
    other = Deployment(tmp_path / "other", name="other")
    with pytest.raises(auto.CommandError) as refused:
        other.up()
    first.communicate(timeout=180)
    text = str(refused.value)
    clear = "host lock" in text or "managed by another stack" in text or "managed by stack" in text
    record("two stacks aimed at one host and app",
           {"the other stack is refused: host lock or managed by another stack": clear, **converge(d)})


# -- hostile and bad input ------------------------------------------------------------------
def test_every_key_rejects_bad_input_at_preview(tmp_path):
    """Every key of FIELDS with each of its bad examples (shell metacharacters, wrong
    types, out of range, ...). Per bad value, one preview with every key that refuses it
    set to it: the program reports every invalid key at once, so each (key, value) is
    rejected iff its key is named."""
    reset_host()
    dep = Deployment(tmp_path, echo=False)
    base = dict(dep.stack.get_all_config())
    batches = bad_input_batches()
    tried = rejected = 0
    for values in batches.values():
        dep.stack.set_all_config({**base, **{f"canary:{k}": auto.ConfigValue(value=v)
                                             for k, v in values.items()}})
        before = ssh_commands()
        message = dep.preview_error()
        untouched = ssh_commands() == before
        # The next preview sees the base and its own values only.
        added = [f"canary:{k}" for k in values if f"canary:{k}" not in base]
        if added:
            dep.stack.remove_all_config(added)
        for key, value in values.items():
            tried += 1
            if names_key(message, key) and untouched:
                rejected += 1
            else:
                print(f"NOT REJECTED: {key} = {value[:40]!r}")
    keys = {k for values in batches.values() for k in values}
    print(f"bad inputs: {len(keys)} of {len(FIELDS)} keys, {tried} values in {len(batches)} previews")
    record("bad inputs", rejected == tried and keys == {f.name for f in FIELDS}, 0, inputs=(tried, rejected))
    assert containers() == {}


# -- secrets and trust ----------------------------------------------------------------------
def test_secrets_never_leak(tmp_path):
    reset_host()
    dep = Deployment(tmp_path)
    key_line = (TESTHOST_DIR / "id_ed25519").read_text().splitlines()[1]
    dep.set(ssh_private_key_file="")
    dep.stack.set_config("canary:ssh_private_key",
                         auto.ConfigValue(value=(TESTHOST_DIR / "id_ed25519").read_text(), secret=True))
    dep.set_secret("env.DB_PASSWORD", "hunter2-very-secret")
    dep.set(notify_allow_local="true")
    dep.set_secret("notify_webhook", "http://127.0.0.1:9/hooks/webhook-secret-path")
    seen = []
    stop = threading.Event()

    def watch_processes():
        while not stop.is_set():
            seen.append(sh("ps -eo args", check=False))
            time.sleep(0.2)

    t = threading.Thread(target=watch_processes, daemon=True)
    t.start()
    dep.up()
    dep.set(image_tag="broken")
    with pytest.raises(auto.CommandError):
        dep.up()
    stop.set()
    t.join()
    places = {"exported state": dep.export(), "pulumi up output": "\n".join(dep.log),
              "stack outputs": str(dep.cli("stack", "output", "--json").stdout),
              "host process list": "\n".join(seen)}
    secrets = {"ssh key": key_line, "env value": "hunter2-very-secret", "webhook": "webhook-secret-path"}
    leaks = [f"{s} in {p}" for p, text in places.items() for s, v in secrets.items() if v in text]
    env_file = sh("stat -c %a /var/lib/canary/odoo/odoo.env").strip()
    record("secrets kept out of state, output, outputs and process list",
           {"no secret in state, output, outputs or the process list": not leaks,
            "the env file is mode 600": env_file == "600"}, leaks=leaks)


def test_unknown_host_key_is_refused_by_the_provider():
    other = TESTHOST_DIR / "not-the-host"
    if not other.exists():
        sh(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    target = Target("127.0.0.1", 2222, "root", wrong, (TESTHOST_DIR / "id_ed25519").read_text())
    before = ssh_commands()
    with pytest.raises(ConnectionFailed) as refused:
        Host(target, retries=1).run(["true"])
    record("changed host key refused (release provider)",
           {"refused as not the pinned host key": "not the pinned" in str(refused.value),
            "no command ran on the host": ssh_commands() == before})
