"""Operating a running release from anywhere (Argo Rollouts' verbs), pure: no I/O.

While an analysis runs, the release keeps STATE_DIR/APP/progress.json on the host up to
date (one write per check). Operators ask through STATE_DIR/APP/request.json (`python -m
canary abort | promote [--full]`, operate_cli.py); the analysis reads it after each check
and `decide` says what it does to the analysis. The host is the meeting point: an
operator needs the stack's SSH access, not the machine or CI job running `pulumi up`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Optional

from .analysis.verdict import FAIL, PASS, Verdict

ABORT, PROMOTE, PROMOTE_FULL = "abort", "promote", "promote-full"
VERBS = (ABORT, PROMOTE, PROMOTE_FULL)
CANCELLED = "cancelled (Ctrl-C)"


@dataclass(frozen=True)
class Request:
    verb: str
    who: str  # user@host
    at: str  # UTC, ISO 8601
    image: str  # the canary it targets: a request for another one is stale

    def to_json(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def parse(cls, text: Optional[str]) -> Optional["Request"]:
        """The request in request.json, or None (none, unreadable or not ours: ignored)."""
        try:
            d = json.loads(text or "")
            r = cls(*(str(d[k]) for k in ("verb", "who", "at", "image")))
        except (ValueError, TypeError, KeyError):
            return None
        return r if r.verb in VERBS else None


@dataclass(frozen=True)
class Decision:
    verdict: Optional[Verdict] = None  # ends the current step so; None: it goes on
    full: bool = False  # promote now, without the remaining steps and whatever auto_promote says
    consume: bool = False  # the request was acted upon (or is stale): remove it
    note: str = ""  # a line for the log


def decide(request: Optional[Request], image: str, cancelled: bool = False) -> Decision:
    """What an operator's request (or the CLI's Ctrl-C) does to the analysis of `image`,
    read after a check that did not decide the step by itself."""
    if cancelled:
        return Decision(Verdict(FAIL, CANCELLED))
    if request is None:
        return Decision()
    if request.image != image:
        return Decision(consume=True, note=f"ignoring a stale request to {request.verb} {request.image} "
                                           f"by {request.who} at {request.at}: {image} runs")
    if request.verb == ABORT:
        return Decision(Verdict(FAIL, f"aborted by {request.who} at {request.at}"), consume=True)
    by = f"promoted by hand by {request.who} at {request.at}"
    if request.verb == PROMOTE:
        return Decision(Verdict(PASS, by), consume=True)
    return Decision(Verdict(PASS, f"{by} (--full: promoted now, without the remaining steps)"),
                    full=True, consume=True)


def progress(stack: str, image: str, weight: int, check: int, checks: int, seconds_left: float, line: str,
             canary: dict, stable: dict, holder: str, interval: float, now: float) -> dict:
    """progress.json: what `python -m canary status` shows of a running analysis.
    `now`: epoch seconds of this write; a progress older than `stale_after` is a dead run's."""
    return {"stack": stack, "image": image, "weight": weight, "check": check, "checks": checks,
            "seconds_left": round(seconds_left), "canary": canary, "stable": stable, "line": line,
            "holder": holder, "interval": interval, "updated": now}


def running(progress_text: Optional[str], journal_text: Optional[str], now: float) -> Optional[dict]:
    """The progress of an analysis that runs now, or None: progress.json written lately
    (a killed CLI leaves its last one behind) by the update the journal says still runs."""
    try:
        p, j = json.loads(progress_text or ""), json.loads(journal_text or "")
    except ValueError:
        return None
    if not (isinstance(p, dict) and isinstance(j, dict)):
        return None
    fresh = now - float(p.get("updated") or 0) <= stale_after(float(p.get("interval") or 0))
    return p if fresh and j.get("step") != "done" and j.get("image") == p.get("image") else None


def stale_after(interval: float) -> float:
    # A check can take longer than its interval (slow sources, an SSH reconnect).
    return 3 * interval + 30
