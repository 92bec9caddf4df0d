"""What the controller needs of a host, as small protocols (like Flagger's routers and
workloads): the app's containers, the nginx traffic split, probing and analysis, the
host journal and the host lock.

remote/ implements them over SSH (`remote.over_ssh`); the unit tests implement them in
memory (tests/unit/fake_host.py), so every plan, step and failure of the controller is
covered without a host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ContextManager, Mapping, Optional, Protocol

from .analysis.result import Result
from .analysis.runner import Control
from .spec import ContainerSpec


@dataclass(frozen=True)
class Container:
    name: str
    id: str
    image: str
    running: bool
    status: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    weight: int  # percent of new clients to the canary; -1: a split file we did not write


Probe = Callable[[], tuple[bool, str]]  # one health check: (answered 200, what it answered)


class Containers(Protocol):
    def inspect(self, name: str) -> Optional[Container]:
        """The container, or None when there is none (any other failure raises)."""

    def inspect_all(self, names: list[str]) -> dict[str, Optional[Container]]:
        """Several containers at once (one round trip); None for each there is not."""

    def image_exists(self, image: str) -> bool: ...

    def run(self, spec: ContainerSpec) -> Container:
        """Starts a container (`docker run`); a rejected run raises RemoteError."""

    def stop_and_remove(self, name: str, grace: int, drained: bool = False) -> int:
        """`docker stop` (its stop signal, SIGKILL after `grace` s), then removes the
        container. `drained`: nginx sends it nothing any more, so an app that does not
        catch its stop signal is killed at once (waiting would not make it act on it).
        Returns the grace given."""

    def port_holder(self, port: int) -> Optional[str]:
        """Who listens on the host's port already (a process line), or None."""

    def logs_tail(self, name: str, lines: int) -> str: ...

    def run_once(self, spec: ContainerSpec, command: tuple[str, ...], timeout: float,
                 log: Callable[[str], None]) -> str:
        """Runs `command` in a one-off container of `spec` (the migration), showing its
        output; its last lines. A failure or a timeout raises DeployError."""


class Router(Protocol):
    """The app's traffic split file in nginx; every change is tested and reloaded."""

    def read(self) -> Optional[Split]: ...

    def install(self, content: str, mode: int) -> None: ...

    def remove(self) -> None: ...

    def wait_drained(self, timeout: float) -> bool:
        """Waits for nginx's old workers to finish their requests; whether they did."""


class Prober(Protocol):
    def health(self, port: int) -> ContextManager[Probe]:
        """A probe of the app's health path on the host's `port`, for a `with` block."""

    def analyse(self, weight: int, log: Callable[[str], None], control: Optional[Control] = None) -> Result:
        """One analysis window of the canary at `weight` percent; `control` after each check
        (analysis/runner.py)."""


class Backups(Protocol):
    """Dumps of the app's database on the host (when the stack names one)."""

    def backup(self, image: str, label: str, keep: int, timeout: float) -> tuple[str, int]:
        """`pg_dump -Fc` with `image`'s pg_dump, named after `label` (the release's tag);
        (its path on the host, its size). Keeps the newest `keep`. Failure: DeployError."""

    def restore(self, image: str, name: str, timeout: float) -> None:
        """The backup `name` replayed into the database (its schema `public` emptied
        first) in one transaction, with `image`'s pg_restore and psql. All or nothing;
        failure: DeployError."""


class Journal(Protocol):
    """The record of this app on the host, written before each step acts."""

    def read(self) -> Optional[str]: ...

    def write(self, text: str) -> None: ...

    def clear(self) -> None:
        """Removes the app's files on the host: the journal and the containers' env files."""


class Console(Protocol):
    """What operators see of a running analysis and ask of it, on the host (operate.py):
    STATE_DIR/APP/progress.json and request.json."""

    def show(self, text: Optional[str]) -> None:
        """Writes the progress; None removes it."""

    def request(self) -> Optional[str]:
        """An operator's request, as written (None: there is none)."""

    def consume(self) -> None:
        """Removes the request."""


@dataclass(frozen=True)
class HostOps:
    containers: Containers
    router: Router
    prober: Prober
    journal: Journal
    lock: Callable[[str], ContextManager[object]]  # the host lock, held by `holder`
    backups: Optional[Backups] = None  # None: the stack names no database
    console: Optional[Console] = None  # None: nobody watches or asks (a host without it)
