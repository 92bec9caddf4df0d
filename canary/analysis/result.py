"""What one analysis window found: the verdict, the evidence and its series (pure).

The host protocols (canary/host.py) name `Result`; it imports nothing that talks to a
host, so they stay free of the SSH layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .stats import percentile
from .verdict import Evidence, Thresholds, Verdict


@dataclass
class Result:
    verdict: Verdict
    evidence: Evidence
    weight: int
    seconds: float
    series: list[dict] = field(default_factory=list)
    planned_checks: int = 0
    # What the verdict compared the evidence with (the report draws these limits).
    thresholds: Optional[Thresholds] = None

    def summary(self) -> dict:
        e = self.evidence
        return {
            "decision": self.verdict.status, "reason": self.verdict.reason, "weight": self.weight,
            "seconds": round(self.seconds, 1), "checks": len(self.series), "probes": e.probes,
            "probe_failures": e.probe_failures, "error_rate": round(e.probe_error_rate, 3),
            "canary": e.canary.summary(), "stable": e.stable.summary(),
            "error_logs": e.error_logs, "stable_error_logs": e.stable_error_logs, "metric": e.metric,
            "measurements": [m.summary() for m in e.measurements.values()],
            "unmeasured": dict(e.unmeasured), "series": self.series,
            "planned_checks": self.planned_checks,
            "thresholds": asdict(self.thresholds) if self.thresholds else None,
        }


def point(i: int, t: float, e: Evidence) -> dict:
    """The evidence after check i, as the verdict saw it (cumulative since the start)."""
    return {"check": i, "t": round(t, 1), "probe_error_rate": round(e.probe_error_rate, 3),
            "canary_error_rate": round(e.canary.error_rate, 3),
            "stable_error_rate": round(e.stable.error_rate, 3),
            "canary_p95": round(e.canary.p(95), 4), "stable_p95": round(e.stable.p(95), 4),
            "canary_requests": e.canary.requests, "stable_requests": e.stable.requests,
            "probes": e.probes, "probe_failures": e.probe_failures,
            "probe_p50": round(percentile(e.probe_latencies, 50), 4),
            "probe_p95": round(percentile(e.probe_latencies, 95), 4),
            "stable_probes": len(e.stable_probe_latencies),
            "stable_probe_p50": round(percentile(e.stable_probe_latencies, 50), 4)}
