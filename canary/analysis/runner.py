"""The analysis loop: one check every `interval` seconds, each collected from the
evidence sources (analysis/sources/) in order, then judged (verdict.py). Every check
prints one progress line, which `pulumi up` shows as it happens.

After each check, `control` (when given) sees how the check went and may end the step
with a verdict of its own: an operator's abort or promote, or the CLI's Ctrl-C
(operate.py). It decides only while the evidence has not: a failure found stands.

Pure but for the sources it is given and its clock, so it is unit-tested with fake
sources (tests/unit/test_runner.py).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ..spec import AnalysisSpec
from .result import Result, point
from .sources import Check, Source
from .verdict import CONTINUE, Evidence, Verdict, judge


@dataclass(frozen=True)
class CheckDone:
    """What `control` sees after each check."""
    index: int
    count: int
    seconds_left: float
    line: str  # its progress line
    evidence: Evidence
    verdict: Verdict  # the evidence's verdict so far


Control = Callable[[CheckDone], Optional[Verdict]]


def analyse(sources: Sequence[Source], a: AnalysisSpec, image: str, weight: int,
            log: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep, control: Optional[Control] = None) -> Result:
    checks = a.checks
    evidence = Evidence(planned_probes=checks * a.probes_per_check)
    series: list[dict] = []
    verdict = Verdict(CONTINUE, "")
    log(f"analysing {image} at {weight}% for {a.duration:g}s: {checks} checks every {a.interval:g}s, "
        f"{a.probes_per_check} probe(s) each; threshold {a.thresholds.error_threshold:g}%")
    with ExitStack() as opened:
        for source in sources:
            opened.enter_context(source)
        started = clock()
        for i in range(1, checks + 1):
            check = Check(i, checks, started + (i - 1) * a.interval, a.interval, clock, sleep)
            for source in sources:
                source.collect(evidence, check)
            evidence.minutes = (clock() - started) / 60
            verdict = judge(evidence, a.thresholds, check.final)
            series.append(point(i, clock() - started, evidence))
            line = progress(i, checks, sources, evidence, a.thresholds.error_threshold, verdict)
            log(line)
            if control is not None:
                left = max(0.0, started + checks * a.interval - clock())
                told = control(CheckDone(i, checks, left, line, evidence, verdict))
                if told is not None and verdict.status == CONTINUE:
                    verdict = told
                    log(f"check {i}/{checks} => {verdict.status.upper()}: {verdict.reason}")
            if verdict.status != CONTINUE:
                break
    return Result(verdict, evidence, weight, clock() - started, series,
                  planned_checks=checks, thresholds=a.thresholds)


def progress(i: int, n: int, sources: Sequence[Source], e: Evidence, threshold: float, v: Verdict) -> str:
    line = (f"check {i}/{n}: health {e.last_probe or '-'}, {e.probes - e.probe_failures}/{e.probes} ok, "
            f"error rate {e.probe_error_rate:.1f}% (threshold {threshold:g}%) | traffic: canary "
            f"{e.canary.requests} req {e.canary.error_rate:.1f}% 5xx p95 {e.canary.p(95) * 1000:.0f}ms, "
            f"stable {e.stable.requests} req {e.stable.error_rate:.1f}% 5xx p95 {e.stable.p(95) * 1000:.0f}ms")
    notes = [s.note() for s in sources]
    line += "".join(f" | {n}" for n in notes if n)
    if e.error_logs or e.stable_error_logs:
        line += f" | ERROR log lines: canary {e.error_logs}, stable {e.stable_error_logs}"
    for m in e.measurements.values():
        line += f" | {m.name} {m.value:g}" if m.value is not None else f" | {m.name} unknown"
    return line + (f" => {v.status.upper()}: {v.reason}" if v.status != CONTINUE else "")
