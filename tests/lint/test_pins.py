"""One version of each Pulumi part: the CLI and plugins scripts/setup installs, the Go
build of the CLI, the Python SDKs in pyproject.toml and the CLI the workflows install must
agree (a plugin of one version with an SDK of another asks for a plugin that is not there)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setup(name: str) -> str:
    return re.search(rf"^{name}=(\S+)$", (ROOT / "scripts" / "setup").read_text(), re.M).group(1)


def _pinned(package: str) -> str:
    return re.search(rf'"{re.escape(package)}==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


def test_the_pulumi_cli_is_one_version_everywhere():
    cli = _setup("PULUMI_VERSION")
    go_mod = (ROOT / "tools" / "pulumi-build" / "go.mod").read_text()
    assert re.search(rf"github.com/pulumi/pulumi/pkg/v3 v{re.escape(cli)}\b", go_mod)
    assert _pinned("pulumi") == cli
    for workflow in (ROOT / ".github" / "workflows").glob("*.yml"):
        for found in re.findall(r"pulumi-version: (\S+)", workflow.read_text()):
            assert found == cli, f"{workflow.name} installs the CLI {found}, setup {cli}"


def test_each_provider_plugin_matches_its_sdk():
    assert _pinned("pulumi-command") == _setup("COMMAND_VERSION")
    assert _pinned("pulumi-docker") == _setup("DOCKER_VERSION")
