"""The release controller: carries out what plan.py decided, on the host.

A readable state machine in the spirit of Flagger's scheduler:

    observe -> plan -> deploy | analyse (advance weight, analyse) -> promote | hold | roll back

Everything runs under the host lock. Traffic moves only through nginx graceful
reloads validated by `nginx -t`, and a container is stopped only after nginx sent its
traffic elsewhere and the old workers drained; `docker stop` then lets the app finish
its in-flight requests. Promotion therefore goes: all traffic to the canary, replace
production, all traffic back to production, remove the canary.

Never the last healthy backend: the canary is removed only once production answers
its health check, and production is stopped only once the canary does. A container
without this stack's label is never stopped or removed (unless `adopt` says so).

The journal on the host (STATE_DIR/APP/journal.json) holds the record (previous
image, failed revision, phase...) as it is at each step, written before the step acts:
when the CLI is killed mid-way, `pulumi refresh` and the next `pulumi up` read the
truth from it instead of the stack's last saved outputs.

The release's process imports this module when an update begins. The HTTP client and
the report's page libraries (about 0.06 s to import) are imported where they are first
used (a health probe, a webhook, the report writer), so the SSH connection, the lock
and the first changes on the host do not wait for them.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Optional

from . import operate
from . import plan as P
from . import redact
from .analysis.runner import CheckDone, Control
from .analysis.verdict import CONTINUE, FAIL, INCONCLUSIVE, Verdict
from .errors import DeployError, rolled_back_before
from .health_wait import HealthWait
from .host import Container, HostOps, Split
from .notify import Notifier
from .phases import Outcome, Phase, rule, transition
from .remote.ssh import RemoteError
from .render import split_config
from .report_writer import ReportWriter
from .spec import ReleaseSpec
from .status import OUTPUT_KEYS, ReleaseStatus

# Seconds from SIGTERM to SIGKILL for a container nginx no longer sends requests to (its
# old workers drained): an app slow to stop does not hold the release up (one that does
# not catch SIGTERM at all is killed at once: remote/docker.py).
DRAINED_STOP_GRACE = 3
# ... and for one nginx may still have requests in flight to (the drain timed out).
STOP_GRACE = 30

REFRESH_MESSAGES = {Outcome.CANARY_GONE: "the canary was removed outside Pulumi",
                    Outcome.CANARY_FOUND: "a canary runs that the stack did not record (interrupted update?)"}


@dataclass
class HostState:
    production: Optional[Container]
    canary: Optional[Container]
    split: Optional[Split]


def _revision(c: Optional[Container], spec: ReleaseSpec, revision: str) -> Optional[str]:
    if c is None:
        return None
    rev = c.labels.get("canary.revision")
    if rev:
        return rev
    # A container we did not start (the guide's `odoo`): adopt it when it runs our image.
    return revision if c.image in (spec.image, spec.ref) else f"{c.image}#adopted"


def _shown(c: Optional[Container]) -> Optional[str]:
    """The image a container runs as outputs show it: the tag it was started for (a
    container runs a registry image by digest)."""
    if c is None:
        return None
    return c.labels.get("canary.image") or c.image


def _image_of(revision: Optional[str]) -> Optional[str]:
    return revision.split("#", 1)[0] if revision else None


class Controller:
    def __init__(self, ops: HostOps, spec: ReleaseSpec, log: Callable[[str], None],
                 revision: Optional[str] = None, notifier: Optional[Notifier] = None,
                 force_token: str = "", report_dir: Optional[str] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 approved: str = "", promoted_by: str = "", cancelled: Callable[[], bool] = lambda: False):
        self.ops, self.spec, self.log = ops, spec, log
        # The CLI's Ctrl-C reached the provider (provider.py): a running analysis rolls back.
        self.cancelled = cancelled
        self.holder = ""  # who runs this update, since when (the lock's holder line)
        self.promote_now = ""  # an operator's `promote --full`: the reason, in words
        # A droplet of a later wave: the revision passed on the canary droplets (plan.Desired).
        self.approved = approved
        # A fleet's canary droplet: the step that promotes a canary that passed (the update
        # ends at the verdict here, which lets the later waves go: promotion_resource.py).
        self.promoted_by = promoted_by
        # canary:force_token from the stack config (not a spec input: never in the state);
        # it reaches the host only inside the split file, written mode 600.
        self.force_token = force_token
        self.notify = notifier or Notifier(None, spec.stack, spec.app, log)
        # The spec's own revision, unless the caller knows it better (a refresh only has
        # the recorded spec, without the container env the revision digests).
        self.desired_revision = revision or spec.revision
        self.status = ReleaseStatus()
        self.kind = P.NOOP  # the action being carried out
        self.promoting = False
        self.reverting_from: Optional[str] = None  # revert(): the fleet's failed revision
        self.production_problem: Optional[str] = None  # why production was not healthy
        self.migrated = False  # this run migrated the database (a rollback cannot undo it)
        # Analysis reports (JSON + HTML) go here, on the machine running Pulumi.
        self.report_dir = os.environ.get("CANARY_REPORT_DIR", "reports") if report_dir is None else report_dir
        self.health = HealthWait(ops, spec, log, clock, sleep)
        self.reports = ReportWriter(self.report_dir, spec, log)
        self.steps: dict[str, Callable[[P.Action, HostState, P.Observed], None]] = {
            P.NOOP: self._noop, P.BLOCKED: self._blocked, P.DEPLOY: self._deploy,
            P.RESTORE: self._restore, P.HALT: self._halt, P.CLEANUP: self._cleanup,
            P.ABORT: self._abort, P.REPLACE: self._replace, P.PROMOTE: self._promote,
            P.ROUTE: self._route, P.ANALYSE: self._analyse}

    @property
    def canary_name(self) -> str:
        return f"{self.spec.app}-canary"

    # -- observation ------------------------------------------------------------------
    def observe(self) -> HostState:
        found = self.ops.containers.inspect_all([self.spec.app, self.canary_name])
        return HostState(production=found[self.spec.app], canary=found[self.canary_name],
                         split=self.ops.router.read())

    def observed(self, h: HostState, check_health: bool = False) -> P.Observed:
        production_healthy = canary_healthy = None
        if check_health and h.canary is not None and h.production is not None:
            self.production_problem = self.health.of("production")
            production_healthy = self.production_problem is None
            canary_healthy = production_healthy or self.health.of("canary") is None
        canonical = self.spec.canonical  # containers labelled before the stack's revision key
        return P.Observed(
            production_revision=canonical(_revision(h.production, self.spec, self.desired_revision)),
            production_running=bool(h.production and h.production.running),
            canary_revision=canonical(_revision(h.canary, self.spec, self.desired_revision)),
            canary_running=bool(h.canary and h.canary.running),
            split_weight=h.split.weight if h.split else None,
            production_healthy=production_healthy, canary_healthy=canary_healthy)

    def journaled(self, recorded: dict) -> dict:
        """The recorded outputs, updated by the host's journal of this stack: it is newer
        when an update was interrupted after it acted and before Pulumi saved its outputs."""
        entry = self._read_journal()
        if entry.get("stack") != self.spec.stack or not isinstance(entry.get("record"), dict):
            return dict(recorded)
        return {**recorded, **{k: v for k, v in entry["record"].items() if k in OUTPUT_KEYS}}

    def refreshed(self, recorded: dict) -> dict:
        """The recorded outputs corrected by what runs on the host (pulumi refresh)."""
        h = self.observe()
        o = self.observed(h)
        recorded = self.journaled(recorded)
        status = ReleaseStatus.from_outputs(recorded).with_(
            production_revision=o.production_revision, production_image=_shown(h.production),
            canary_revision=o.canary_revision, canary_image=_shown(h.canary),
            canary_weight=h.split.weight if h.split else 0, production_running=o.production_running)
        outcome = Outcome.CANARY_GONE if h.canary is None and h.split is None else Outcome.CANARY_FOUND
        corrected = rule(status.phase, "refresh", outcome)
        if corrected is not None:
            status = status.with_(phase=corrected, message=REFRESH_MESSAGES[outcome])
        if h.production is not None and not h.production.running:
            status = status.with_(message=f"the production container is {h.production.status}")
        return {**recorded, **status.to_outputs()}

    # -- the update -------------------------------------------------------------------
    def reconcile(self, recorded: dict, then: Optional[Callable[[], None]] = None) -> ReleaseStatus:
        try:
            self.holder = self._holder()
            return self._reconcile(recorded, self.holder, then)
        finally:
            self.reports.finish()

    def _reconcile(self, recorded: dict, holder: str, then: Optional[Callable[[], None]]) -> ReleaseStatus:
        with self.ops.lock(holder):
            self.status = ReleaseStatus.from_outputs(self.journaled(recorded))
            h = self.observe()
            self._check_ownership(h)
            self._restore_requested(h)
            o = self.observed(h, check_health=True)
            d = P.Desired(revision=self.spec.revision, steps=self.spec.steps,
                          auto_promote=self.spec.auto_promote, retry=self.spec.retry,
                          promote=self.spec.promote, approved=self.approved)
            action = P.plan(d, self.status.recorded(), o)
            self.kind = action.kind
            self.log(f"{self.spec.app}: {action.kind}" + (f" ({action.reason})" if action.reason else ""))
            self._journal(action.kind)
            try:
                self.steps[action.kind](action, h, o)
            except Exception:
                # Never leave a half-started canary serving users: production keeps the
                # traffic (a failed promotion handles its own state, see there).
                if action.kind in (P.ANALYSE, P.ROUTE, P.REPLACE) and not self.promoting:
                    self._best_effort(self._remove_canary)
                raise
            if then is not None:  # still under the lock, before the journal says done
                then()
            self._journal("done")
            return self.status

    def revert(self, failed_revision: str, failed_image: str, reason: str) -> ReleaseStatus:
        """Rolls this droplet back to its previous revision (the controller's spec) after
        the fleet's release of `failed_revision` failed elsewhere, and records that
        revision as rolled back here too: the next `pulumi up` of it is blocked (retry)."""
        def record_failure() -> None:
            self._set(phase=Phase.ROLLED_BACK, failed_revision=failed_revision, failed_image=failed_image,
                      failure_reason=reason, message=f"rolled back {failed_image}: {reason}")
        # The failed revision never becomes "previous": the journal keeps the revision to
        # go back to, so a rollback cut short (the CLI killed) is finished by the next up.
        self.reverting_from = failed_revision
        return self.reconcile({}, then=record_failure)  # an instant rollback: plan.py's REPLACE

    # -- a fleet's later wave, before its gate opens (plan.stage) ----------------------
    def stage(self) -> tuple[bool, str]:
        """Starts the revision's container beside production, without traffic, while the
        canary droplets analyse, where plan.stage says so: the droplet's release reuses it
        once the gate opens, and then only moves traffic and replaces production. The
        revision is keyed with the release's key, which the journal keeps (none yet: the
        droplet's release never ran). (whether it is staged now, what was done, in words)
        A container that fails to start is removed: the release meets the failure itself."""
        with self.ops.lock(self._holder()):
            entry = self._read_journal()
            key = entry.get("revision_key") if entry.get("stack") == self.spec.stack else None
            if not key:
                return False, "nothing staged: the droplet's release has not run here yet"
            self.spec = self.spec.keyed(key)
            self.desired_revision = self.spec.revision
            record = entry.get("record") if isinstance(entry.get("record"), dict) else {}
            h = self.observe()
            self._check_ownership(h)
            d = P.Desired(revision=self.spec.revision, steps=self.spec.steps,
                          auto_promote=self.spec.auto_promote, retry=self.spec.retry)
            kind, why = P.stage(d, ReleaseStatus.from_outputs(record).recorded(), self.observed(h))
            if kind != P.START:
                return kind == P.KEEP, (f"{self.spec.image} staged: {why}" if kind == P.KEEP
                                        else f"nothing staged: {why}")
            self.log(f"{self.spec.image}: {why}")
            try:
                if h.canary is not None:  # a leftover of ours (ownership checked), without traffic
                    self._remove_container(self.canary_name, drained=True, seen=h.canary)
                self._check_port(self.spec.canary_port, ours_there=False)
                self._start("canary")
            except DeployError as err:
                self._best_effort(lambda: self._remove_container(self.canary_name, drained=True))
                return False, f"nothing staged: {err}"
            return True, f"{self.spec.image} staged beside production, without traffic"

    def unstage(self) -> str:
        """Removes the container `stage` started when the gate did not open: a canary of
        the revision while no split sends it traffic. Anything else is the release's."""
        with self.ops.lock(self._holder()):
            h = self.observe()
            if h.canary is None or h.split is not None:
                return ""
            if self.spec.canonical(_revision(h.canary, self.spec, self.desired_revision)) != self.spec.revision:
                return ""
            self._remove_container(self.canary_name, drained=True, seen=h.canary)
            return f"removed the {self.spec.image} container staged beside production"

    def _holder(self) -> str:
        return f"stack {self.spec.stack} ({getpass.getuser()}@{socket.gethostname()}) since {time.strftime('%H:%M:%S')}"

    def _check_ownership(self, h: HostState) -> None:
        for c in (h.production, h.canary):
            if c is not None:
                self._check_owned(c)

    def _check_owned(self, c: Container) -> None:
        owner = c.labels.get("canary.stack")
        if owner and owner != self.spec.stack:
            raise DeployError(f"container {c.name} on this host is managed by stack {owner!r}, "
                              f"not {self.spec.stack!r}: refusing to touch it")
        if not owner and not self.spec.adopt:
            raise DeployError(f"container {c.name} ({c.image}) on this host was not started by this "
                              "program: refusing to touch it. To take it over (e.g. the guide's "
                              "hand-started container), `pulumi config set adopt true`")

    def _remove_container(self, name: str, drained: bool, seen: Optional[Container] = None) -> None:
        """Stops and removes one of the app's containers, if this stack may. `seen`: the
        container as inspected moments ago under the host lock (saves a round trip)."""
        c = seen or self.ops.containers.inspect(name)
        if c is None:
            return
        self._check_owned(c)
        self.log(f"stopping and removing container {name} ({c.image})")
        grace = self.ops.containers.stop_and_remove(name, DRAINED_STOP_GRACE if drained else STOP_GRACE, drained)
        if drained and grace == 0:
            self.log(f"{name}: its app does not catch its stop signal, so it was killed at once "
                     "(nginx had drained it)")

    def destroy(self) -> None:
        with self.ops.lock(f"stack {self.spec.stack} destroy"):
            h = self.observe()
            for c in (h.canary, h.production):
                owner = c.labels.get("canary.stack") if c else None
                if owner and owner != self.spec.stack:
                    raise DeployError(f"container {c.name} on this host is managed by stack {owner!r}: "
                                      "refusing to remove the app's split file and containers")
            self.ops.router.remove()
            for c in (h.canary, h.production):
                if c is None:
                    continue
                if c.labels.get("canary.stack") != self.spec.stack:
                    self.log(f"leaving container {c.name} ({c.image}): this stack did not start it")
                    continue
                self.ops.containers.stop_and_remove(c.name, STOP_GRACE)
            # The nginx site's backup of an adopted site stays: the site puts it back.
            self.ops.journal.clear()

    # -- steps (one per plan kind); each ends by recording its outcome -------------------
    def _noop(self, action, h, o):
        in_sync = o.production_revision == self.desired_revision
        if in_sync and self.status.phase not in (Phase.PROMOTED, Phase.STABLE):
            self._record(Outcome.IN_SYNC, message=f"production runs {self.spec.image}")
        self._set_production(o.production_revision, _shown(h.production))

    def _blocked(self, action, h, o):
        if action.cleanup:
            self._remove_canary()
        raise rolled_back_before(self.spec.image, action.reason)

    def _deploy(self, action, h, o):
        self._check_port(self.spec.stable_port, ours_there=h.production is not None)
        if action.migrate:
            self._migrate()
        self._start("production")
        self._remove_canary()
        self._record(Outcome.DONE, no_canary=True, message=f"deployed {self.spec.image} to production")
        self._set_production(self.spec.revision)

    def _restore(self, action, h, o):
        self._replace_production_behind_canary(_shown(h.canary), h.production)
        self._record(Outcome.DONE, no_canary=True, message=f"production was not healthy: {self.spec.image} "
                                                           "restored behind the canary, which then was removed")
        self._set_production(self.spec.revision)

    def _halt(self, action, h, o):
        raise DeployError(f"{action.reason} ({self.production_problem}): changing nothing. Start a "
                          f"healthy {self.spec.app} by hand (docker start {self.spec.app}), then "
                          "`pulumi refresh` and `pulumi up`")

    def _cleanup(self, action, h, o):
        self._remove_canary()
        self._record(Outcome.DONE, no_canary=True, message=action.reason)
        self._set_production(o.production_revision, _shown(h.production))

    def _abort(self, action, h, o):
        self._remove_canary()
        self._record(Outcome.DONE, no_canary=True, message=f"canary {_shown(h.canary)} removed by "
                                                           "hand (canary_percentage 0)")

    def _replace(self, action, h, o):
        """To the desired revision without analysis: a temporary canary carries the
        traffic while production is replaced."""
        if not (o.canary_revision == self.spec.revision and o.canary_running):
            if not self._start_canary(h, migrate=action.migrate):
                return  # rolled back: production untouched
        self._promote_running_canary(h, o, reason=action.reason)

    def _promote(self, action, h, o):
        self._promote_or_pass_on(h, o, reason=action.reason)

    def _route(self, action, h, o):
        weight = action.steps[0]
        self._route_to_canary(weight)
        self._record(Outcome.DONE, canary_weight=weight, message=f"holding {self.spec.image} at {weight}% "
                                                                 f"(passed at {self.status.passed_weight}%)")

    def _analyse(self, action, h, o):
        if not action.reuse_canary:
            if not self._start_canary(h, migrate=action.migrate):
                return
        else:
            self.log(f"reusing the running canary {h.canary.id if h.canary else ''}")
        self._set(canary_revision=self.spec.revision, canary_image=self.spec.image)
        passed = self.status.passed_weight if action.reuse_canary else 0
        try:
            self._analyse_steps(action.steps, passed, h, o)
        finally:
            self._close_console()

    def _analyse_steps(self, steps, passed, h, o):
        for weight in steps:
            self._route_to_canary(weight)
            self._set(canary_weight=weight)
            self.reports.start()
            result = self.ops.prober.analyse(weight, self.log, self._control(weight))
            summary = self._with_database(result.summary())
            self._set(analysis=summary)
            self.reports.add(summary)
            if result.verdict.status == FAIL:
                self._rollback(result.verdict.reason)
                return
            if result.verdict.status == INCONCLUSIVE:
                self._record(Outcome.INCONCLUSIVE, passed_weight=passed,
                             message=f"holding {self.spec.image} at {weight}%: {result.verdict.reason}")
                self.notify.send("inconclusive", self.status.message, summary)
                return
            passed = weight
            self._set(passed_weight=passed)
            self.log(f"passed at {weight}%: {result.verdict.reason}")
            if self.promote_now:
                break
        if self.promote_now:  # a human decision, recorded as one (message and analysis)
            self._set(analysis={**self.status.analysis, "promoted_by_hand": self.promote_now})
            self._promote_or_pass_on(h, o, reason=f"{self.promote_now}, at {passed}%")
        elif self.spec.auto_promote:
            self._promote_or_pass_on(h, o, reason=f"passed its analysis at {passed}%")
        else:
            self._record(Outcome.HELD, message=f"holding {self.spec.image} at {passed}% for manual "
                                               "promotion (auto_promote is false)")
            self.notify.send("holding", self.status.message, self.status.analysis)

    # -- operators: live progress, their requests, Ctrl-C (operate.py) ------------------------
    def _control(self, weight: int) -> Control:
        """After each check: the progress on the host for `python -m canary status`, then
        an operator's request or the CLI's Ctrl-C, which may end the step."""
        console = self.ops.console

        def control(c: CheckDone) -> Optional[Verdict]:
            e = c.evidence
            if console is not None:
                shown = operate.progress(
                    self.spec.stack, self.spec.image, weight, c.index, c.count, c.seconds_left, c.line,
                    {"requests": e.canary.requests, "error_rate": round(e.canary.error_rate, 2),
                     "p95": round(e.canary.p(95), 4)},
                    {"requests": e.stable.requests, "error_rate": round(e.stable.error_rate, 2),
                     "p95": round(e.stable.p(95), 4)},
                    self.holder, self.spec.analysis.interval, time.time())
                self._best_effort(lambda: console.show(json.dumps(shown) + "\n"), "showing the progress")
            if c.verdict.status != CONTINUE:
                return None  # the evidence decided; a request waits for the next step (or is dropped)
            request = operate.Request.parse(self._console_read()) if console is not None else None
            d = operate.decide(request, self.spec.image, self.cancelled())
            if d.note:
                self.log(d.note)
            if d.consume and console is not None:
                self._best_effort(console.consume, "removing the request")
            if d.full:
                self.promote_now = d.verdict.reason
            return d.verdict
        return control

    def _console_read(self) -> Optional[str]:
        try:
            return self.ops.console.request()
        except Exception as err:  # read again after the next check
            self.log(f"could not read operators' requests: {err}")
            return None

    def _close_console(self) -> None:
        """The analysis ended: no progress left behind, and a request it did not act on is dropped."""
        console = self.ops.console
        if console is None:
            return
        self._best_effort(lambda: console.show(None), "removing the progress")
        left = operate.Request.parse(self._console_read())
        if left is not None:
            self.log(f"dropped the request to {left.verb} by {left.who} at {left.at}: the analysis had ended")
            self._best_effort(console.consume, "removing the request")

    # -- procedures -----------------------------------------------------------------------
    def _start(self, role: str) -> Container:
        spec = self.spec.container(role)
        if not self.ops.containers.image_exists(spec.image):
            raise DeployError(f"image {spec.image} is not on the host (docker images | grep "
                              f"{self.spec.repository})")
        self.log(f"starting {role} container {spec.name} ({self.spec.image}"
                 f"{' ' + self.spec.digest[:19] if self.spec.digest else ''}) on port {spec.host_port}")
        try:
            container = self.ops.containers.run(spec)
        except RemoteError as err:  # Docker refused it (a mount, a port...): the release failed
            raise DeployError(f"docker run of {spec.name} was rejected: {err}") from None
        self._wait_healthy(spec.name, spec.host_port)
        return container

    def _start_canary(self, h: HostState, migrate: bool = False) -> bool:
        """Starts the canary (after the release's migration, when it has one and plan.py
        says it is due); on failure rolls back and returns False."""
        if h.canary is not None:
            self._remove_canary()
        self._check_port(self.spec.canary_port, ours_there=False)  # none, or just removed
        try:
            if migrate:
                self._migrate()
            self._start("canary")
            self.notify.send("started", f"canary {self.spec.image} started; analysing at "
                             f"{', '.join(f'{w}%' for w in self.spec.steps)} for "
                             f"{self.spec.analysis.duration:g}s per step")
            return True
        except DeployError as err:
            self._set(analysis=self._with_database({"decision": "fail", "reason": str(err), "weight": 0}))
            self.reports.add(self.status.analysis)  # a canary that never started has a report too
            self._rollback(str(err))
            return False

    def _migrate(self) -> None:
        """The careful operator's order: a backup of the database, then the migration in a
        one-off container of the new image (production's env and volumes), both before the
        new revision takes any traffic; production keeps serving throughout. A failure
        raises DeployError with production untouched (the backup stays)."""
        m = self.spec.migration
        if m is None:
            return
        if not self.ops.containers.image_exists(self.spec.ref):
            raise DeployError(f"image {self.spec.ref} is not on the host: cannot run its migration")
        if m.backup:
            if self.ops.backups is None:
                raise DeployError("the migration backs the database up first, but the release's provider has "
                                  "no canary:database_url: set it (--secret), or canary:backup false")
            self._journal("backing_up")
            image = m.backup_image or self.spec.ref
            self.log(f"backing up the database before the migration (pg_dump -Fc in {image})")
            path, size = self.ops.backups.backup(image, self.spec.image, m.backup_keep, m.timeout)
            self._set(last_backup=path)
            self.log(f"backup: {path} ({size / 1e6:.1f} MB); the newest {m.backup_keep} are kept")
        self._journal("migrating")
        self.log(f"migrating: `{' '.join(m.command)[:200]}` in a one-off container of {self.spec.image} "
                 f"(production keeps serving; at most {m.timeout:g}s)")
        self.ops.containers.run_once(self.spec.container("migrate"), m.command, m.timeout, self.log)
        self.migrated = True

    def _restore_requested(self, h: HostState) -> None:
        """canary:restore_backup: the database back to a backup, before anything else this
        update does (e.g. the instant rollback to the version that backup was made for).
        Explicit and one-off: done once per name (the journal records it at once)."""
        name = self.spec.restore_backup
        if not name or name == self.status.restored_backup:
            return
        if self.ops.backups is None:
            raise DeployError("canary:restore_backup restores into canary:database_url: set it (--secret)")
        if h.canary is not None or h.split is not None:
            raise DeployError(f"not restoring {name}: a canary runs beside production; end that release first "
                              "(canary_percentage 0, or promote it), then restore")
        image = self.spec.backup_image or self.spec.ref
        timeout = self.spec.migration.timeout if self.spec.migration else 1800.0
        keep = self.spec.migration.backup_keep if self.spec.migration else 5
        # What the restore replaces is kept too: writes made since `name` are not lost for good.
        path, size = self.ops.backups.backup(image, "before-restore", keep, timeout)
        self._set(last_backup=path)
        self.log(f"backup of the database as it is, before the restore: {path} ({size / 1e6:.1f} MB)")
        self.log(f"restoring the database from the backup {name} (schema public replaced in one transaction, "
                 f"with {image}); production keeps running")
        self.ops.backups.restore(image, name, timeout)
        self._set(restored_backup=name)
        self._journal("restored")
        self.log(f"restored the database from {name}")

    def _promote_or_pass_on(self, h: HostState, o: P.Observed, reason: str) -> None:
        if not self.promoted_by:
            self._promote_running_canary(h, o, reason)
            return
        # The canary holds its share until the promote step, which finds it passed (plan.py).
        self._record(Outcome.PASSED, message=f"holding {self.spec.image} for {self.promoted_by}: {reason}")
        self.log(f"{self.spec.image}: {reason}; the later waves may go, {self.promoted_by} promotes it here")

    def _promote_running_canary(self, h: HostState, o: P.Observed, reason: str) -> None:
        self.log(f"promoting {self.spec.image}: {reason}")
        # What production ran before, as observed on the host (adopted containers too),
        # is recorded (journal) before production is touched.
        previous = o.production_revision
        if previous and previous not in (self.spec.revision, self.reverting_from):
            self._set(previous_revision=previous, previous_image=_shown(h.production) or _image_of(previous))
        self._journal("promoting")
        self._replace_production_behind_canary(self.spec.image, h.production)
        self._record(Outcome.DONE, no_canary=True, message=f"promoted {self.spec.image}: {reason}")
        self._set_production(self.spec.revision)
        self._journal("promoted")
        self.log(f"promoted {self.spec.image}; {self.status.previous_image or 'nothing'} before it")
        self.notify.send("promoted", self.status.message, self.status.analysis)

    def _replace_production_behind_canary(self, canary_image: str, production: Optional[Container]) -> None:
        """The running canary carries every request while production is replaced by the
        desired revision; then traffic goes back to production and the canary goes.
        `production`: as this reconcile observed it under the host lock."""
        reason = self.health.of("canary")
        if reason:
            raise DeployError(f"the canary is not healthy ({reason}): production is left as it is")
        self.promoting = True
        # 1. every request to the canary, pinned or not
        self._route_to_canary(100, canary_image)
        # 2. replace production once nginx stopped sending it traffic
        drained = self._drain()
        self._remove_container(self.spec.app, drained, seen=production)
        try:
            self._start("production")
        except DeployError as err:
            # Traffic is still on the (healthy) canary: keep it there and say so.
            raise DeployError(f"the new production container failed ({err}); traffic stays on the "
                              "canary container until the next `pulumi up`") from None
        # 3. back to production, then drain and remove the canary
        self._remove_canary()

    def _rollback(self, reason: str) -> None:
        kept = ""
        if self.migrated:  # the schema stays migrated: production runs on it (expand/contract)
            kept = (f". The database keeps {self.spec.image}'s migration; the backup made before it: "
                    f"{self.status.last_backup or 'none (backup is false)'} (canary:restore_backup restores it)")
        # Recorded before anything else: a log line to a killed CLI already fails.
        self._record(Outcome.FAILED, no_canary=True, failed_revision=self.spec.revision,
                     failed_image=self.spec.image, failure_reason=reason,
                     message=f"rolled back {self.spec.image}: {reason}{kept}")
        self._journal("rolling_back")
        self.log(f"ROLLING BACK {self.spec.image}: {reason}")
        self._remove_canary()
        self.notify.send("rolled_back", f"{self.status.message}. Production is unchanged.",
                         self.status.analysis)

    def _remove_canary(self) -> None:
        """Traffic back to production first; the canary stops after nginx drained.

        Only once production answers its health check: otherwise the canary may be the
        last healthy backend, and it stays with the traffic it has."""
        h = self.observe()
        if h.canary is None and h.split is None:
            return
        if h.canary is not None:
            self._check_owned(h.canary)
        reason = self.health.of("production")
        if reason:
            raise DeployError(f"production ({self.spec.app}) is not healthy ({reason}): the canary "
                              f"{self.canary_name} and the traffic split stay as they are")
        self.ops.router.remove()
        drained = self._drain()
        if h.canary is not None:
            self._remove_container(self.canary_name, drained, seen=h.canary)

    def _drain(self) -> bool:
        self.reports.start()
        return self.ops.router.wait_drained(self.spec.drain_timeout)

    def _route_to_canary(self, weight: int, canary_image: Optional[str] = None) -> None:
        self.log(f"routing {weight}% of new clients to the canary")
        self.ops.router.install(
            split_config(self.spec.split, weight, canary_image or self.spec.image, self.force_token),
            mode=0o600 if self.force_token else 0o644)

    def _wait_healthy(self, name: str, port: int) -> None:
        problem = self.health.problem(name, port)
        if problem:
            raise DeployError(problem)

    def _check_port(self, port: int, ours_there: bool) -> None:
        """Fails when something else holds `port`. `ours_there`: our container of that
        port exists (as this reconcile observed it under the host lock): it is replaced."""
        if ours_there:
            return
        holder = self.ops.containers.port_holder(port)
        if holder:
            raise DeployError(f"port {port} on the host is already taken ({holder.split()[-1][:120]}); "
                              f"free it or choose another port in the stack config")

    def _with_database(self, summary: dict) -> dict:
        """The analysis summary with this run's database steps (the report names them)."""
        if not (self.migrated or self.status.last_backup):
            return summary
        migration = " ".join(self.spec.migration.command) if self.migrated and self.spec.migration else ""
        return {**summary, "database": {"migration": migration, "backup": self.status.last_backup or ""}}

    def _best_effort(self, fn, what: str = "") -> None:
        try:
            fn()
        except Exception as err:  # the original error is the one to report
            self.log(f"{what} failed: {err}" if what else f"cleanup failed too: {err}")

    # -- the status ---------------------------------------------------------------------------
    def _set_production(self, revision: Optional[str], image: Optional[str] = None) -> None:
        if revision == self.spec.revision:
            image = self.spec.image  # the same digest and spec under the configured tag
        elif image is None:
            image = _image_of(revision)
        self._set(production_revision=revision, production_image=image,
                  production_running=revision is not None)

    def _set(self, **changes) -> None:
        self.status = self.status.with_(**changes)

    def _record(self, outcome: Outcome, no_canary: bool = False, **changes) -> None:
        """The step's outcome: the phase table says the new phase."""
        phase = transition(self.status.phase, self.kind, outcome)
        self.status = (self.status.without_canary if no_canary else self.status.with_)(phase=phase, **changes)

    # -- the journal on the host ---------------------------------------------------------
    def _journal(self, step: str) -> None:
        entry = {"stack": self.spec.stack, "image": self.spec.image, "revision": self.spec.revision,
                 "step": step, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 # (a fleet's later wave stages the revision before its release runs: it
                 # needs the key. The host holds the container env in the clear anyway.)
                 "revision_key": self.spec.revision_key,
                 "record": redact.current().value(self.status.journal_record())}
        self.ops.journal.write(json.dumps(entry) + "\n")

    def _read_journal(self) -> dict:
        text = self.ops.journal.read()
        try:
            entry = json.loads(text) if text else {}
        except ValueError:
            self.log("ignoring an unreadable journal of this app on the host")
            return {}
        return entry if isinstance(entry, dict) else {}
