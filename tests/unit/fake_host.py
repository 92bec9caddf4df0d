"""A host in memory for the controller's unit tests: it implements the protocols of
canary/host.py (containers, router, prober, journal, lock) and checks, after every
change, the rule the controller lives by: some healthy backend serves every request
nginx routes (once production served at all), and nothing the stack does not own is
stopped.

Images behave as they are told: "healthy", "errors" (answers 500), "silent" (never
listens), "exits" (dies at its first health check) or "slow:N" (N failed checks, then
healthy). A failure is injected at a named operation ("run:odoo", "stop:odoo-canary",
"route:100", "unroute", "analyse:10", "check:10:2", "journal:promoting", "lock"), once: an Exception
for a failed step, Killed for a CLI killed there (no cleanup runs after it), or a
function for something that happens on the host meanwhile.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from canary.analysis.result import Result
from canary.analysis.runner import CheckDone
from canary.analysis.verdict import CONTINUE, FAIL, PASS, Evidence, Verdict
from canary.errors import DeployError
from canary.host import Container, HostOps
from canary.remote import nginx
from canary.remote.ssh import RemoteError
from canary.spec import ContainerSpec


class Killed(BaseException):
    """The CLI was killed here: not an Exception, so no `except Exception` cleans up."""


@dataclass
class FakeContainer:
    name: str
    image: str
    labels: dict
    port: int
    behaviour: str
    running: bool = True
    checks: int = 0  # health checks answered so far

    def view(self) -> Container:
        return Container(name=self.name, id=f"{abs(hash(self.name)) % 10**12:012d}", image=self.image,
                         running=self.running, status="running" if self.running else "exited",
                         labels=dict(self.labels))

    def answer(self) -> tuple[bool, str]:
        if not self.running:
            return False, "ConnectionError"
        self.checks += 1
        kind, _, n = self.behaviour.partition(":")
        if kind == "exits":
            self.running = False
            return False, "ConnectionError"
        if kind == "silent" or (kind == "slow" and self.checks <= int(n)):
            return False, "ConnectionError"
        if kind == "errors":
            return False, "500"
        return True, "200"

    @property
    def healthy(self) -> bool:
        kind, _, n = self.behaviour.partition(":")
        return self.running and (kind == "healthy" or (kind == "slow" and self.checks > int(n)))


@dataclass
class FakeHost:
    stack: str = "production"
    app: str = "odoo"
    stable_port: int = 8069
    canary_port: int = 8070
    images: dict[str, str] = field(default_factory=dict)  # image ref -> behaviour
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    split: Optional[str] = None  # the split file's content
    journal_text: Optional[str] = None
    verdicts: dict[int, tuple[str, str]] = field(default_factory=dict)  # weight -> (status, reason)
    failures: dict[str, object] = field(default_factory=dict)
    taken_ports: dict[int, str] = field(default_factory=dict)  # port -> a foreign process
    events: list[str] = field(default_factory=list)
    inspected: list[str] = field(default_factory=list)  # containers inspected one by one
    violations: list[str] = field(default_factory=list)
    clock: float = 0.0
    locked: bool = False
    served: bool = False  # production served requests at some point
    adopt: bool = False  # the stack may take over an unlabelled container of the app
    drains: bool = True  # nginx's old workers finish in time
    graces: dict[str, int] = field(default_factory=dict)  # container -> seconds to SIGKILL it was given
    uncaught: set = field(default_factory=set)  # containers whose app does not catch its stop signal
    # The app's database: the migrations that ran (image, command) and the backups made.
    database: bool = False
    migrations: list = field(default_factory=list)
    backups: list = field(default_factory=list)
    # The operators' files (operate.py): progress.json as last shown, request.json, and every progress shown.
    progress: Optional[str] = None
    request: Optional[str] = None
    shown: list = field(default_factory=list)
    checks: int = 3  # checks per analysis

    # -- what tests set up -------------------------------------------------------------
    def image(self, ref: str, behaviour: str = "healthy") -> "FakeHost":
        self.images[ref] = behaviour
        return self

    def start(self, name: str, ref: str, labels: dict, port: int) -> FakeContainer:
        c = FakeContainer(name, ref, labels, port, self.images.get(ref, "healthy"))
        self.containers[name] = c
        self._check()
        return c

    @property
    def weight(self) -> Optional[int]:
        return None if self.split is None else nginx.parse(self.split).weight

    def ops(self) -> HostOps:
        return HostOps(containers=self, router=_Router(self), prober=_Prober(self), journal=_Journal(self),
                       lock=self._lock, backups=_Backups(self) if self.database else None,
                       console=_Console(self))

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def now(self) -> float:
        return self.clock

    # -- failure injection and the invariant -------------------------------------------
    def _op(self, name: str) -> None:
        self.events.append(name)
        failure = self.failures.pop(name, None)
        if callable(failure):  # something happens on the host meanwhile
            failure()
        elif failure is not None:
            raise failure

    def _check(self) -> None:
        production = self.containers.get(self.app)
        canary = self.containers.get(f"{self.app}-canary")
        if production is not None and production.healthy:
            self.served = True
        if not self.served:
            return
        w = self.weight
        routed = [production] if w in (None, 0) else [canary] if w == 100 else [production, canary]
        if not any(c is not None and c.healthy for c in routed):
            self.violations.append(f"after {self.events[-1] if self.events else 'setup'}: no healthy "
                                   f"backend serves the traffic (split {w})")

    # -- Containers ----------------------------------------------------------------------
    def inspect(self, name: str) -> Optional[Container]:
        self.inspected.append(name)
        return self._view(name)

    def _view(self, name: str) -> Optional[Container]:
        c = self.containers.get(name)
        return c.view() if c else None

    def inspect_all(self, names: list[str]) -> dict[str, Optional[Container]]:
        return {name: self._view(name) for name in names}

    def image_exists(self, image: str) -> bool:
        return image in self.images

    def run(self, spec: ContainerSpec) -> Container:
        self._op(f"run:{spec.name}")
        if spec.name in self.containers:
            raise RemoteError(["docker", "run", spec.name], 125, "", "Conflict. The container name is already in use")
        if spec.host_port in self.taken_ports:
            raise RemoteError(["docker", "run", spec.name], 125, "", "port is already allocated")
        c = FakeContainer(spec.name, spec.image, dict(spec.labels), spec.host_port, self.images[spec.image])
        self.containers[spec.name] = c
        self._check()
        return c.view()

    def stop_and_remove(self, name: str, grace: int, drained: bool = False) -> int:
        self._op(f"stop:{name}")
        self.graces[name] = 0 if drained and name in self.uncaught else grace
        c = self.containers.pop(name, None)
        owner = c.labels.get("canary.stack") if c else None
        if c is not None and owner != self.stack and not (self.adopt and owner is None):
            self.violations.append(f"stopped {name}, which stack {self.stack} does not own")
        self._check()
        return self.graces[name]

    def port_holder(self, port: int) -> Optional[str]:
        return self.taken_ports.get(port)

    def logs_tail(self, name: str, lines: int) -> str:
        return "panic: cannot start"

    def run_once(self, spec: ContainerSpec, command: tuple, timeout: float, log) -> str:
        """A migration: fails as its image's behaviour says ("migration-fails")."""
        self._op(f"migrate:{spec.image}")
        self.migrations.append((spec.image, command, dict(spec.env)))
        self._check()
        if self.images.get(spec.image) == "migration-fails":
            raise DeployError(f"the migration `{' '.join(command)}` failed (exit 1): ERROR: column exists")
        return "done"

    # -- the lock ------------------------------------------------------------------------
    @contextmanager
    def _lock(self, holder: str) -> Iterator[None]:
        self._op("lock")
        assert not self.locked, "the lock is not re-entrant"
        self.locked = True
        try:
            yield
        finally:
            self.locked = False


class _Router:
    def __init__(self, host: FakeHost):
        self.h = host

    def read(self) -> Optional[nginx.Split]:
        return None if self.h.split is None else nginx.parse(self.h.split)

    def install(self, content: str, mode: int) -> None:
        self.h._op(f"route:{nginx.parse(content).weight}")
        self.h.split = content
        self.h._check()

    def remove(self) -> None:
        self.h._op("unroute")
        self.h.split = None
        self.h._check()

    def wait_drained(self, timeout: float) -> bool:
        self.h._op("drain")
        return self.h.drains


class _Prober:
    def __init__(self, host: FakeHost):
        self.h = host

    @contextmanager
    def health(self, port: int) -> Iterator[Callable[[], tuple[bool, str]]]:
        def probe() -> tuple[bool, str]:
            c = next((c for c in self.h.containers.values() if c.port == port), None)
            answer = c.answer() if c else (False, "ConnectionError")
            self.h._check()
            return answer
        yield probe

    def analyse(self, weight: int, log: Callable[[str], None], control=None) -> Result:
        """`checks` checks; the verdict (as `verdicts` says, or by the canary's health) at the last."""
        self.h._op(f"analyse:{weight}")
        canary = self.h.containers.get(f"{self.h.app}-canary")
        status, reason = self.h.verdicts.get(weight) or (
            (PASS, "healthy") if canary is not None and canary.healthy else (FAIL, "5xx 100% above 5%"))
        n, verdict = self.h.checks, Verdict(status, reason)
        for i in range(1, n + 1):
            self.h._op(f"check:{weight}:{i}")
            judged = verdict if i == n else Verdict(CONTINUE, "")
            told = control(CheckDone(i, n, n - i, f"check {i}/{n}", Evidence(planned_probes=1), judged)) \
                if control else None
            if told is not None and judged.status == CONTINUE:
                verdict = told
                break
        return Result(verdict, Evidence(planned_probes=1), weight, 1.0, [])


class _Backups:
    def __init__(self, host: FakeHost):
        self.h = host

    def backup(self, image: str, label: str, keep: int, timeout: float) -> tuple[str, int]:
        self.h._op("backup")
        path = f"/var/lib/canary/{self.h.app}/backups/{self.h.app}-{len(self.h.backups)}-{label.split(':')[-1]}.dump"
        self.h.backups = (self.h.backups + [path])[-keep:]
        return path, 1234

    def restore(self, image: str, name: str, timeout: float) -> None:
        self.h._op(f"restore:{name}")
        if not any(b.endswith("/" + name) for b in self.h.backups):
            raise DeployError(f"restoring the backup {name} failed (exit 66): no backup {name}")


class _Console:
    def __init__(self, host: FakeHost):
        self.h = host

    def show(self, text: Optional[str]) -> None:
        self.h.progress = text
        if text is not None:
            self.h.shown.append(text)

    def request(self) -> Optional[str]:
        return self.h.request

    def consume(self) -> None:
        self.h._op("consume")
        self.h.request = None


class _Journal:
    def __init__(self, host: FakeHost):
        self.h = host

    def read(self) -> Optional[str]:
        return self.h.journal_text

    def write(self, text: str) -> None:
        import json
        self.h._op(f"journal:{json.loads(text)['step']}")
        self.h.journal_text = text

    def clear(self) -> None:
        self.h.journal_text = None
