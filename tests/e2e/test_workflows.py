"""Git is the source of truth for a release: the deploy workflow's own script steps, run
here against the local test host (no GitHub, no act). The proposing step changes the stack
file in a clone; once that change is merged, a deployment from a fresh clone runs it, and
a preview from yet another clone of git is clean."""

import os
import subprocess
from pathlib import Path

import yaml

from .harness import BASE_CONFIG, PASSPHRASE, ROOT, containers, reset_host, served_versions

WORKFLOW = ROOT / ".github/workflows/deploy-canary.yml"


def step(job: str, name: str) -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
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
        self.n += 1
        path = self.tmp / f"clone{self.n}"
        self.run(self.tmp, "git", "clone", "-q", str(self.origin), str(path))
        return path

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
    for key, value in BASE_CONFIG.items():
        repo.run(first, "pulumi", "config", "set", "--stack", "production", key, value)
    repo.push(first, "production stack: v1")
    repo.run(repo.clone(), "pulumi", "up", "--yes", "--stack", "production", "--non-interactive")
    assert containers() == {"odoo": "canary-demo:v1"}

    # `gh workflow run deploy-canary.yml -f image_tag=v2`: the proposing job's own script.
    proposer = repo.clone()
    inputs = {"IMAGE_TAG": "v2", "CANARY_PERCENTAGE": "10", "MONITORING_DURATION": "6s",
              "ERROR_THRESHOLD": "5", "AUTO_PROMOTE": "true"}
    set_release = step("propose", "Set the release in the stack file")
    assert set(set_release["env"]) == set(inputs)
    repo.run(proposer, "bash", "-c", set_release["run"], env=inputs)
    diff = repo.run(proposer, "git", "diff")
    assert "image_tag: v2" in diff and "Pulumi.production.yaml" in diff, diff
    repo.push(proposer, "Release v2 to production")  # the pull request, merged

    # The push to main deploys exactly what was merged (no config set on the runner).
    deploy_steps = [s.get("run", "") for s in yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]["steps"]]
    assert not any("config set" in r and "notify_webhook" not in r for r in deploy_steps)
    runner = repo.clone()
    repo.run(runner, "pulumi", "up", "--yes", "--refresh", "--stack", "production", "--non-interactive")
    assert containers() == {"odoo": "canary-demo:v2"}
    assert served_versions(20) == {"canary-demo v2": 20}

    # A colleague's fresh clone of main: the same config, nothing to change.
    laptop = repo.clone()
    assert repo.run(laptop, "pulumi", "config", "get", "--stack", "production", "image_tag").strip() == "v2"
    repo.run(laptop, "pulumi", "preview", "--expect-no-changes", "--stack", "production", "--non-interactive")
    out = repo.run(laptop, "pulumi", "stack", "output", "--stack", "production", "production_image")
    assert out.strip() == "canary-demo:v2"
    reset_host()
