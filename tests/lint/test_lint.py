"""The GitHub workflows (actionlint, which runs shellcheck on their `run:` steps) and the
project's shell scripts (shellcheck)."""

import shutil
import subprocess

import pytest

from tests.e2e.harness import ROOT

SCRIPTS = ["scripts/setup", "scripts/test", "scripts/demo", "scripts/bench", "scripts/env", "scripts/faults",
           "testhost/testhost.sh", "testhost/fleet.sh", "testhost/sshd.sh", ".ci/run"]


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
