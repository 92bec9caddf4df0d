"""Git is the source of truth for a release: the workflows' own script steps, run here
against the local test host (no GitHub, no act). The proposing step changes the stack file
in a clone; once that change is merged, a deployment from a fresh clone runs it, and the
PR preview job (its own deploy key, which the droplet accepts for nothing) from yet
another clone changes nothing but the site's connection, and a colleague's clone with the
deploy key is clean. Each "runner" has a home of its own: a key exists only where a step
wrote it."""

import json
import os
import subprocess
from pathlib import Path

import yaml

from .harness import (BASE_CONFIG, PASSPHRASE, ROOT, TESTHOST_DIR, containers, reset_host,
                      served_versions, ssh_commands)

# The preview key's line in the droplet's authorized_keys, as preview.yml documents it.
PREVIEW_KEY_OPTIONS = 'restrict,command="/bin/false"'

WORKFLOW = ROOT / ".github/workflows/deploy-canary.yml"
PREVIEW = ROOT / ".github/workflows/preview.yml"


def step(job: str, name: str, workflow: Path = WORKFLOW) -> dict:
    doc = yaml.safe_load(workflow.read_text())
    return next(s for s in doc["jobs"][job]["steps"] if s.get("name") == name)


class Repo:
    """A git remote (main) and fresh clones of it, as each runner or laptop has."""

    def __init__(self, tmp: Path):
        self.tmp, self.n = tmp, 0
        self.origin = tmp / "origin.git"
        self.env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
                    "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_SKIP_UPDATE_CHECK": "1",
                    "PYTHONPATH": str(ROOT), "CANARY_REPORT_DIR": str(tmp / "reports"),
                    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
        (tmp / "state").mkdir()
        self.run(tmp, "git", "init", "-q", "--bare", "-b", "main", str(self.origin))

    def run(self, cwd: Path, *argv: str, env: dict | None = None) -> str:
        r = subprocess.run(argv, cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(argv)}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def clone(self) -> Path:
        """A fresh clone, as on a new runner: a new, empty home too."""
        self.n += 1
        path = self.tmp / f"clone{self.n}"
        home = self.tmp / f"home{self.n}"
        home.mkdir()
        self.env["HOME"] = str(home)
        self.run(self.tmp, "git", "clone", "-q", str(self.origin), str(path))
        return path

    def run_step(self, cwd: Path, s: dict, **env: str) -> None:
        """A workflow step's `run:` script with its `env:` (secrets and inputs) given."""
        assert set(s.get("env", {})) <= set(env), (s.get("env"), env)
        self.run(cwd, "bash", "-c", s["run"], env=env)

    def push(self, clone: Path, message: str) -> None:
        self.run(clone, "git", "add", "-A")
        self.run(clone, "git", "commit", "-q", "-m", message)
        self.run(clone, "git", "push", "-q", "origin", "HEAD:main")


def test_a_release_proposed_merged_and_deployed_leaves_git_and_the_stack_in_agreement(tmp_path):
    reset_host()
    repo = Repo(tmp_path)
    first = repo.clone()
    (first / "Pulumi.yaml").write_text(
        "name: canary\nruntime:\n  name: python\n  options:\n"
        f"    virtualenv: {ROOT / '.venv'}\nmain: {ROOT}\n")
    repo.run(first, "pulumi", "stack", "init", "production", "--non-interactive")
    # The key file the stack names exists on no runner until a step writes it from a secret.
    config = {**BASE_CONFIG, "ssh_private_key_file": "~/.ssh/odoo-deploy"}
    for key, value in config.items():
        repo.run(first, "pulumi", "config", "set", "--stack", "production", key, value)
    repo.push(first, "production stack: v1")
    credentials = step("deploy", "Credentials outside the stack file")
    secrets = {"SSH_PRIVATE_KEY": (TESTHOST_DIR / "id_ed25519").read_text().strip(), "NOTIFY_WEBHOOK": ""}
    runner = repo.clone()
    repo.run_step(runner, credentials, **secrets)
    repo.run(runner, "pulumi", "up", "--yes", "--stack", "production", "--non-interactive")
    assert containers() == {"odoo": "canary-demo:v1"}

    # `gh workflow run deploy-canary.yml -f image_tag=v2`: the proposing job's own script.
    proposer = repo.clone()
    inputs = {"IMAGE_TAG": "v2", "CANARY_PERCENTAGE": "10", "MONITORING_DURATION": "6s",
              "ERROR_THRESHOLD": "5", "AUTO_PROMOTE": "true"}
    set_release = step("propose", "Set the release in the stack file")
    assert set(set_release["env"]) == set(inputs)
    repo.run_step(proposer, set_release, **inputs)
    diff = repo.run(proposer, "git", "diff")
    assert "image_tag: v2" in diff and "Pulumi.production.yaml" in diff, diff
    repo.push(proposer, "Release v2 to production")  # the pull request, merged

    # The push to main deploys exactly what was merged (no config set on the runner).
    deploy_steps = [s.get("run", "") for s in yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]["steps"]]
    assert not any("config set" in r and "notify_webhook" not in r for r in deploy_steps)
    runner = repo.clone()
    repo.run_step(runner, credentials, **secrets)
    repo.run(runner, "pulumi", "up", "--yes", "--refresh", "--stack", "production", "--non-interactive")
    assert containers() == {"odoo": "canary-demo:v2"}
    assert served_versions(20) == {"canary-demo v2": 20}

    # The PR preview job on a fresh runner (its deploy key step, then the preview): its key
    # is authorized for nothing, and a preview of one droplet needs nothing of it.
    preview_key = tmp_path / "preview_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "canary-preview", "-f", str(preview_key)],
                   check=True)
    authorized = TESTHOST_DIR / "authorized_keys"
    original = authorized.read_text()
    authorized.write_text(original + f"{PREVIEW_KEY_OPTIONS} {preview_key.with_suffix('.pub').read_text()}")
    try:
        runner = repo.clone()
        repo.run_step(runner, step("preview", "Deploy key", PREVIEW), SSH_PRIVATE_KEY=preview_key.read_text().strip())
        before = ssh_commands()
        out = repo.run(runner, "pulumi", "preview", "--json", "--stack", "production", "--non-interactive")
        sessions = ssh_commands() - before
        # (the read: the program's reference to its own stack, every preview)
        changed = {(s["urn"].rsplit("::", 1)[1], s["op"]) for s in json.loads(out)["steps"]
                   if s["op"] not in ("same", "read")}
        # The key opens a session, which runs nothing.
        tried = subprocess.run(["ssh", "-i", str(preview_key), "-p", "2222", "-o", "StrictHostKeyChecking=no",
                                "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                                "root@127.0.0.1", f"touch {tmp_path / 'preview-key-ran'}"],
                               capture_output=True, text=True)
    finally:
        authorized.write_text(original)
    assert changed == {("site", "update")}, changed  # its connection: an update in place, never a replacement
    assert sessions == 0
    assert tried.returncode != 0 and not (tmp_path / "preview-key-ran").exists()

    # A colleague's fresh clone of main, with the deploy key: the same config, nothing to change.
    laptop = repo.clone()
    repo.run_step(laptop, credentials, **secrets)
    assert repo.run(laptop, "pulumi", "config", "get", "--stack", "production", "image_tag").strip() == "v2"
    repo.run(laptop, "pulumi", "preview", "--expect-no-changes", "--stack", "production", "--non-interactive")
    out = repo.run(laptop, "pulumi", "stack", "output", "--stack", "production", "production_image")
    assert out.strip() == "canary-demo:v2"
    reset_host()
