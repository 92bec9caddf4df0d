"""What the next `pulumi up` will do, in words, for `pulumi preview` and the PR comment.

The program asks plan.py with the stack's last record standing in for the host (the
release provider's diff does the same), and says the action with its weights, its
analysis time and the image before -> after. The update itself plans again with what
it observes on the host, so a host changed by hand meanwhile can still change the
answer; the words say what the record implies.
"""

from __future__ import annotations

from typing import Optional

from . import plan as P
from .spec import ReleaseSpec
from .status import REVISION_KEYS, ReleaseStatus


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _weights(steps: tuple[int, ...]) -> str:
    return ", ".join(f"{w}%" for w in steps)


def desired(spec: ReleaseSpec) -> P.Desired:
    return P.Desired(revision=spec.revision, steps=spec.steps, auto_promote=spec.auto_promote,
                     retry=spec.retry, promote=spec.promote)


def action_for(spec: ReleaseSpec, status: ReleaseStatus) -> P.Action:
    """plan.py's answer with the record standing in for the host."""
    return P.plan(desired(spec), status.recorded(), status.as_observed())


def describe(spec: ReleaseSpec, status: Optional[ReleaseStatus]) -> str:
    """The planned action in one line. `status` is None for a stack that never deployed."""
    if status is not None:  # revisions recorded in an older form, in the current one
        status = status.with_(**{k: spec.canonical(getattr(status, k)) for k in REVISION_KEYS})
    words = _words(spec, status)
    if spec.restore_backup and (status is None or spec.restore_backup != status.restored_backup):
        words = f"restore the database from the backup {spec.restore_backup} first, then: {words}"
    m = spec.migration
    if m and (status is None or action_for(spec, status).migrate):
        backup = "back up the database (pg_dump), then " if m.backup else "no backup (backup is false), "
        return f"{words}. First: {backup}migrate with `{' '.join(m.command)[:200]}` in a one-off container"
    return words


def _words(spec: ReleaseSpec, status: Optional[ReleaseStatus]) -> str:
    image = spec.image
    if status is None:
        return f"first deploy: {image} straight to production (nothing runs there yet)"
    a = action_for(spec, status)
    current = status.production_image or "nothing"
    analysis = spec.analysis.duration
    then = "then promote it" if spec.auto_promote else "then hold it for promotion by hand"
    if a.kind == P.DEPLOY:
        return f"first deploy: {image} straight to production (nothing runs there yet)"
    if a.kind == P.NOOP:
        if status.production_revision == spec.revision:
            return f"no change: production runs {image}"
        if status.canary_image:
            return f"no change: the canary {status.canary_image} holds {status.canary_weight}% of new clients"
        return f"no change: canary_percentage is 0 and no canary runs (production: {current})"
    if a.kind == P.CLEANUP:
        leftover = f" {status.canary_image}" if status.canary_image else ""
        return f"remove the leftover canary{leftover}: production already runs {image}"
    if a.kind == P.BLOCKED:
        return (f"refused, nothing changes: {image} was rolled back ({a.reason}); change image_tag, or "
                "set retry true to analyse it again")
    if a.kind == P.ABORT:
        return f"abort: remove the canary {status.canary_image}; production {current} keeps all traffic"
    if a.kind == P.REPLACE:
        if a.why == P.Why.ROLLBACK:
            return f"instant rollback: {current} -> {image}, no analysis ({image} ran in production before)"
        if a.why == P.Why.STOPPED:
            return f"restart production: {image} (its container is not running), no analysis"
        return f"promote without analysis (canary_percentage 100): {current} -> {image}"
    if a.kind == P.ROUTE:
        return (f"re-weight the held canary {image}: {status.canary_weight}% -> {a.steps[0]}% of new clients "
                f"(it passed at {status.passed_weight}%), no new analysis")
    if a.kind == P.PROMOTE:
        return (f"promote the held canary: {current} -> {image} (it holds {status.canary_weight}%), "
                "no new analysis")
    # ANALYSE
    per_step = " per step" if len(a.steps) > 1 else ""
    if a.reuse_canary:
        return (f"analyse the running canary {image} at {_weights(a.steps)} of new clients for "
                f"{_duration(analysis)}{per_step}, {then}; roll back on failure (production: {current})")
    return (f"canary: {current} -> {image}, {_weights(a.steps)} of new clients for {_duration(analysis)} of "
            f"analysis{per_step}, {then}; roll back on failure")
