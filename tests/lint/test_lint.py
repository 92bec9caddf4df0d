"""The GitHub workflows (actionlint, which runs shellcheck on their `run:` steps), the
project's shell scripts (shellcheck) and its Python (ruff, configured in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT

SCRIPTS = ["scripts/setup", "scripts/test", "scripts/demo", "scripts/bench", "scripts/env", "scripts/faults",
           "testhost/testhost.sh", "testhost/fleet.sh", "testhost/sshd.sh", "testhost/erp.sh",
           "testhost/registry.sh", ".ci/run"]


def run(*argv):
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("workflow", ["deploy-canary.yml", "preview.yml"])
def test_workflow_passes_actionlint(workflow):
    assert shutil.which("shellcheck"), "actionlint checks run: steps with shellcheck"
    r = run("actionlint", "-shellcheck", shutil.which("shellcheck"), f".github/workflows/{workflow}")
    assert r.returncode == 0, r.stdout + r.stderr


def test_shell_scripts_pass_shellcheck():
    r = run("shellcheck", "-x", *SCRIPTS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_python_passes_ruff():
    ruff = Path(sys.executable).with_name("ruff")  # the dev group's, in the project's venv
    r = run(str(ruff), "check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout + r.stderr
