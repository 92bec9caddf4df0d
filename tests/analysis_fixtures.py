"""Analysis summaries as the runner makes them, from made-up but realistic evidence: access
log lines in nginx's format (templates/site.conf.j2) read by traffic.parse, probes added
to the verdict's Evidence, the verdict judged after every check, the runner's per-check
points and Result.summary(). Only the network is left out."""

from __future__ import annotations

import json
import random

from canary.analysis import traffic
from canary.analysis.result import Result, point
from canary.analysis.verdict import CONTINUE, Evidence, Thresholds, judge

STABLE_PORT, CANARY_PORT = 8069, 8070
THRESHOLDS = Thresholds(error_threshold=5, max_response_time=2, latency_factor=1.5, min_requests=20,
                        max_error_logs_per_minute=10)


def access_line(port: int, status: int, seconds: float, at: float) -> str:
    return json.dumps({"time": at, "upstream": f"127.0.0.1:{port}", "status": str(status), "final": status,
                       "rt": seconds, "urt": f"{seconds:.3f}", "method": "GET", "uri": "/web", "forced": ""})


def run(checks: int, interval: float, probes_per_check: int, stable_rps: float, canary_share: float,
        stable_ms, canary_ms, canary_5xx, probe_ms, stable_probe_ms, probe_fails=(), stable_5xx=0.01,
        weight: int = 10, thresholds: Thresholds = THRESHOLDS, seed: int = 7) -> dict:
    """The summary of an analysis of `checks` checks. *_ms and canary_5xx are functions of
    the check number (latency in ms of one request or probe, the canary's 5xx share);
    probe_fails: (check, probe) pairs whose health check failed."""
    rnd = random.Random(seed)
    e = Evidence(planned_probes=checks * probes_per_check)
    series = []
    verdict = None
    for i in range(1, checks + 1):
        for j in range(probes_per_check):
            e.add_probe((i, j) not in probe_fails, probe_ms(i, rnd) / 1000)
        e.stable_probe_latencies.append(stable_probe_ms(i, rnd) / 1000)
        lines = []
        for _ in range(int(stable_rps * interval * (1 - canary_share))):
            lines.append(access_line(STABLE_PORT, 500 if rnd.random() < stable_5xx else 200,
                                     stable_ms(i, rnd) / 1000, i * interval))
        for _ in range(int(stable_rps * interval * canary_share)):
            lines.append(access_line(CANARY_PORT, 502 if rnd.random() < canary_5xx(i) else 200,
                                     canary_ms(i, rnd) / 1000, i * interval))
        rnd.shuffle(lines)
        stats = traffic.parse("\n".join(lines), STABLE_PORT, CANARY_PORT)
        e.canary.merge(stats["canary"])
        e.stable.merge(stats["stable"])
        e.minutes = i * interval / 60
        verdict = judge(e, thresholds, final=i == checks)
        series.append(point(i, i * interval - rnd.uniform(0, 0.4), e))
        if verdict.status != CONTINUE:
            break
    return Result(verdict, e, weight, series[-1]["t"], series, planned_checks=checks,
                  thresholds=thresholds).summary()


def _around(ms: float, spread: float = 0.35):
    return lambda i, rnd: ms * rnd.lognormvariate(0, spread)


def slow_canary() -> dict:
    """A canary that gets slower as it runs: its real-traffic p95 passes 1.5 x stable's
    mid-analysis and it fails there, at check 6 of 10 planned."""
    return run(checks=10, interval=6, probes_per_check=5, stable_rps=20, canary_share=0.1,
               stable_ms=_around(45), canary_ms=lambda i, rnd: (38 + 2 * i * i) * rnd.lognormvariate(0, 0.35),
               canary_5xx=lambda i: 0.015, stable_5xx=0.01, probe_ms=_around(9, 0.25),
               stable_probe_ms=_around(8, 0.25), probe_fails={(5, 2)}, seed=1)


def one_check_pass() -> dict:
    """A one-check analysis that passed."""
    return run(checks=1, interval=10, probes_per_check=5, stable_rps=25, canary_share=0.1,
               stable_ms=_around(40), canary_ms=_around(42), canary_5xx=lambda i: 0.0,
               probe_ms=_around(9), stable_probe_ms=_around(8))


def no_traffic_pass() -> dict:
    """Health checks only: no real request reached either backend."""
    return run(checks=4, interval=5, probes_per_check=4, stable_rps=0, canary_share=0.1,
               stable_ms=_around(40), canary_ms=_around(40), canary_5xx=lambda i: 0.0,
               probe_ms=_around(9), stable_probe_ms=_around(8))


NEVER_STARTED = {"decision": "fail", "weight": 0,
                 "reason": "container odoo-canary exited before it became healthy (exit code 1)"}
