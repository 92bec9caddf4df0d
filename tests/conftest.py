"""One test at a time on the local test host: it is a single machine-wide droplet
(dockerd, nginx, sshd on :2222), so concurrent test runs take turns per test."""

import fcntl
import os

import pytest

HOST_TESTS = ("e2e", "faults")
LOCK = os.environ.get("CANARY_TESTHOST_LOCK", "/tmp/canary-testhost.lock")


@pytest.fixture(autouse=True)
def testhost_turn(request):
    if request.node.path.parent.name not in HOST_TESTS:
        yield
        return
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
