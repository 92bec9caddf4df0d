import pytest

from .harness import Deployment, TESTHOST, reset_host, sh


@pytest.fixture(scope="session", autouse=True)
def testhost():
    sh(f"bash {TESTHOST} start")


@pytest.fixture
def deployment(tmp_path):
    """A fresh stack on a clean host; destroyed afterwards so the next test starts clean."""
    reset_host()
    d = Deployment(tmp_path)
    yield d
    reset_host()
