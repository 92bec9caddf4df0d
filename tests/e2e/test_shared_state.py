"""Shared state for a team: two clones of the project (two project directories, as a CI
runner and a laptop) deploy the same stack through Pulumi's PostgreSQL state backend on
the test host. While one `pulumi up` runs a canary, the other is refused by the stack
lock, saying who holds it, and changes nothing; afterwards the second clone sees the
first one's outputs, a preview from it is clean, and it deploys the next tag itself."""

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from base64 import b64decode
from urllib.parse import urlsplit

import pytest

from .harness import (Deployment, Load, container_id, containers, postgres, postgres_backend,
                      reset_host, served_versions, sh, split_exists)

STACK_FILE = "Pulumi.e2e.yaml"
UP = ("up", "--yes", "--skip-preview")


@pytest.fixture
def shared_backend():
    """The test host's PostgreSQL backend, with a table of this test's own (dropped after)."""
    table = f"e2e_{uuid.uuid4().hex[:12]}"
    reset_host()
    yield postgres_backend(table), table
    reset_host()
    postgres(f"DROP TABLE IF EXISTS {table}")
    sh("docker rmi canary-demo:v3", check=False)


def locks(table: str) -> list[dict]:
    """The stack locks the backend holds: rows of the state table under .pulumi/locks/."""
    rows = postgres(f"SELECT data->>'data' FROM {table} WHERE key LIKE '%.pulumi/locks/%'")
    return [json.loads(b64decode(row)) for row in rows.split()]


def salt(project) -> str:
    lines = (project / STACK_FILE).read_text().splitlines()
    return next(line for line in lines if line.startswith("encryptionsalt:"))


def test_two_clones_share_one_stack_and_its_lock(tmp_path, shared_backend):
    url, table = shared_backend
    password = urlsplit(url).password
    assert url.startswith("postgres://pulumi:") and "@127.0.0.1:" in url

    # Clone A creates the stack in the shared database and deploys v1; its config has
    # a secret, so the second clone must decrypt with the same passphrase and salt.
    a = Deployment(tmp_path / "a", backend_url=url, config={"monitoring_duration": "20s"})
    a.set_secret("env.DB_PASSWORD", "shared-secret-42")
    a.up()
    assert a.outputs()["production_image"] == "canary-demo:v1"
    assert postgres(f"SELECT count(*) FROM {table} WHERE key LIKE '%.pulumi/stacks/canary/e2e.json'").strip() != "0"

    # A commits the next release (image_tag v2) with its stack file; clone B checks it
    # out (the copy is what `git pull` does) and selects the existing stack.
    a.set(image_tag="v2")
    (tmp_path / "b" / "project").mkdir(parents=True)
    shutil.copy(a.project / STACK_FILE, tmp_path / "b" / "project" / STACK_FILE)
    b = Deployment(tmp_path / "b", backend_url=url,
                   config={"monitoring_duration": "20s", "image_tag": "v2"})
    assert b.project != a.project
    assert salt(b.project) == salt(a.project)
    config_a = json.loads(a.cli("config", "--json", "--show-secrets").stdout)
    config_b = json.loads(b.cli("config", "--json", "--show-secrets").stdout)
    assert config_b == config_a
    assert config_b["canary:env"]["secret"] and "shared-secret-42" in json.dumps(config_b["canary:env"])
    assert b.cli("stack", "ls").stdout.count("e2e") == 1, "one stack, seen from both clones"

    # A's `pulumi up`: a canary of v2 analysed for 20 s, with users on the site.
    log = tmp_path / "a-up.log"
    with Load() as load, open(log, "w") as out:
        first = subprocess.Popen(["pulumi", *UP, "--stack", "e2e", "--non-interactive"],
                                 cwd=a.project, env={**os.environ, **a.env},
                                 stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 90
            while not ("odoo-canary" in containers() and split_exists()):
                assert first.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no canary within 90 s:\n" + log.read_text()
                time.sleep(0.5)
            # The lock is a row in the shared database, held by A's CLI.
            held = locks(table)
            assert [(lk["pid"], lk["hostname"]) for lk in held] == [(first.pid, socket.gethostname())]
            before = {name: container_id(name) for name in containers()}

            # B's `pulumi up` of the same stack meanwhile: refused, nothing touched.
            t0 = time.monotonic()
            second = b.cli(*UP, check=False)
            refused_after = time.monotonic() - t0
            assert first.poll() is None, "A's update was still running when B was refused"
            message = second.stdout + second.stderr
            print(f"second `pulumi up` refused after {refused_after:.2f} s:\n{message}")
            assert second.returncode != 0
            assert "the stack is currently locked by 1 lock(s)" in message, message
            assert "Either wait for the other process(es) to end" in message, message
            who = f"created by {getpass.getuser()}@{socket.gethostname()} (pid {first.pid})"
            assert who in message, message
            assert "postgres://****:****@127.0.0.1" in message, "the lock's address, credentials hidden"
            assert password not in message
            assert refused_after < 30, refused_after
            assert {name: container_id(name) for name in containers()} == before
            assert locks(table) == held
        finally:
            first.wait(timeout=300)
    output = log.read_text()
    assert first.returncode == 0, output
    print(f"A's update took its course while B was refused:\n{output[-1500:]}")

    # A's update was not disturbed: promoted, exactly the expected containers, no drops.
    out_a = a.outputs()
    assert out_a["phase"] == "promoted", out_a["message"]
    assert out_a["production_image"] == "canary-demo:v2"
    assert out_a["previous_image"] == "canary-demo:v1"
    assert out_a["analysis"]["decision"] == "pass"
    assert containers() == {"odoo": "canary-demo:v2"}
    assert not split_exists()
    assert served_versions(20) == {"canary-demo v2": 20}
    assert load.failures == 0, load.statuses
    assert locks(table) == [], "the lock is released when the update ends"

    # B sees A's result, and the stack matches B's checkout: nothing to change.
    outputs_a = json.loads(a.cli("stack", "output", "--json", "--show-secrets").stdout)
    outputs_b = json.loads(b.cli("stack", "output", "--json", "--show-secrets").stdout)
    assert outputs_b == outputs_a
    assert outputs_b["production_image"] == "canary-demo:v2"
    b.cli("preview", "--expect-no-changes")

    # Why the stack file is committed: a checkout without it selects the stack and reads
    # its outputs from the database, but `stack select` writes no config (nor the
    # encryption salt), so it has nothing to deploy and says which key is missing.
    c = tmp_path / "c"
    c.mkdir()
    shutil.copy(a.project / "Pulumi.yaml", c)

    def pulumi_in_c(*args):
        return subprocess.run(["pulumi", *args, "--non-interactive"], cwd=c, env={**os.environ, **a.env},
                              capture_output=True, text=True)
    assert pulumi_in_c("stack", "select", "e2e").returncode == 0
    assert not (c / STACK_FILE).exists()
    assert json.loads(pulumi_in_c("stack", "output", "--json", "--show-secrets").stdout) == outputs_a
    bare = pulumi_in_c("preview")
    assert bare.returncode != 0 and "canary:image_tag" in bare.stdout + bare.stderr, bare.stdout + bare.stderr

    # B deploys the next tag itself (a new image on the host), and A sees that.
    sh("docker tag canary-demo:v1 canary-demo:v3")
    b.set(image_tag="v3", monitoring_duration="6s")
    with Load() as load:
        b.up()
    out_b = b.outputs()
    assert out_b["phase"] == "promoted", out_b["message"]
    assert out_b["production_image"] == "canary-demo:v3"
    assert out_b["previous_image"] == "canary-demo:v2"
    assert containers() == {"odoo": "canary-demo:v3"}
    assert not split_exists()
    assert load.failures == 0, load.statuses
    assert a.cli("stack", "output", "production_image").stdout.strip() == "canary-demo:v3"
    assert locks(table) == []
