"""The canary verdict: pure decision logic over the evidence gathered so far.

`judge` is called after every check. It returns FAIL as soon as failure is certain or
statistically clear, PASS only at the end of the analysis window, INCONCLUSIVE at the
end when there was too little evidence to judge (the controller then holds instead of
promoting), and CONTINUE otherwise.

Rules, in order (thresholds from the stack config; the guide's defaults):
  1. the canary's health probe failed `max_consecutive_failures` times in a row;
  2. probe error rate: already above `error_threshold` of the *planned* probes (certain,
     whatever the rest do), or its lower confidence bound is above the threshold
     (early stop), or, at the end, the observed rate is above it;
  3. real traffic (nginx access log): the canary's 5xx rate, judged like the probes
     once `min_requests` were seen;
  4. latency: probe p95 or the canary's real-traffic p95 above `max_response_time`,
     or the canary's latency worse than `latency_factor` x stable's (probes: medians;
     real traffic: p95);
  5. ERROR lines in the container logs: once both backends saw `min_requests` real
     requests, the canary's ERROR lines per request against stable's (an ERP answers a
     failed JSON-RPC call with HTTP 200, so only its log tells): failed like a rate, when
     the canary's exceeds stable's by more than `error_threshold` points. With less
     traffic, the guide's absolute limit, `max_error_logs_per_minute`, on the canary's
     lines beyond those stable's rate predicts for the canary's requests;
  6. measurements (the host metric command, database connections, Prometheus queries):
     one outside its limits, or no finite number at all (the source failed, timed out,
     printed text, NaN or infinity): fail closed.

A pass needs every source to have measured: a source that could not (its `unmeasured`
note) turns a pass into INCONCLUSIVE (the canary is held, not promoted on a guess).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from .stats import percentile, wilson_bounds
from .traffic import Backend

CONTINUE, PASS, FAIL, INCONCLUSIVE = "continue", "pass", "fail", "inconclusive"
# One-sided 99.9 % bound: with 30 looks per analysis, a healthy canary is almost never
# stopped early by chance; the end-of-window rule does the fine discrimination.
EARLY_STOP_Z = 3.09
MIN_PROBES_TO_JUDGE = 3
# Latency ratios are meaningless at sub-millisecond scale: below this p95 (s) the
# canary is never failed for being "slower" than stable.
LATENCY_FLOOR = 0.05


@dataclass(frozen=True)
class Thresholds:
    error_threshold: float  # percent
    max_response_time: float  # seconds
    latency_factor: float
    min_requests: int
    max_error_logs_per_minute: int
    metric_max: Optional[float] = None
    max_consecutive_failures: int = 3


@dataclass(frozen=True)
class Measurement:
    """A number a source measured at its last check, with its limits (like Flagger's
    metric templates). `value` None: it could not be measured (the gate fails closed)."""
    name: str
    value: Optional[float]
    max: Optional[float] = None
    min: Optional[float] = None
    note: str = ""  # why there is no value

    def problem(self) -> Optional[str]:
        if self.max is None and self.min is None:
            return None  # shown, not judged
        if self.value is None or not math.isfinite(self.value):
            return f"{self.name}: no number ({self.note or 'the source printed none'}): failing closed"
        if self.max is not None and self.value > self.max:
            return f"{self.name} {self.value:g} above its limit {self.max:g}"
        if self.min is not None and self.value < self.min:
            return f"{self.name} {self.value:g} below its limit {self.min:g}"
        return None

    def summary(self) -> dict:
        return {"name": self.name, "value": self.value, "max": self.max, "min": self.min,
                **({"note": self.note} if self.note else {})}


HOST_METRIC = "host metric"


@dataclass
class Evidence:
    planned_probes: int
    probes: int = 0
    probe_failures: int = 0
    consecutive_failures: int = 0
    probe_latencies: list[float] = field(default_factory=list)
    last_probe: str = ""  # what the canary's last health probe got (a status, an error's name)
    stable_probe_latencies: list[float] = field(default_factory=list)  # baseline
    canary: Backend = field(default_factory=Backend)
    stable: Backend = field(default_factory=Backend)
    error_logs: int = 0  # ERROR lines in the canary's container log
    stable_error_logs: int = 0  # ... and in production's, over the same window
    minutes: float = 0.0
    measurements: dict[str, Measurement] = field(default_factory=dict)
    # Sources that could not measure at their last check: name -> why (no pass then).
    unmeasured: dict[str, str] = field(default_factory=dict)

    def measure(self, m: Measurement) -> None:
        self.measurements[m.name] = m

    @property
    def metric(self) -> Optional[float]:
        """The host metric command's last number (None when not configured or unknown)."""
        m = self.measurements.get(HOST_METRIC)
        return m.value if m else None

    def add_probe(self, ok: bool, seconds: float) -> None:
        self.probes += 1
        self.probe_latencies.append(seconds)
        if ok:
            self.consecutive_failures = 0
        else:
            self.probe_failures += 1
            self.consecutive_failures += 1

    @property
    def probe_error_rate(self) -> float:
        return 100.0 * self.probe_failures / self.probes if self.probes else 0.0


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str


def _rate_rule(what: str, failures: int, total: int, planned: Optional[int], threshold: float,
               final: bool) -> Optional[str]:
    """FAIL reason for a failure proportion, or None."""
    t = threshold / 100
    rate = 100.0 * failures / total if total else 0.0
    desc = f"{what} error rate {rate:.1f}% ({failures}/{total}) above the {threshold:g}% threshold"
    if planned and failures > t * planned:
        return desc + f": already more than {threshold:g}% of all {planned} planned, whatever the rest do"
    if total >= 20 and wilson_bounds(failures, total, EARLY_STOP_Z)[0] > t:
        return desc + " (99.9% confidence)"
    if final and total and rate > threshold:
        return desc
    return None


def _log_lines_rule(e: Evidence, th: Thresholds, final: bool) -> Optional[str]:
    """ERROR lines per real request, canary against stable (a line a request at most)."""
    stable = min(e.stable_error_logs, e.stable.requests) / e.stable.requests
    lines, n = min(e.error_logs, e.canary.requests), e.canary.requests
    limit = stable + th.error_threshold / 100
    rate = lines / n
    desc = (f"{100 * rate:.1f} ERROR log lines per 100 requests in the canary ({e.error_logs}/{n}) against "
            f"stable's {100 * stable:.1f} ({e.stable_error_logs}/{e.stable.requests}): more than "
            f"{th.error_threshold:g} above it")
    if n >= 20 and wilson_bounds(lines, n, EARLY_STOP_Z)[0] > limit:
        return desc + " (99.9% confidence)"
    if final and rate > limit:
        return desc
    return None


def judge(e: Evidence, th: Thresholds, final: bool) -> Verdict:
    # 1. the canary is down
    if e.consecutive_failures >= th.max_consecutive_failures:
        return Verdict(FAIL, f"health check failed {e.consecutive_failures} times in a row")
    # 2. probes
    reason = _rate_rule("health checks", e.probe_failures, e.probes, e.planned_probes,
                        th.error_threshold, final)
    if reason:
        return Verdict(FAIL, reason)
    # 3. real traffic
    judged_traffic = e.canary.requests >= th.min_requests
    if judged_traffic:
        reason = _rate_rule("real traffic", e.canary.errors, e.canary.requests, None,
                            th.error_threshold, final)
        if reason:
            return Verdict(FAIL, reason)
    # 4. latency
    if e.probes >= MIN_PROBES_TO_JUDGE:
        p95 = percentile(e.probe_latencies, 95)
        if p95 > th.max_response_time:
            return Verdict(FAIL, f"health check p95 response time {p95:.2f}s above {th.max_response_time:g}s")
        # Against stable, medians: stable is probed once a check, the canary
        # probes_per_check times, so a p95 of the canary's many probes is its one slowest
        # (an SSH channel opening, say) while stable's few rarely catch one.
        if len(e.stable_probe_latencies) >= MIN_PROBES_TO_JUDGE:
            p50, s50 = percentile(e.probe_latencies, 50), percentile(e.stable_probe_latencies, 50)
            if p50 > LATENCY_FLOOR and p50 > th.latency_factor * max(s50, 0.001):
                return Verdict(FAIL, f"health check median latency {p50 * 1000:.0f}ms is more than "
                                     f"{th.latency_factor:g}x stable's {s50 * 1000:.0f}ms")
    if judged_traffic:
        c95 = e.canary.p(95)
        if c95 > th.max_response_time:
            return Verdict(FAIL, f"real traffic p95 response time {c95:.2f}s above {th.max_response_time:g}s")
        if e.stable.requests >= th.min_requests:
            s95 = e.stable.p(95)
            if c95 > LATENCY_FLOOR and c95 > th.latency_factor * max(s95, 0.001):
                return Verdict(FAIL, f"canary p95 latency {c95 * 1000:.0f}ms is more than "
                                     f"{th.latency_factor:g}x stable's {s95 * 1000:.0f}ms")
    # 5. error logs: against stable's when both had real traffic, else the guide's limit
    if judged_traffic and e.stable.requests >= th.min_requests:
        reason = _log_lines_rule(e, th, final)
        if reason:
            return Verdict(FAIL, reason)
    elif e.minutes > 0:
        expected = e.stable_error_logs * e.canary.requests / e.stable.requests if e.stable.requests else 0.0
        per_minute = max(0.0, e.error_logs - expected) / max(e.minutes, 1.0)
        if per_minute > th.max_error_logs_per_minute:
            beyond = f", beyond the {expected:.0f} stable's rate predicts" if expected >= 0.5 else ""
            return Verdict(FAIL, f"{per_minute:.1f} ERROR log lines a minute in the canary{beyond} "
                                 f"(limit {th.max_error_logs_per_minute})")
    # 6. measurements
    for m in e.measurements.values():
        reason = m.problem()
        if reason:
            return Verdict(FAIL, reason)
    if not final:
        return Verdict(CONTINUE, "")
    if e.probes < MIN_PROBES_TO_JUDGE and not judged_traffic:
        return Verdict(INCONCLUSIVE, f"only {e.probes} health checks and {e.canary.requests} canary "
                                     "requests: too little evidence to promote")
    basis = (f"{e.canary.requests} real requests ({e.canary.error_rate:.1f}% 5xx) and {e.probes} health checks"
             if judged_traffic else
             f"health checks alone ({e.probes}; no real traffic reached the canary: "
             f"{e.canary.requests} < min_requests {th.min_requests})")
    if e.unmeasured:
        return Verdict(INCONCLUSIVE, "; ".join(f"{what} could not be measured ({why})"
                                               for what, why in e.unmeasured.items())
                       + ": failed to measure, not promoting")
    return Verdict(PASS, f"healthy: {e.probe_error_rate:.1f}% health check errors, decided on {basis}")
