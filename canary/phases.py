"""The release's phase (output `phase`) and how each step moves it: data, not code.

The controller carries out one plan.py action per update and reports how it ended (an
Outcome); `transition` says which phase the stack records then. `pulumi refresh` is a
step too (REFRESH): it corrects the phase by what it found on the host. A step that
raises records no new phase: the host journal keeps the one it had.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional


class Phase(str, Enum):
    STABLE = "stable"            # production runs the desired revision, no canary
    HOLDING = "holding"          # a canary that passed holds its traffic share
    PROMOTED = "promoted"        # the last update put a new revision into production
    ROLLED_BACK = "rolled_back"  # the canary failed; production unchanged
    ABORTED = "aborted"          # the canary was removed without a verdict
    INCONCLUSIVE = "inconclusive"  # not enough evidence: the canary holds
    INTERRUPTED = "interrupted"  # a canary runs that the stack did not record

    def __str__(self) -> str:
        return self.value


HELD_PHASES = (Phase.HOLDING, Phase.INCONCLUSIVE)


class Outcome(str, Enum):
    DONE = "done"                  # the action did what it was planned to do
    IN_SYNC = "in_sync"            # noop: production already runs the desired revision
    HELD = "held"                  # the canary passed; held for a person to promote
    PASSED = "passed"              # the canary passed; the fleet's promote step promotes it
    INCONCLUSIVE = "inconclusive"  # the analysis could not decide: held
    FAILED = "failed"              # the canary failed (to start, or its analysis): rolled back
    CANARY_GONE = "canary_gone"    # refresh: no canary and no split on the host
    CANARY_FOUND = "canary_found"  # refresh: a canary or a split on the host

    def __str__(self) -> str:
        return self.value


ANY = None  # a rule for every phase
SAME = None  # the phase stays as it is

# (phase or ANY, action, outcome) -> the new phase, or SAME. The most specific rule wins.
# Actions are plan.py's kinds, plus "refresh".
TABLE: dict[tuple[Optional[Phase], str, Outcome], Optional[Phase]] = {
    # production already runs the revision: a finished promotion stays "promoted"
    (ANY, "noop", Outcome.IN_SYNC): Phase.STABLE,
    (Phase.PROMOTED, "noop", Outcome.IN_SYNC): SAME,
    (ANY, "noop", Outcome.DONE): SAME,  # e.g. a held canary already at its weight
    (ANY, "deploy", Outcome.DONE): Phase.PROMOTED,
    (ANY, "restore", Outcome.DONE): Phase.STABLE,
    (ANY, "cleanup", Outcome.DONE): Phase.STABLE,
    (ANY, "abort", Outcome.DONE): Phase.ABORTED,
    (ANY, "route", Outcome.DONE): Phase.HOLDING,
    (ANY, "promote", Outcome.DONE): Phase.PROMOTED,
    (ANY, "replace", Outcome.DONE): Phase.PROMOTED,
    (ANY, "replace", Outcome.FAILED): Phase.ROLLED_BACK,  # its temporary canary did not start
    (ANY, "analyse", Outcome.DONE): Phase.PROMOTED,
    (ANY, "analyse", Outcome.HELD): Phase.HOLDING,
    # a fleet's canary droplet: the verdict opens the later waves' gate, and the droplet's
    # promote step (promotion_resource.py) promotes the canary, which holds until then
    (ANY, "analyse", Outcome.PASSED): Phase.HOLDING,
    (ANY, "promote", Outcome.PASSED): SAME,
    (ANY, "analyse", Outcome.INCONCLUSIVE): Phase.INCONCLUSIVE,
    (ANY, "analyse", Outcome.FAILED): Phase.ROLLED_BACK,
    # refresh: a held canary that is gone was aborted by hand; a canary the stack did
    # not record is an interrupted update
    (ANY, "refresh", Outcome.CANARY_GONE): SAME,
    (Phase.HOLDING, "refresh", Outcome.CANARY_GONE): Phase.ABORTED,
    (Phase.INCONCLUSIVE, "refresh", Outcome.CANARY_GONE): Phase.ABORTED,
    (ANY, "refresh", Outcome.CANARY_FOUND): Phase.INTERRUPTED,
    (Phase.HOLDING, "refresh", Outcome.CANARY_FOUND): SAME,
    (Phase.INCONCLUSIVE, "refresh", Outcome.CANARY_FOUND): SAME,
}


def rule(phase: Phase, action: str, outcome: Outcome) -> Optional[Phase]:
    """The table's answer: a new phase, or SAME. Raises ValueError for a combination no
    step produces (a bug, not a user error)."""
    phase = Phase(phase)
    for key in ((phase, action, outcome), (ANY, action, outcome)):
        if key in TABLE:
            return TABLE[key]
    raise ValueError(f"no transition for {action} ending {outcome} in phase {phase}")


def transition(phase: Phase, action: str, outcome: Outcome) -> Phase:
    """The phase after `action` ended with `outcome`."""
    new = rule(phase, action, outcome)
    return Phase(phase) if new is SAME else new
