"""What the analysis report shows, as plain data (pure): per chart the canary's and
stable's series check by check, the limits the verdict compared them with, the checks
a rule did not judge yet, the decision point, and the per-check table.

The series are cumulative (everything since the analysis started), because that is what
the verdict judges after every check. report_charts.py draws this; report.py writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .verdict import FAIL, INCONCLUSIVE, LATENCY_FLOOR, MIN_PROBES_TO_JUDGE, PASS

DECISIONS = (PASS, FAIL, INCONCLUSIVE)
MS = 1000.0


@dataclass(frozen=True)
class Series:
    name: str  # legend text
    role: str  # "stable" or "canary": its colour and marker
    y: list[Optional[float]]  # one a check; None where nothing was measured yet
    secondary: bool = False  # a second line of the same backend (drawn thinner)


@dataclass(frozen=True)
class Limit:
    name: str
    y: list[Optional[float]]  # one a check; None where the rule did not apply
    relative: bool = False  # moves with stable (a factor of it) rather than fixed


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    y_title: str
    unit: str
    log: bool
    checks: list[int]
    seconds: list[float]
    series: list[Series]
    limits: list[Limit]
    unjudged: int = 0  # leading checks the rule did not judge yet
    unjudged_why: str = ""
    note: str = ""  # shown instead of lines when no series has a value


@dataclass(frozen=True)
class Decision:
    status: str
    reason: str
    check: Optional[int]  # the check it was taken at (None: no check ran)
    seconds: Optional[float]
    planned: Optional[int]

    @property
    def label(self) -> str:
        if self.check is None:
            return self.status.upper()
        return f"{self.status.upper()} at check {self.check}"

    @property
    def early(self) -> bool:
        return bool(self.planned and self.check and self.check < self.planned)


@dataclass(frozen=True)
class Page:
    decision: Decision
    charts: list[Chart]
    rows: list[dict]  # the per-check table, formatted
    never_started: bool  # no check ran: the canary did not get to its analysis


def limits(summary: dict, error_threshold: float) -> dict:
    """The thresholds the verdict used: the summary's (newer runners record them), with
    the error threshold the caller gives."""
    return {**(summary.get("thresholds") or {}), "error_threshold": error_threshold}


def decision(summary: dict) -> Decision:
    series = summary.get("series") or []
    last = series[-1] if series else {}
    status = summary.get("decision") or "unknown"
    # The runner stops at the first check whose verdict is not "continue": the last one.
    at = last.get("check") if status in DECISIONS else None
    return Decision(status, str(summary.get("reason") or ""), at, last.get("t") if at else None,
                    summary.get("planned_checks") or None)


def _values(series: list[dict], key: str, scale: float = 1.0, count: Optional[str] = None,
            minimum: int = 1) -> list[Optional[float]]:
    """One value a check; None where the key is absent or fewer than `minimum` samples
    (`count`) were behind it (a rate of no requests is unknown, not 0)."""
    out: list[Optional[float]] = []
    for p in series:
        v = p.get(key)
        if v is None or (count is not None and (p.get(count) or 0) < minimum):
            out.append(None)
        else:
            out.append(round(float(v) * scale, 6))
    return out


def _leading(series: list[dict], ok) -> int:
    """How many checks at the start do not satisfy ok (the evidence only grows)."""
    n = 0
    for p in series:
        if ok(p):
            break
        n += 1
    return n


def _relative(stable: list[Optional[float]], factor: Optional[float], judged: list[bool]) -> list[Optional[float]]:
    """The verdict's latency limit against stable (ms): worse than factor x stable and
    above the floor under which latency is never judged."""
    if factor is None:
        return [None] * len(stable)
    return [None if s is None or not j else round(max(LATENCY_FLOOR * MS, factor * max(s, 1.0)), 3)
            for s, j in zip(stable, judged)]


def _fixed(value: Optional[float], n: int, scale: float = 1.0) -> list[Optional[float]]:
    return [None if value is None else round(value * scale, 6)] * n


def _note(lines: list[Series], why: str) -> str:
    """What a chart says instead of its lines when none has a value."""
    return "" if any(v is not None for s in lines for v in s.y) else why


def _checks(series: list[dict]) -> list[int]:
    return [p["check"] for p in series]


def _seconds(series: list[dict]) -> list[float]:
    return [float(p.get("t") or 0) for p in series]


def _traffic_unjudged(series: list[dict], th: dict) -> tuple[int, str]:
    """Real traffic is judged once the canary has min_requests (when the summary says)."""
    min_req = th.get("min_requests")
    if not min_req:
        return 0, ""
    return (_leading(series, lambda p: (p.get("canary_requests") or 0) >= min_req),
            f"not judged: canary below min_requests ({min_req})")


def traffic_errors(series: list[dict], th: dict) -> Chart:
    """Real traffic (nginx's access log): the 5xx share of each backend's requests."""
    lines = [Series("stable", "stable", _values(series, "stable_error_rate", count="stable_requests")),
             Series("canary", "canary", _values(series, "canary_error_rate", count="canary_requests"))]
    return Chart(
        "traffic-errors", "Real traffic: 5xx error rate", "5xx responses (% of requests)", "%", False,
        _checks(series), _seconds(series), lines,
        [Limit(f"threshold {th['error_threshold']:g} %", _fixed(th["error_threshold"], len(series)))],
        *_traffic_unjudged(series, th), note=_note(lines, "no real traffic reached the canary or stable"))


def traffic_latency(series: list[dict], th: dict) -> Chart:
    """Real traffic: each backend's p95 response time, against max_response_time and
    latency_factor x stable's p95 (judged once both backends have min_requests)."""
    min_req = th.get("min_requests") or 1  # unknown (an older summary): any request
    stable = _values(series, "stable_p95", MS, count="stable_requests")
    lines = [Series("stable p95", "stable", stable),
             Series("canary p95", "canary", _values(series, "canary_p95", MS, count="canary_requests"))]
    judged = [(p.get("canary_requests") or 0) >= min_req and (p.get("stable_requests") or 0) >= min_req
              for p in series]
    chart_limits = _latency_limits(th, len(series), stable, judged, "stable p95")
    return Chart(
        "traffic-latency", "Real traffic: p95 latency", "p95 response time (ms, log scale)", "ms", True,
        _checks(series), _seconds(series), lines, chart_limits,
        *_traffic_unjudged(series, th), note=_note(lines, "no real traffic reached the canary or stable"))


def _latency_limits(th: dict, n: int, stable: list, judged: list[bool], relative_to: str,
                    fixed_note: str = "") -> list[Limit]:
    """max_response_time, and latency_factor x `relative_to` where it was judged."""
    limits = [Limit(f"max_response_time {th['max_response_time']:g} s{fixed_note}",
                    _fixed(th["max_response_time"], n, MS))] if "max_response_time" in th else []
    factor = th.get("latency_factor")
    if factor is not None:
        limits.append(Limit(f"{factor:g} × {relative_to} (floor {LATENCY_FLOOR * MS:g} ms)",
                            _relative(stable, factor, judged), relative=True))
    return limits


def probe_errors(series: list[dict], th: dict) -> Chart:
    """The canary's health checks: the share that failed (stable is probed for latency only)."""
    counted = any("probes" in p for p in series)  # older summaries lack the count
    lines = [Series("canary health checks", "canary",
                    _values(series, "probe_error_rate", count="probes" if counted else None))]
    return Chart(
        "probe-errors", "Health checks: failed probes", "failed health checks (%)", "%", False,
        _checks(series), _seconds(series), lines,
        [Limit(f"threshold {th['error_threshold']:g} %", _fixed(th["error_threshold"], len(series)))],
        note=_note(lines, "no health check was made"))


def probe_latency(series: list[dict], th: dict) -> Chart:
    """Health-check latency: the canary's p95 against max_response_time, and its median
    against latency_factor x stable's median (the verdict compares medians there)."""
    stable = _values(series, "stable_probe_p50", MS, count="stable_probes")
    lines = [Series("stable median", "stable", stable),
             Series("canary median", "canary", _values(series, "probe_p50", MS, count="probes")),
             Series("canary p95", "canary", _values(series, "probe_p95", MS, count="probes"), secondary=True)]
    judged = [(p.get("probes") or 0) >= MIN_PROBES_TO_JUDGE and (p.get("stable_probes") or 0) >= MIN_PROBES_TO_JUDGE
              for p in series]
    chart_limits = _latency_limits(th, len(series), stable, judged, "stable median", " (for p95)")
    return Chart(
        "probe-latency", "Health checks: latency", "response time (ms, log scale)", "ms", True,
        _checks(series), _seconds(series), lines, chart_limits,
        unjudged=_leading(series, lambda p: (p.get("probes") or 0) >= MIN_PROBES_TO_JUDGE),
        unjudged_why=f"not judged: fewer than {MIN_PROBES_TO_JUDGE} health checks",
        note=_note(lines, "this analysis recorded no health-check latency"))


def _pct(v) -> str:
    return "—" if v is None else f"{float(v):.1f} %"


def _ms(seconds) -> str:
    if seconds is None:
        return "—"
    ms = float(seconds) * MS
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def rows(series: list[dict], at: Optional[int]) -> list[dict]:
    """The per-check table, formatted; a backend with no request yet shows dashes."""
    out = []
    for p in series:
        c, s = p.get("canary_requests") or 0, p.get("stable_requests") or 0
        probes = p.get("probes")
        out.append({
            "check": p["check"], "t": f"{float(p.get('t') or 0):.0f} s", "decision": p["check"] == at,
            "health": "—" if probes is None else f"{probes - (p.get('probe_failures') or 0)}/{probes} ok",
            "health_errors": _pct(p.get("probe_error_rate")),
            "health_p50": _ms(p.get("probe_p50") if probes else None),
            "canary_requests": c, "canary_errors": _pct(p.get("canary_error_rate") if c else None),
            "canary_p95": _ms(p.get("canary_p95") if c else None),
            "stable_requests": s, "stable_errors": _pct(p.get("stable_error_rate") if s else None),
            "stable_p95": _ms(p.get("stable_p95") if s else None),
        })
    return out


def page(summary: dict, error_threshold: float) -> Page:
    series = [p for p in summary.get("series") or [] if isinstance(p, dict) and "check" in p]
    d = decision({**summary, "series": series})
    if not series:
        return Page(d, [], [], never_started=True)
    th = limits(summary, error_threshold)
    charts = [traffic_errors(series, th), traffic_latency(series, th), probe_errors(series, th),
              probe_latency(series, th)]
    return Page(d, charts, rows(series, d.check), never_started=False)
