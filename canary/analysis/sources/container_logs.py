"""ERROR lines in the canary's and production's container logs since the analysis
started (`docker logs --since`), counted on the host.

Both are counted so the verdict can judge the canary's against stable's per request: a
busy app that logs routine ERROR lines logs them in both. A count that failed is
unknown, not zero: the source is unmeasured until a later count (which covers the
failed check too: the same `since`) succeeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...remote import docker
from ..verdict import Evidence
from . import Check, Source

if TYPE_CHECKING:
    from ...remote.ssh import Host


class ErrorLogLines(Source):
    name = "the ERROR log lines"

    def __init__(self, host: Host, canary: str, production: str):
        self.host, self.canary, self.production = host, canary, production
        self.since = ""
        self.unknown = ""

    def __enter__(self) -> "ErrorLogLines":
        self.since = self.host.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"])[1].strip()
        return self

    def collect(self, evidence: Evidence, check: Check) -> None:
        try:
            evidence.error_logs = docker.count_log_lines(self.host, self.canary, self.since)
            evidence.stable_error_logs = docker.count_log_lines(self.host, self.production, self.since)
            self.unknown = ""
            evidence.unmeasured.pop(self.name, None)
        except docker.LogsUnavailable as err:
            self.unknown = str(err)
            evidence.unmeasured[self.name] = self.unknown

    def note(self) -> str:
        return f"ERROR log lines unknown: {self.unknown}" if self.unknown else ""
