"""The evidence sources a release's analysis uses, from its spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from . import Source
from .access_log import AccessLog
from .container_logs import ErrorLogLines
from .metric_command import HostMetric
from .probes import HealthProbes
from .prometheus import PrometheusQueries

if TYPE_CHECKING:
    from ...remote.ssh import Host
    from ...spec import ReleaseSpec


def for_release(host: Host, spec: ReleaseSpec, log: Callable[[str], None],
                database_url: Optional[str] = None) -> list[Source]:
    a = spec.analysis
    th = a.thresholds
    sources: list[Source] = [
        HealthProbes(host, spec.health_path, spec.canary_port, spec.stable_port, a.probes_per_check,
                     timeout=max(5.0, th.max_response_time * 2),
                     max_consecutive_failures=th.max_consecutive_failures, probe_url=spec.probe_url, log=log),
        AccessLog(host, spec.access_log, spec.stable_port, spec.canary_port),
        ErrorLogLines(host, canary=f"{spec.app}-canary", production=spec.app),
    ]
    if a.metric_command:
        sources.append(HostMetric(host, a.metric_command, th.metric_max, a.interval))
    if a.prometheus_metrics:
        sources.append(PrometheusQueries(host, a.prometheus_url, a.prometheus_metrics, a.interval, spec.app,
                                         spec.canary_port, spec.stable_port))
    if database_url and a.db_connections_max is not None:
        from .postgres import DatabaseConnections  # (imports psycopg when first asked)
        sources.append(DatabaseConnections(host, database_url, a.db_connections_max))
    return sources
