"""The controller's host operations (host.py) over one SSH connection."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from ..analysis import runner
from ..analysis.result import Result
from ..analysis.sources.probes import app_session, probe
from ..analysis.sources.release import for_release
from ..host import Container, HostOps, Probe, Split
from ..render import lock_file
from ..spec import ContainerSpec, ReleaseSpec
from . import STATE_DIR, database, docker, nginx
from .lock import HostLock
from .ssh import Host


class SshContainers:
    def __init__(self, host: Host):
        self.host = host

    def inspect(self, name: str) -> Optional[Container]:
        return docker.inspect(self.host, name)

    def inspect_all(self, names: list[str]) -> dict[str, Optional[Container]]:
        return docker.inspect_all(self.host, names)

    def image_exists(self, image: str) -> bool:
        return docker.image_exists(self.host, image)

    def run(self, spec: ContainerSpec) -> Container:
        return docker.run(self.host, spec)

    def stop_and_remove(self, name: str, grace: int, drained: bool = False) -> int:
        return docker.stop_and_remove(self.host, name, timeout=grace, drained=drained)

    def port_holder(self, port: int) -> Optional[str]:
        return docker.port_holder(self.host, port)

    def logs_tail(self, name: str, lines: int) -> str:
        _, out, err = self.host.run(["docker", "logs", "--tail", str(lines), name], check=False)
        return out + err

    def run_once(self, spec: ContainerSpec, command: tuple[str, ...], timeout: float,
                 log: Callable[[str], None]) -> str:
        return database.run_once(self.host, spec, command, timeout, log)


class SshBackups:
    def __init__(self, host: Host, app: str, url: str):
        self.host, self.app, self.url = host, app, url

    def backup(self, image: str, label: str, keep: int, timeout: float) -> tuple[str, int]:
        return database.backup(self.host, self.app, self.url, image, database.backup_name(self.app, label),
                               keep, timeout)

    def restore(self, image: str, name: str, timeout: float) -> None:
        database.restore(self.host, self.app, self.url, image, name, timeout)


class NginxRouter:
    def __init__(self, host: Host, split_path: str):
        self.host, self.path = host, split_path
        self.staging_made = False  # once per run (a round trip)
        self.reloaded = ""  # nginx's workers before our last reload, for the drain wait

    def read(self) -> Optional[Split]:
        return nginx.read(self.host, self.path)

    def install(self, content: str, mode: int) -> None:
        self.reloaded = nginx.install(self.host, self.path, content, mode=mode,
                                      make_staging=not self.staging_made)
        self.staging_made = True

    def remove(self) -> None:
        self.reloaded = nginx.remove(self.host, self.path) or self.reloaded

    def wait_drained(self, timeout: float) -> bool:
        reloaded, self.reloaded = self.reloaded, ""
        return nginx.wait_drained(self.host, timeout, reloaded)


class SshProber:
    """Probes through an SSH tunnel to the port on the host; the analysis from the
    release's evidence sources (analysis/sources/) on this host."""

    def __init__(self, host: Host, spec: ReleaseSpec, database_url: Optional[str] = None):
        self.host, self.spec, self.database_url = host, spec, database_url

    @contextmanager
    def health(self, port: int) -> Iterator[Probe]:
        url_of = lambda local: f"http://127.0.0.1:{local}{self.spec.health_path}"  # noqa: E731
        with self.host.forward(port) as local, app_session() as session:
            def health() -> tuple[bool, str]:
                ok, _, last = probe(session, url_of(local), 5)
                return ok, last
            yield health

    def analyse(self, weight: int, log: Callable[[str], None], control: Optional[runner.Control] = None) -> Result:
        sources = for_release(self.host, self.spec, log, self.database_url)
        return runner.analyse(sources, self.spec.analysis, self.spec.image, weight, log, control=control)


class HostJournal:
    def __init__(self, host: Host, app: str):
        self.host, self.dir = host, f"{STATE_DIR}/{app}"
        self.made = False

    def read(self) -> Optional[str]:
        return self.host.read_file(f"{self.dir}/journal.json")

    def write(self, text: str) -> None:
        if not self.made:  # once per run (a round trip)
            self.host.run(["mkdir", "-p", "-m", "700", self.dir])
            self.made = True
        self.host.write_file(f"{self.dir}/journal.json", text, 0o600)

    def clear(self) -> None:
        self.host.sh('rm -f "$1"/*.env "$1"/journal.json', self.dir, check=False)


class HostConsole:
    """progress.json and request.json beside the journal (operate.py)."""

    def __init__(self, host: Host, app: str):
        self.host, self.dir = host, f"{STATE_DIR}/{app}"

    def show(self, text: Optional[str]) -> None:
        if text is None:
            self.host.run(["rm", "-f", f"{self.dir}/progress.json"], check=False)
        else:  # (the journal made the directory before the analysis began)
            self.host.write_file(f"{self.dir}/progress.json", text, 0o600)

    def request(self) -> Optional[str]:
        return self.host.read_file(f"{self.dir}/request.json")

    def consume(self) -> None:
        self.host.run(["rm", "-f", f"{self.dir}/request.json"], check=False)


def over_ssh(host: Host, spec: ReleaseSpec, database_url: Optional[str] = None) -> HostOps:
    return HostOps(containers=SshContainers(host), router=NginxRouter(host, spec.split.split_path),
                   prober=SshProber(host, spec, database_url), journal=HostJournal(host, spec.app),
                   lock=lambda holder: HostLock(host, lock_file(spec.app), holder),
                   backups=SshBackups(host, spec.app, database_url) if database_url else None,
                   console=HostConsole(host, spec.app))
