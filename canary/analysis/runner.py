"""Gathers the evidence during an analysis window and asks the verdict after each check.

One check every `interval` seconds; within it, `probes_per_check` health probes spread
evenly (HTTP GET with `requests`, through an SSH tunnel to the canary's port unless a
direct `probe_url` is configured). After the probes: the new lines of nginx's access
log, the canary's ERROR log lines and the host metric. Every check prints one progress
line, which `pulumi up` shows as it happens.

Everything that talks to the app (probes, the health wait) uses `app_session()`: the
environment's HTTP(S)_PROXY settings are ignored, since the app is reached through our
own tunnel (or the configured `probe_url`), never through a proxy.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from ..remote import docker
from ..remote.ssh import Host
from ..spec import ReleaseSpec
from . import traffic
from .stats import percentile
from .verdict import CONTINUE, INCONCLUSIVE, PASS, Evidence, Thresholds, Verdict, judge

if TYPE_CHECKING:
    import requests


def app_session() -> requests.Session:
    """A requests session for the app: no proxy from the environment, no .netrc."""
    import requests  # when first probing, not at import: see canary/controller.py
    session = requests.Session()
    session.trust_env = False
    return session


def unmeasured_logs(verdict: Verdict, unknown: Optional[str]) -> Verdict:
    """A pass is not a pass when the canary's ERROR log lines could not be counted at
    the end: the analysis could not measure them (inconclusive: the canary is held)."""
    if unknown and verdict.status == PASS:
        return Verdict(INCONCLUSIVE, f"the canary's ERROR log lines could not be counted ({unknown}): "
                                     "failed to measure, not promoting")
    return verdict


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
            "error_logs": e.error_logs, "metric": e.metric, "series": self.series,
            "planned_checks": self.planned_checks,
            "thresholds": asdict(self.thresholds) if self.thresholds else None,
        }


class AccessLog:
    """Reads the lines nginx appended since the analysis started."""

    def __init__(self, host: Host, path: str):
        self.host, self.path = host, path
        self.offset = self._size()
        self.partial = ""

    def _size(self) -> int:
        out = self.host.sh('stat -c %s "$1" 2>/dev/null || echo 0', self.path, check=False).strip()
        return int(out or 0)

    def new_lines(self) -> str:
        size = self._size()
        if size < self.offset:  # rotated
            self.offset, self.partial = 0, ""
        if size == self.offset:
            return ""
        data = self.host.sh('tail -c +"$1" "$2" | head -c "$3"', str(self.offset + 1), self.path,
                            str(size - self.offset), check=False)
        self.offset = size
        text = self.partial + data
        lines, _, self.partial = text.rpartition("\n")
        return lines


def probe(session: requests.Session, url: str, timeout: float) -> tuple[bool, float, str]:
    import requests
    start = time.monotonic()
    try:
        r = session.get(url, timeout=timeout, allow_redirects=False)
        return r.status_code == 200, time.monotonic() - start, str(r.status_code)
    except requests.RequestException as err:
        return False, time.monotonic() - start, type(err).__name__


def analyse(host: Host, spec: ReleaseSpec, weight: int, log: Callable[[str], None],
            sleep: Callable[[float], None] = time.sleep) -> Result:
    a = spec.analysis
    checks = a.checks
    evidence = Evidence(planned_probes=checks * a.probes_per_check)
    access = AccessLog(host, spec.access_log)
    since = host.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"])[1].strip()
    started = time.monotonic()
    spacing = a.interval / a.probes_per_check
    timeout = max(5.0, a.thresholds.max_response_time * 2)
    series: list[dict] = []
    log(f"analysing {spec.image} at {weight}% for {a.duration:g}s: {checks} checks every {a.interval:g}s, "
        f"{a.probes_per_check} probe(s) each; threshold {a.thresholds.error_threshold:g}%")
    tunnel = nullcontext(None) if spec.probe_url else host.forward(spec.canary_port)
    # One probe of stable per check: the latency baseline the canary is compared with.
    baseline = host.forward(spec.stable_port)
    verdict = Verdict(CONTINUE, "")
    logs_unknown: Optional[str] = None
    with tunnel as local_port, baseline as stable_port, app_session() as session:
        base = spec.probe_url.rstrip("/") if spec.probe_url else f"http://127.0.0.1:{local_port}"
        url = base + spec.health_path
        stable_url = f"http://127.0.0.1:{stable_port}{spec.health_path}"
        for i in range(1, checks + 1):
            last = ""
            for j in range(a.probes_per_check):
                due = started + (i - 1) * a.interval + j * spacing
                wait = due - time.monotonic()
                if wait > 0:
                    sleep(wait)
                connects = host.connects
                ok, seconds, last = probe(session, url, timeout)
                if not ok and not spec.probe_url and _tunnel_broke(host, connects):
                    # Our SSH connection failed, not the canary: no evidence either way.
                    log(f"probe lost: the SSH connection to the host dropped ({last}); reconnected")
                    continue
                evidence.add_probe(ok, seconds)
                if evidence.consecutive_failures >= a.thresholds.max_consecutive_failures:
                    break
            ok, seconds, _ = probe(session, stable_url, timeout)
            if ok:
                evidence.stable_probe_latencies.append(seconds)
            stats = traffic.parse(access.new_lines(), spec.stable_port, spec.canary_port)
            evidence.canary.merge(stats["canary"])
            evidence.stable.merge(stats["stable"])
            try:
                evidence.error_logs = docker.count_log_lines(host, f"{spec.app}-canary", since)
                logs_unknown = None
            except docker.LogsUnavailable as err:
                # Unknown, not zero: a later count covers this check too (same `since`).
                logs_unknown = str(err)
            evidence.minutes = (time.monotonic() - started) / 60
            if a.metric_command:
                evidence.metric = _metric(host, a.metric_command, metric_timeout(a.interval))
            final = i == checks
            verdict = unmeasured_logs(judge(evidence, a.thresholds, final), logs_unknown)
            series.append(_point(i, time.monotonic() - started, evidence))
            log(_progress(i, checks, last, evidence, a.thresholds.error_threshold, verdict, logs_unknown))
            if verdict.status != CONTINUE:
                break
    return Result(verdict, evidence, weight, time.monotonic() - started, series,
                  planned_checks=checks, thresholds=a.thresholds)


def _tunnel_broke(host: Host, connects_before: int) -> bool:
    """Whether the SSH connection carrying the probe had to be re-established."""
    try:
        host.client()  # reconnects (with backoff) when the connection is gone
    except Exception:
        return True
    return host.connects > connects_before


def metric_timeout(interval: float) -> float:
    """Seconds the host metric command may take: within one check, 5 to 30 s."""
    return max(5.0, min(30.0, interval))


def _metric(host: Host, command: str, timeout: float) -> Optional[float]:
    """The last word the metric command (trusted: run as the SSH user) printed, as a finite number; None when it printed
    none, timed out (killed by `timeout` on the host) or failed: the verdict fails closed."""
    # The command travels on stdin: never on a command line (ps) or in an error message.
    status, out, _ = host.run(["timeout", "-k", "5", f"{timeout:g}", "sh", "-s"], check=False,
                              stdin=command + "\n", timeout=timeout + 30)
    words = out.strip().split()
    try:
        value = float(words[-1])
    except (ValueError, IndexError):
        return None
    return value if status == 0 and math.isfinite(value) else None


def _point(i: int, t: float, e: Evidence) -> dict:
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


def _progress(i: int, n: int, last: str, e: Evidence, threshold: float, v: Verdict,
              logs_unknown: Optional[str] = None) -> str:
    line = (f"check {i}/{n}: health {last}, {e.probes - e.probe_failures}/{e.probes} ok, "
            f"error rate {e.probe_error_rate:.1f}% (threshold {threshold:g}%) | traffic: canary "
            f"{e.canary.requests} req {e.canary.error_rate:.1f}% 5xx p95 {e.canary.p(95) * 1000:.0f}ms, "
            f"stable {e.stable.requests} req {e.stable.error_rate:.1f}% 5xx p95 {e.stable.p(95) * 1000:.0f}ms")
    if logs_unknown:
        line += f" | ERROR log lines unknown: {logs_unknown}"
    elif e.error_logs:
        line += f" | {e.error_logs} ERROR log lines"
    if e.metric is not None:
        line += f" | metric {e.metric:g}"
    return line + (f" => {v.status.upper()}: {v.reason}" if v.status != CONTINUE else "")
