"""Prometheus queries, as Flagger's and Argo Rollouts' metric templates: each check, one
PromQL instant query per metric of `prometheus_metrics`, whose answer must be a single
number within the metric's limits (`max`, `min`).

Prometheus is asked at `prometheus_url` as the droplet reaches it, through an SSH tunnel
to the droplet (only its port 22 needs to be reachable, as for the probes and the
database check). Anything but one finite sample (an error, no series, several series,
NaN, no answer in time) is no number: the verdict fails closed on it.

A query may name the release with `$app` (the container name; the canary's is
`$app-canary`), `$canary_port` and `$stable_port`; nothing else is substituted (the
queries are stack config, shown in the preview's diff: no secrets).
"""

from __future__ import annotations

import math
import re
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

from ..verdict import Evidence, Measurement
from . import Check, Source
from .probes import app_session

if TYPE_CHECKING:
    import requests

    from ...remote.ssh import Host

PLACEHOLDERS = ("app", "canary_port", "stable_port")
_PLACEHOLDER_RE = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class PromMetric:
    """One metric of `prometheus_metrics`: a short name, a PromQL query and its limits."""
    name: str
    query: str
    max: Optional[float] = None
    min: Optional[float] = None


def unknown_placeholders(query: str) -> list[str]:
    return [f"${n}" for n in _PLACEHOLDER_RE.findall(query) if n not in PLACEHOLDERS]


def substitute(query: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), query)


def query_timeout(interval: float, queries: int) -> float:
    """Seconds one query may take: a check's queries together within half its interval,
    1 to 10 s each (the probes pace the check; the queries follow them)."""
    return max(1.0, min(10.0, interval / 2 / max(1, queries)))


def sample(answer: Any) -> float:
    """The one number of an instant query's answer (the HTTP API's JSON); ValueError
    saying why there is none."""
    if not isinstance(answer, dict) or answer.get("status") not in ("success", "error"):
        raise ValueError("not an answer of Prometheus's HTTP API")
    if answer["status"] == "error":
        raise ValueError(f"Prometheus answered {answer.get('errorType', 'error')}: {answer.get('error', '')}")
    data = answer.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "scalar":
            text = result[1]
        elif kind == "vector" and len(result) == 1:
            text = result[0]["value"][1]
        elif kind == "vector":
            raise ValueError("no series (an empty vector)" if not result else
                             f"{len(result)} series, not one: aggregate them (sum, max, ...)")
        else:
            raise ValueError(f"a {kind}, not a single number")
    except (TypeError, KeyError, IndexError):
        raise ValueError("a malformed result") from None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{str(text)[:40]!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text}, not a finite number")
    return value


def ask(session: requests.Session, url: str, query: str, timeout: float,
        host_header: str) -> tuple[Optional[float], str]:
    """(the query's number, "") or (None, why there is none)."""
    import requests
    try:
        # Prometheus stops evaluating at `timeout` too (seconds as a number: it refuses
        # "2.5s"); Host: as the droplet names it (a Prometheus behind a virtual host).
        r = session.get(url, params={"query": query, "timeout": f"{timeout:g}"}, timeout=timeout,
                        headers={"Host": host_header}, allow_redirects=False)
    except requests.RequestException as err:
        return None, f"Prometheus could not be asked: {type(err).__name__}"
    try:
        answer = r.json()
    except ValueError:
        return None, f"HTTP {r.status_code}, not an answer of Prometheus's HTTP API"
    try:
        return sample(answer), ""
    except ValueError as err:
        return None, str(err)[:200]


class PrometheusQueries(Source):
    name = "prometheus"

    def __init__(self, host: Host, url: str, metrics: tuple[PromMetric, ...], interval: float,
                 app: str, canary_port: int, stable_port: int):
        self.host, self.url, self.metrics = host, url, metrics
        self.timeout = query_timeout(interval, len(metrics))
        self.values = {"app": app, "canary_port": str(canary_port), "stable_port": str(stable_port)}
        self._stack = ExitStack()

    def __enter__(self) -> "PrometheusQueries":
        where = urlsplit(self.url)
        with ExitStack() as stack:
            local = stack.enter_context(self.host.forward(where.port or 80, where.hostname or "127.0.0.1"))
            self.session = stack.enter_context(app_session())
            self.api = f"http://127.0.0.1:{local}{where.path.rstrip('/')}/api/v1/query"
            self.host_header = where.netloc
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def collect(self, evidence: Evidence, check: Check) -> None:
        for m in self.metrics:
            value, note = ask(self.session, self.api, substitute(m.query, self.values), self.timeout,
                              self.host_header)
            evidence.measure(Measurement(f"prometheus {m.name}", value, max=m.max, min=m.min, note=note))
