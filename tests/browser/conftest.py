"""Tests in a real headless browser (Debian's chromium, installed by scripts/setup); no
test host. What they looked at is kept under test-artifacts/ (or $CANARY_TEST_ARTIFACTS)
and listed at the end of the run."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_kept: list[str] = []


@pytest.fixture
def artifacts(request) -> Path:
    """A fresh folder for this test's files; kept after the run."""
    base = Path(os.environ.get("CANARY_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder = base / request.node.name.replace("[", "-").replace("]", "")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep(path: Path) -> None:
    """Lists a file for a person to look at in the run's summary."""
    _kept.append(str(path))
    print(f"artifact: {path}")


def pytest_terminal_summary(terminalreporter):
    if _kept:
        terminalreporter.section("artifacts to look at")
        for path in _kept:
            terminalreporter.write_line(path)
