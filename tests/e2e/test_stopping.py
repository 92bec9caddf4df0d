"""Stopping a container nginx no longer sends requests to, on the real test host: an app
that does not catch its stop signal is killed at once (waiting for it would only wait),
one that catches it gets its grace, and one that may still have requests in flight gets
the full grace either way."""

import pytest
from pulumi import automation as auto

from canary.remote import docker
from canary.remote.ssh import Host

from .harness import containers, sh, ssh_target

NAME = "stop-test"


@pytest.fixture
def host():
    h = Host(ssh_target(), retries=3)
    yield h
    h.close()
    sh(f"docker rm -f {NAME} >/dev/null 2>&1 || true")


def started(*args: str) -> None:
    sh(f"docker rm -f {NAME} >/dev/null 2>&1 || true")
    sh(f"docker run -d --name {NAME} {' '.join(args)} canary-demo:v1")
    # The demo app installs its signal handling before it listens.
    sh(f"for i in $(seq 100); do docker logs {NAME} 2>&1 | grep -q listening && exit; sleep 0.05; done; exit 1")


@pytest.mark.parametrize("args, drained, given", [
    (["-e", "IGNORE_SIGTERM=1"], True, 0),                 # SIGTERM ignored: nothing to wait for
    ([], True, 2),                                         # catches SIGTERM: it drains
    (["-e", "IGNORE_SIGTERM=1"], False, 2),                # requests in flight: it serves them
    (["--stop-signal", "SIGQUIT"], True, 2),               # the app's runtime catches SIGQUIT
    (["--stop-signal", "SIGRTMIN+3"], True, 2),            # a stop signal not in the table
    (["-e", "IGNORE_SIGTERM=1", "--stop-signal", "SIGINT"], True, 0),
])
def test_the_grace_given_follows_what_the_app_can_do(host, args, drained, given):
    started(*args)
    assert docker.stop_and_remove(host, NAME, timeout=2, drained=drained) == given
    assert NAME not in sh("docker ps -a --format '{{.Names}}'").split()


def test_a_stopped_container_is_removed_with_its_grace(host):
    started("-e", "IGNORE_SIGTERM=1")
    sh(f"docker kill {NAME} >/dev/null")  # State.Pid is 0: nothing to read in /proc
    assert docker.stop_and_remove(host, NAME, timeout=2, drained=True) == 2
    assert NAME not in sh("docker ps -a --format '{{.Names}}'").split()


def test_a_promotion_of_an_app_that_ignores_sigterm_does_not_wait_for_it(deployment):
    d = deployment
    d.stack.set_config("canary:env.IGNORE_SIGTERM", auto.ConfigValue(value="1"), path=True)
    d.up()
    d.log.clear()
    d.set(image_tag="v2")
    d.up()
    for name in ("odoo", "odoo-canary"):  # old production, then the canary
        assert any(f"{name}: its app does not catch its stop signal" in line for line in d.log), d.log
    assert containers() == {"odoo": "canary-demo:v2"}
