"""What a release should do next: pure decision logic, no I/O.

Inputs are the desired release (stack config), what the stack recorded last time and
what runs on the host now. The answer is one Action; the controller carries it out.

A *revision* identifies what production would run: the image plus the container's
spec (env, volumes, ports). A new revision is analysed as a canary before it is
promoted, as Flagger does for any change of a pod spec.

  deploy    nothing runs in production yet: put the revision straight into production
  restore   production is not healthy and a healthy canary carries the traffic: replace
            production with the revision behind the canary, then remove the canary
  halt      production is not healthy and neither is the canary: change nothing
  noop      the host already is as desired
  cleanup   production already runs the revision; remove a leftover canary or split
  blocked   the revision was rolled back before and no retry was asked for
  replace   go to the revision without analysis: the previous production revision
            (instant rollback), canary_percentage 100, a stopped production, or a
            droplet of a later wave once the canary droplets passed (fleet.py)
  abort     canary_percentage 0: remove the canary, keep production (does not block)
  route     a held canary that passed at a higher weight: only rewrite the split
  promote   a held canary that passed its analysis (with auto_promote), or any held
            canary named by the one-off `promote` key: promote it, no new analysis
  analyse   start (or keep) a canary of the revision and analyse it at `steps`

`stage` answers a question of its own for a droplet of a fleet's later wave while the
canary droplets analyse: may the revision's container start there now, beside production
and without traffic, so that its release, once the gate opens, only moves traffic?
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Optional

from .phases import HELD_PHASES, Phase


class Kind(StrEnum):
    """What the release does next (the table above). A str: journals and logs name it."""
    DEPLOY = "deploy"
    NOOP = "noop"
    CLEANUP = "cleanup"
    BLOCKED = "blocked"
    REPLACE = "replace"
    ABORT = "abort"
    ROUTE = "route"
    PROMOTE = "promote"
    ANALYSE = "analyse"
    RESTORE = "restore"
    HALT = "halt"


DEPLOY, NOOP, CLEANUP, BLOCKED, REPLACE, ABORT, ROUTE, PROMOTE, ANALYSE, RESTORE, HALT = Kind


class Why(StrEnum):
    """Why a replace goes without analysis (planned.py words it; no text is matched)."""
    ROLLBACK = "rollback"  # back to the previous production revision
    STOPPED = "stopped"  # production's container is not running
    FULL = "full"  # canary_percentage 100
    APPROVED = "approved"  # it passed on a fleet's canary droplets

# The phases recorded in the stack (output `phase`): see phases.py.
STABLE, HOLDING, PROMOTED, ROLLED_BACK, ABORTED, INCONCLUSIVE, INTERRUPTED = (
    Phase.STABLE, Phase.HOLDING, Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.INCONCLUSIVE,
    Phase.INTERRUPTED)


@dataclass(frozen=True)
class Desired:
    revision: str
    steps: tuple[int, ...]
    auto_promote: bool
    retry: bool
    promote: bool = False  # a person promotes this revision's held canary (like Argo's promote)
    approved: str = ""  # why it needs no analysis here: it passed on the canary droplets of a fleet


@dataclass(frozen=True)
class Recorded:
    phase: Phase = STABLE
    previous_revision: Optional[str] = None
    canary_revision: Optional[str] = None
    canary_weight: int = 0
    passed_weight: int = 0  # highest weight the current canary passed its analysis at
    failed_revision: Optional[str] = None
    failure_reason: Optional[str] = None


@dataclass(frozen=True)
class Observed:
    production_revision: Optional[str]  # None: no production container
    production_running: bool
    canary_revision: Optional[str]  # None: no canary container
    canary_running: bool
    split_weight: Optional[int]  # None: no split file; -1: a split we did not write
    # Health is checked only while a canary container exists (None: not checked). A
    # step never removes the last healthy backend, so these decide before anything moves.
    production_healthy: Optional[bool] = None
    canary_healthy: Optional[bool] = None


@dataclass(frozen=True)
class Action:
    kind: Kind
    steps: tuple[int, ...] = ()
    reuse_canary: bool = False
    reason: str = ""
    cleanup: bool = False  # blocked, but a canary of it is left over: remove it first
    # The revision reaches users for the first time: the release's migration runs first
    # (not for a rollback, a canary resumed, nor a fleet's later droplets: migrated already).
    migrate: bool = False
    why: Optional[Why] = None  # a replace's reason, as a code


def plan(d: Desired, r: Recorded, o: Observed) -> Action:
    has_canary = o.canary_revision is not None or o.split_weight is not None
    if o.production_revision is None:
        return Action(DEPLOY, reason="nothing runs in production yet", migrate=True)
    if o.canary_revision is not None and o.production_healthy is False:
        # E.g. a promotion failed or was killed while the new production was starting.
        if d.revision == r.failed_revision and not d.retry and d.revision != o.production_revision:
            return Action(BLOCKED, reason=r.failure_reason or "rolled back before")
        if o.canary_healthy:
            return Action(RESTORE, reason="production is not healthy and the canary carries the "
                                          "traffic: replacing production behind it")
        return Action(HALT, reason="neither production nor the canary answers its health check")
    if d.revision == o.production_revision:
        if has_canary:
            return Action(CLEANUP, reason="production already runs this revision: removing the canary")
        if not o.production_running:
            return Action(REPLACE, reason="the production container is not running", why=Why.STOPPED)
        return Action(NOOP)
    if d.revision == r.failed_revision and not d.retry:
        return Action(BLOCKED, reason=r.failure_reason or "rolled back before", cleanup=has_canary)
    if d.steps == (0,):
        if has_canary:
            return Action(ABORT, reason="canary_percentage is 0: removing the canary")
        return Action(NOOP)
    if d.revision == r.previous_revision:  # (a canary of it, left by one cut short, is reused)
        return Action(REPLACE, reason="instant rollback to the previous production revision", why=Why.ROLLBACK)
    if d.steps == (100,):
        return Action(REPLACE, reason="canary_percentage is 100: promoting without analysis", migrate=True,
                      why=Why.FULL)
    if d.approved:
        return Action(REPLACE, reason=d.approved, why=Why.APPROVED)

    canary_up = o.canary_revision == d.revision and o.canary_running
    if canary_up and r.canary_revision == d.revision and r.phase in HELD_PHASES:
        if d.promote:
            return Action(PROMOTE, reason=f"promoted by hand at {o.split_weight or r.canary_weight}% "
                                          "(canary:promote names this canary)")
        target = d.steps[-1]
        if r.phase == HOLDING and r.passed_weight >= target:
            if d.auto_promote:
                return Action(PROMOTE, reason=f"the held canary passed at {r.passed_weight}%: promoting")
            if o.split_weight == target:
                return Action(NOOP)
            return Action(ROUTE, steps=(target,), reuse_canary=True,
                          reason=f"the held canary passed at {r.passed_weight}%: routing {target}% to it")
        # More traffic than it was analysed at: re-route and re-analyse, no restart.
        remaining = tuple(s for s in d.steps if s > r.passed_weight) or (target,)
        return Action(ANALYSE, steps=remaining, reuse_canary=True,
                      reason=f"held canary: analysing at {', '.join(map(str, remaining))}%")
    return Action(ANALYSE, steps=d.steps, reuse_canary=canary_up, migrate=not canary_up,
                  reason="resuming with the running canary" if canary_up else "new canary")


def due_for_promotion(d: Desired, r: Recorded) -> bool:
    """Whether the recorded canary is one plan() promotes once it still runs: a held
    canary of the revision that passed at its final weight with auto_promote, or one a
    person promotes. A fleet's later waves go as soon as their canary droplets say so
    (fleet.py), while those droplets' own promotion is still under way."""
    if r.canary_revision != d.revision or r.phase not in HELD_PHASES:
        return False
    return d.promote or (d.auto_promote and r.phase == HOLDING and r.passed_weight >= d.steps[-1])


class Stage(StrEnum):
    """stage()'s answers."""
    START = "start"
    KEEP = "keep"
    SKIP = "skip"


START, KEEP, SKIP = Stage


def stage(d: Desired, r: Recorded, o: Observed) -> tuple[Stage, str]:
    """(START | KEEP | SKIP, why) for a droplet of a later wave before its gate: START
    only where its release would then replace production with the revision (a canary of
    it started now is reused), and nothing routes traffic to a canary here (no split)."""
    if o.production_revision is None or not o.production_running:
        return SKIP, "no running production: its release deploys it"
    if o.split_weight is not None:
        return SKIP, "a traffic split is in place: its release decides what to do with it"
    if d.revision == o.production_revision:
        return SKIP, "production runs it already"
    if d.revision == r.failed_revision and not d.retry:
        return SKIP, "it was rolled back here before"
    if d.steps == (0,):
        return SKIP, "canary_percentage is 0"
    if o.canary_revision == d.revision and o.canary_running:
        return KEEP, "it runs beside production already"
    return START, "starting it beside production, without traffic, while the canary droplets analyse"
