"""Real traffic from nginx's structured access log, per backend (pure).

Each log line is JSON (see templates/site.conf.j2). A request that nginx tried on more
than one upstream (a retry after an error) counts once for every backend it tried,
with that backend's own status and time: a canary error that nginx hid by retrying on
stable is still a canary error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .stats import percentile


@dataclass
class Backend:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, status: str, seconds: float) -> None:
        self.requests += 1
        if not status.isdigit() or int(status) >= 500:
            self.errors += 1
        self.latencies.append(seconds)

    def merge(self, other: "Backend") -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latencies.extend(other.latencies)

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def summary(self) -> dict:
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": round(self.error_rate, 3), "p50": round(self.p(50), 4),
                "p95": round(self.p(95), 4), "p99": round(self.p(99), 4)}


def _split(value: str) -> list[str]:
    # nginx separates attempts with ", " and internal redirects with " : ".
    return [p.strip() for p in value.replace(" : ", ", ").split(",") if p.strip()]


def forced(rec: dict) -> bool:
    """Whether a log record is a request a trusted tester forced (not real traffic)."""
    return str(rec.get("forced") or "") in ("canary", "stable")


def parse(lines: str, stable_port: int, canary_port: int) -> dict[str, Backend]:
    """Per-backend stats ("stable", "canary") of the given access log lines. Forced
    requests are left out of both; "forced" counts them (whole requests, final status)."""
    result = {"stable": Backend(), "canary": Backend(), "forced": Backend()}
    ports = {str(stable_port): "stable", str(canary_port): "canary"}
    for line in lines.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if forced(rec):
            try:
                seconds = float(rec.get("rt") or 0)
            except (TypeError, ValueError):
                seconds = 0.0
            result["forced"].add(str(rec.get("final", "")), seconds)
            continue
        addrs, statuses, times = (_split(str(rec.get(k, ""))) for k in ("upstream", "status", "urt"))
        for i, addr in enumerate(addrs):
            backend = ports.get(addr.rsplit(":", 1)[-1])
            if backend is None:
                continue
            status = statuses[i] if i < len(statuses) else "502"
            try:
                seconds = float(times[i]) if i < len(times) else 0.0
            except ValueError:
                seconds = 0.0
            result[backend].add(status, seconds)
    return result
