"""The README's first run, as written, against the local test host: login, stack init,
pinning the host key, the deploy key, the registry login, the first `pulumi up`.

Only the values differ (the block's first line names the droplet); what only the test
host needs (its site port, its plain-HTTP registry, a fast analysis) is in the stack file
before the block runs, as a team's committed stack file would hold it."""

import os
import re
import subprocess

import yaml

from .harness import (PASSPHRASE, REGISTRY, ROOT, TESTHOST_DIR, containers, reset_host,
                      served_versions)


def first_run_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The first run", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    block = next(b for b in blocks if b.startswith("DROPLET="))
    first, rest = block.split("\n", 1)
    assert first.startswith("DROPLET=165.227.10.178 SSH_PORT=22 STACK=production"), first
    return "set -euo pipefail\nDROPLET=127.0.0.1 SSH_PORT=2222 STACK=first-run\n" + rest


def test_the_readme_first_run_deploys_to_the_test_host(tmp_path):
    reset_host()
    project = tmp_path / "checkout"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: canary\nruntime:\n  name: python\n  options:\n"
        f"    virtualenv: {ROOT / '.venv'}\nmain: {ROOT}\n")
    # The test host's own settings, as a committed stack file would carry them.
    (project / "Pulumi.first-run.yaml").write_text(yaml.safe_dump({"config": {
        "canary:listen_port": "8088", "canary:registry_insecure": "true",
        "canary:monitoring_duration": "6s", "canary:check_interval": "2s"}}))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    # A Pulumi home of its own (the login is per machine), with the installed plugins.
    home = tmp_path / "pulumi-home"
    home.mkdir()
    os.symlink(os.path.join(os.environ["PULUMI_HOME"], "plugins"), home / "plugins")
    env = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "1",
           "PYTHONPATH": str(ROOT), "CANARY_REPORT_DIR": str(tmp_path / "reports"),
           "PULUMI_BACKEND_URL": "",  # the block logs in itself
           "PULUMI_SKIP_CONFIRMATIONS": "true",  # the person answers `pulumi up`'s prompt
           "STATE": f"file://{tmp_path / 'state'}", "PASSPHRASE": PASSPHRASE,
           "DEPLOY_KEY": str(TESTHOST_DIR / "id_ed25519"), "IMAGE": f"{REGISTRY}/canary-demo", "REGISTRY": REGISTRY,
           "REGISTRY_USER": "canary", "REGISTRY_PASSWORD_FILE": str(TESTHOST_DIR / "registry_password"),
           "TAG": "v1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    (tmp_path / "state").mkdir()
    r = subprocess.run(["bash", "-c", first_run_block() + "\n" + "pulumi stack output --json\n"],
                       cwd=project, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert containers() == {"odoo": f"{REGISTRY}/canary-demo:v1"}
    assert served_versions(10) == {"canary-demo v1": 10}
    stack_file = (project / "Pulumi.first-run.yaml").read_text()
    assert "ssh-ed25519 " in stack_file and "secure:" in stack_file  # pinned key, encrypted secrets
    assert "PRIVATE KEY" not in stack_file
    # The registry login, user name included, is encrypted; the server is in plain text.
    config = yaml.safe_load(stack_file)["config"]
    assert "secure" in config["canary:registry_username"] and "secure" in config["canary:registry_password"]
    assert config["canary:registry_server"] == REGISTRY
    assert "Stack first-run" in subprocess.run(["git", "log", "--oneline"], cwd=project,
                                               capture_output=True, text=True).stdout
    reset_host()
