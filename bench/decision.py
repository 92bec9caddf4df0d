"""Decision quality at equal analysis time (15 minutes, threshold 5 %).

Replays canaries with a known true failure rate through the guide's rule and through
this project's verdict (canary/analysis/verdict.py, the code `pulumi up` runs), many
times each, and prints the share rolled back, the samples used and the time to a
decision. Pure simulation: no host needed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from canary.analysis.traffic import Backend
from canary.analysis.verdict import CONTINUE, FAIL, Evidence, Thresholds, judge

DURATION = 900.0
THRESHOLD = 5.0
RATES = (1, 2, 4, 10, 20)


@dataclass
class Outcome:
    rolled_back: int = 0
    samples: int = 0
    seconds: float = 0.0


def guide_rule(p: float, rng: random.Random) -> tuple[bool, int, float]:
    """30 probes at 30 s; roll back as soon as failed/total exceeds the threshold."""
    failed = 0
    for n in range(1, 31):
        failed += rng.random() < p
        if 100.0 * failed / n > THRESHOLD:
            return True, n, n * 30.0
    return False, 30, DURATION


def project_rule(p: float, rng: random.Random, interval: float, probes_per_check: int,
                 canary_rps: float) -> tuple[bool, int, float]:
    """The project's verdict, check by check, with probes and (optionally) real traffic."""
    th = Thresholds(error_threshold=THRESHOLD, max_response_time=2, latency_factor=2,
                    min_requests=50, max_error_logs_per_minute=10)
    checks = round(DURATION / interval)
    e = Evidence(planned_probes=checks * probes_per_check)
    per_check = canary_rps * interval
    for i in range(1, checks + 1):
        for _ in range(probes_per_check):
            e.add_probe(rng.random() >= p, 0.01)
        if per_check:
            n = int(per_check)
            errors = _binomial(rng, n, p)
            e.canary.merge(Backend(requests=n, errors=errors))
        v = judge(e, th, final=i == checks)
        if v.status != CONTINUE:
            return v.status == FAIL, e.probes + e.canary.requests, i * interval
    return False, e.probes + e.canary.requests, DURATION


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n > 200:  # normal approximation, plenty for shares of percent
        x = rng.gauss(n * p, (n * p * (1 - p)) ** 0.5)
        return max(0, min(n, round(x)))
    return sum(rng.random() < p for _ in range(n))


def main(trials: int = 2000, seed: int = 7) -> None:
    rng = random.Random(seed)
    variants = [
        ("guide: 30 probes @30s, 'above threshold at any point'", lambda p: guide_rule(p, rng)),
        ("project: probes only (10 per 30 s check)", lambda p: project_rule(p, rng, 30, 10, 0)),
        ("project: probes + real traffic (2 req/s to the canary)", lambda p: project_rule(p, rng, 30, 10, 2)),
    ]
    print(f"Decision quality: {trials} canaries per failure rate, 15 min analysis, threshold {THRESHOLD:g}%")
    print(f"{'rule':58} " + " ".join(f"{r:>6}%" for r in RATES) + "   samples   decision time")
    for name, rule in variants:
        shares, samples, seconds = [], 0, 0.0
        for rate in RATES:
            o = Outcome()
            for _ in range(trials):
                rolled, n, t = rule(rate / 100)
                o.rolled_back += rolled
                o.samples += n
                o.seconds += t
            shares.append(100.0 * o.rolled_back / trials)
            samples += o.samples
            seconds += o.seconds
        runs = trials * len(RATES)
        print(f"{name:58} " + " ".join(f"{s:6.1f}%" for s in shares)
              + f"   {samples / runs:7.0f}   {seconds / runs:6.0f} s mean")
    print("(share rolled back; goal: <= 1 % at rates <= 2.5 %, >= 99 % at rates >= 10 %)")


if __name__ == "__main__":
    main()
