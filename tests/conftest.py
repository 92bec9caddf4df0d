"""One test at a time on the local test host: concurrent test runs take turns per test."""

import pytest

from tests.e2e.harness import testhost_turn as host_turn

HOST_TESTS = ("e2e", "faults")


@pytest.fixture(autouse=True)
def testhost_turn(request):
    if request.node.path.parent.name not in HOST_TESTS:
        yield
        return
    with host_turn():
        yield
