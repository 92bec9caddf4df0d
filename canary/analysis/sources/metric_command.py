"""The host metric: a trusted command (stack config, run as the SSH user) whose last
printed word is a number with a limit, e.g. database connections in percent.

The command travels on stdin: never on a command line (ps) or in an error message. It
is killed (by `timeout` on the host) after 5 to 30 s within a check; no finite number
is None, and the verdict fails closed on it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

from ..verdict import HOST_METRIC, Evidence, Measurement
from . import Check, Source

if TYPE_CHECKING:
    from ...remote.ssh import Host


def metric_timeout(interval: float) -> float:
    """Seconds the host metric command may take: within one check, 5 to 30 s."""
    return max(5.0, min(30.0, interval))


def run_metric(host: Host, command: str, timeout: float) -> Optional[float]:
    """The last word the command printed, as a finite number; None when it printed none,
    timed out or failed."""
    status, out, _ = host.run(["timeout", "-k", "5", f"{timeout:g}", "sh", "-s"], check=False,
                              stdin=command + "\n", timeout=timeout + 30)
    words = out.strip().split()
    try:
        value = float(words[-1])
    except (ValueError, IndexError):
        return None
    return value if status == 0 and math.isfinite(value) else None


class HostMetric(Source):
    name = HOST_METRIC

    def __init__(self, host: Host, command: str, limit: Optional[float], interval: float):
        self.host, self.command, self.limit = host, command, limit
        self.timeout = metric_timeout(interval)

    def collect(self, evidence: Evidence, check: Check) -> None:
        value = run_metric(self.host, self.command, self.timeout)
        evidence.measure(Measurement(self.name, value, max=self.limit,
                                     note="" if value is not None else
                                     "the command failed, timed out or printed something else"))
