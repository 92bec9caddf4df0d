"""End-to-end harness: real `pulumi` CLI (Automation API), real sshd, Docker and nginx on
the local test host (testhost/testhost.sh). Every test gets a fresh file backend, a
fresh stack and a clean host."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import requests
from pulumi import automation as auto

from canary.remote.ssh import Target

ROOT = Path(__file__).resolve().parents[2]
TESTHOST = ROOT / "testhost" / "testhost.sh"
TESTHOST_DIR = Path(os.environ.get("TESTHOST_DIR", "/var/lib/canary-testhost"))
TESTHOST_LOCK = os.environ.get("CANARY_TESTHOST_LOCK", "/tmp/canary-testhost.lock")


@contextmanager
def testhost_turn():
    """The test host to ourselves: it is one machine-wide droplet (dockerd, nginx, sshd on
    :2222), so concurrent test runs and benchmarks take turns."""
    with open(TESTHOST_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
SITE_URL = "http://127.0.0.1:8088"
PASSPHRASE = "e2e-tests"

# Fast analysis: a few seconds instead of the guide's 15 minutes.
BASE_CONFIG = {
    "host": "127.0.0.1", "ssh_port": "2222", "ssh_user": "root",
    "ssh_private_key_file": str(TESTHOST_DIR / "id_ed25519"),
    "ssh_host_key_file": str(TESTHOST_DIR / "ssh_host_ed25519_key.pub"),
    "image": "canary-demo", "image_tag": "v1", "listen_port": "8088",
    "monitoring_duration": "6s", "check_interval": "2s", "probes_per_check": "4",
    "startup_timeout": "30s", "drain_timeout": "1s", "min_requests": "20",
    # The demo images as the test host built them (tests of the registry pull set their own).
    "image_pull": "false",
}

# The test host's private registry (testhost.sh start pushes the demo images there).
REGISTRY = "127.0.0.1:5000"
REGISTRY_CONFIG = {
    "image": f"{REGISTRY}/canary-demo", "image_pull": "true", "registry_insecure": "true", "registry_server": REGISTRY,
    "registry_username": "canary", "registry_password_file": str(TESTHOST_DIR / "registry_password"),
}


def ssh_target() -> Target:
    """The test host as the release reaches it: BASE_CONFIG's address, key and pinned host key."""
    host_key = " ".join(Path(BASE_CONFIG["ssh_host_key_file"]).read_text().split()[:2])
    return Target(BASE_CONFIG["host"], int(BASE_CONFIG["ssh_port"]), BASE_CONFIG["ssh_user"], host_key,
                  Path(BASE_CONFIG["ssh_private_key_file"]).read_text())


def sh(command: str, check: bool = True) -> str:
    """Runs a command on the test host (this machine) as an operator would by hand."""
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{command!r} failed: {result.stderr or result.stdout}")
    return result.stdout


def reset_host() -> None:
    sh(f"bash {TESTHOST} reset")


def containers() -> dict[str, str]:
    """name -> image of every container of the app."""
    # The image a container was started from (`docker ps` shows an ID once the tag moved,
    # e.g. after the test host rebuilt its demo images).
    names = [n for n in sh("docker ps -a --format '{{.Names}}'").split() if n.startswith("odoo")]
    if not names:
        return {}
    # A registry image runs by digest; its tag is the canary.image label.
    out = sh("docker inspect -f '{{.Name}} {{.Config.Image}} {{index .Config.Labels \"canary.image\"}}' "
             + " ".join(names), check=False)
    rows = [line.split() for line in out.splitlines() if line.split()]
    return {r[0].lstrip("/"): (r[2] if len(r) > 2 and r[2] != "<no" else r[1]) for r in rows}


def container_id(name: str) -> Optional[str]:
    out = sh(f"docker inspect -f '{{{{.Id}}}}' {name} 2>/dev/null", check=False).strip()
    return out or None


def split_exists() -> bool:
    return Path("/etc/nginx/conf.d/odoo-canary.conf").exists()


def ssh_commands() -> int:
    """Commands sshd ran on the test host so far (one per session)."""
    log = TESTHOST_DIR / "sshd.log"
    return log.read_text().count("Starting session:") if log.exists() else 0


def program_processes(project: Path) -> list[str]:
    """Pulumi program and dynamic-provider processes still running for `project`."""
    found = []
    for pid in sh("pgrep -f 'pulumi[.]dynamic|pulumi-language-python-exec' || true").split():
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(project):
                found.append(pid)
        except OSError:
            pass  # already gone
    return found


def session_processes(sid: int) -> list[str]:
    """`PID COMMAND` of each process still alive in a session (a CLI started with
    start_new_session=True, and everything it started)."""
    out = sh(f"ps -ww -o pid=,args= --sid {sid} || true")
    return [" ".join(line.split()[:2]) for line in out.splitlines() if line.strip()]


def served_versions(n: int = 100, **kw) -> Counter:
    c: Counter = Counter()
    for _ in range(n):
        r = requests.get(SITE_URL + "/", timeout=5, **kw)
        c[r.text.split(":")[0] if r.ok else str(r.status_code)] += 1
    return c


def postgres_backend(table: Optional[str] = None) -> str:
    """The test host's PostgreSQL state backend (testhost.sh start creates it):
    `postgres://pulumi:…@127.0.0.1:5433/pulumi?sslmode=disable`, optionally with a table
    of its own (Pulumi's `table` parameter; default `pulumi_state`)."""
    url = (TESTHOST_DIR / "postgres_url").read_text().strip()
    return f"{url}&table={table}" if table else url


def postgres(sql: str) -> str:
    """A query on the test host's PostgreSQL state database, as its administrator."""
    port = urlsplit(postgres_backend()).port
    r = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A",
                        "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", "pulumi", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"psql {sql!r} failed: {r.stderr}")
    return r.stdout


class Load:
    """A small load generator against nginx while an update runs: it counts statuses."""

    def __init__(self, rate: float = 40.0, post_every: int = 4):
        self.rate, self.post_every = rate, post_every
        self.statuses: Counter = Counter()
        self.backends: Counter = Counter()
        self.events: list[tuple[float, object, str]] = []  # (time, status, X-Canary-Backend)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        with requests.Session() as s:
            # A new connection per request (a new client each): a kept-alive one can
            # meet nginx's own race on every graceful reload, the old worker closing it
            # as the next request is sent, whatever reloads it (scripts/bench live
            # measures that side by side with a baseline of bare reloads).
            s.headers["Connection"] = "close"
            while not self._stop.is_set():
                i += 1
                try:
                    if i % self.post_every == 0:
                        r = s.post(SITE_URL + "/web/dataset/call", data=b"x" * 64, timeout=10)
                    else:
                        r = s.get(SITE_URL + f"/page/{i}", timeout=10)
                    backend = r.headers.get("X-Canary-Backend", "")
                    self.statuses[r.status_code] += 1
                    self.backends[backend] += 1
                    self.events.append((time.time(), r.status_code, backend))
                except requests.RequestException as err:
                    self.statuses[type(err).__name__] += 1
                    self.events.append((time.time(), type(err).__name__, ""))
                s.cookies.clear()  # every request a new client
                time.sleep(1 / self.rate)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def failures(self) -> int:
        return sum(n for k, n in self.statuses.items() if k != 200)


def link_lock_files(project: Path) -> None:
    """A program run from `project` (not this checkout) with the uv toolchain: the
    language host reads uv.lock beside it, and keeps the venv in sync with it."""
    for name in ("pyproject.toml", "uv.lock"):
        (project / name).symlink_to(ROOT / name)


class Deployment:
    """One stack of the project, driven through the real CLI."""

    def __init__(self, workdir: Path, name: str = "e2e", config: Optional[dict] = None,
                 echo: bool = True, backend_url: Optional[str] = None):
        """`backend_url`: a shared state backend (e.g. `postgres_backend()`) instead of a
        fresh file backend in `workdir`."""
        self.workdir = workdir
        self.echo = echo
        if backend_url is None:
            backend = workdir / "state"
            backend.mkdir(parents=True, exist_ok=True)
            backend_url = f"file://{backend}"
        workdir.mkdir(parents=True, exist_ok=True)
        project = workdir / "project"
        project.mkdir(exist_ok=True)
        # The repo's program, run from a scratch project dir so stack files stay out of it.
        (project / "Pulumi.yaml").write_text(
            "name: canary\nruntime:\n  name: python\n  options:\n    toolchain: uv\n"
            f"    virtualenv: {ROOT / '.venv'}\nmain: {ROOT}\n")
        self.env = {
            "PULUMI_BACKEND_URL": backend_url,
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "PYTHONPATH": str(ROOT),
            "CANARY_REPORT_DIR": str(workdir / "reports"),
            "PATH": os.environ["PATH"],
        }
        self.project = project
        self.log: list[str] = []
        self.stack = auto.create_or_select_stack(
            stack_name=name, work_dir=str(project),
            opts=auto.LocalWorkspaceOptions(env_vars=self.env))
        self.set(**{**BASE_CONFIG, **(config or {})})

    def set(self, **values) -> None:
        self.stack.set_all_config({f"canary:{k}": auto.ConfigValue(value=str(v)) for k, v in values.items()})

    def set_secret(self, key: str, value: str) -> None:
        self.stack.set_config(f"canary:{key}", auto.ConfigValue(value=value, secret=True), path=True)

    def up(self, **kw) -> auto.UpResult:
        return self.stack.up(on_output=self._out, **kw)

    def preview(self, **kw) -> auto.PreviewResult:
        return self.stack.preview(on_output=self._out, **kw)

    def preview_error(self, **kw) -> str:
        """A quiet preview's error text ("" when it passes): what a bad input is refused with."""
        try:
            self.stack.preview(**kw)
            return ""
        except auto.CommandError as err:
            return str(err)

    def refresh(self, **kw) -> auto.RefreshResult:
        # --run-program: the stack outputs are refreshed too, not only the resources.
        return self.stack.refresh(on_output=self._out, run_program=True, **kw)

    def destroy(self) -> None:
        self.stack.destroy(on_output=self._out)

    def outputs(self) -> dict:
        return {k: v.value for k, v in self.stack.outputs().items()}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The CLI itself, as a user types it in the project directory."""
        r = subprocess.run(["pulumi", *args, "--stack", "e2e", "--non-interactive"],
                           cwd=self.project, env={**os.environ, **self.env},
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def export(self) -> str:
        """`pulumi stack export` as a user runs it (secrets stay encrypted)."""
        return self.cli("stack", "export").stdout

    def _out(self, line: str) -> None:
        self.log.append(line)
        if self.echo:
            print(line)
