"""Evidence sources: each gathers one kind of evidence for the verdict, once per check
(like Flagger's metric providers and Argo Rollouts' analysis providers).

A source is a context manager: entering it marks where its evidence starts (a log
offset, a timestamp, a tunnel); `collect(evidence, check)` adds what it found in this
check to the evidence; leaving it closes what it opened. Sources run in order within a
check: the health probes first (they pace the check), then the rest.

A source that cannot measure in a check records why in `evidence.unmeasured[name]`
(and removes it once it measures again): a pass then becomes INCONCLUSIVE. A number
with limits is a `Measurement`: unknown fails closed.

`for_release` (sources/release.py) picks the sources a release's config asks for; a new
source is one module here plus its config keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..verdict import Evidence


@dataclass(frozen=True)
class Check:
    """The check being collected: number `index` of `count`, planned to start at `start`
    (the analysis clock) and to last `interval` seconds."""
    index: int
    count: int
    start: float
    interval: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    @property
    def final(self) -> bool:
        return self.index == self.count

    def wait_until(self, due: float) -> None:
        wait = due - self.clock()
        if wait > 0:
            self.sleep(wait)


class Source:
    """Base of the evidence sources: nothing to open or close unless overridden."""

    name = "source"

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def collect(self, evidence: Evidence, check: Check) -> None:
        raise NotImplementedError

    def note(self) -> str:
        """What the source saw in its last check, for the progress line ("" for nothing)."""
        return ""
