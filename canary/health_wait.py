"""Waiting for a container to answer its health path: the controller's health gate.

An app that does not listen yet is given `startup_timeout` (Odoo takes seconds); one
that listens but keeps answering errors for BAD_ANSWERS_GRACE is failed then. Probes are
local (through the SSH tunnel); whether the container still runs is asked less often (a
remote command each time).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from .host import HostOps
from .spec import ReleaseSpec

# An app that answers its health path with errors this long (s) is not "starting".
BAD_ANSWERS_GRACE = 15
# Health waits probe this often (s): an app is promoted the moment it answers. Often for
# the first seconds (most apps are up by then), then less (Odoo may take a minute). Whether
# its container still runs is asked less often (a remote command each time).
POLL_FAST, POLL_SLOW, FAST_FOR = 0.02, 0.25, 5.0
INSPECT_EVERY = 1.0


class HealthWait:
    def __init__(self, ops: HostOps, spec: ReleaseSpec, log: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.ops, self.spec, self.log, self.clock, self.sleep = ops, spec, log, clock, sleep

    def of(self, role: str) -> Optional[str]:
        """Why the production or canary container is not healthy, or None if it is."""
        canary = role == "canary"
        return self.problem(f"{self.spec.app}-canary" if canary else self.spec.app,
                            self.spec.canary_port if canary else self.spec.stable_port, quiet=True)

    def problem(self, name: str, port: int, quiet: bool = False) -> Optional[str]:
        """Waits until the container answers its health path with 200 (None), or says why not."""
        start = self.clock()
        deadline = start + self.spec.startup_timeout
        threshold = self.spec.analysis.thresholds.error_threshold
        probes = failures = 0
        first_bad_answer: Optional[float] = None
        inspected = float("-inf")
        with self.ops.prober.health(port) as probe:
            while True:
                ok, last = probe()
                probes += 1
                if ok:
                    if not quiet:
                        self.log(f"{name} is healthy ({self.clock() - start:.1f}s)")
                    return None
                # Not answering: is its container still there and running? (Asked after a
                # failed probe only: a remote command each time, and a probe is local.)
                if self.clock() - inspected >= INSPECT_EVERY:
                    inspected = self.clock()
                    c = self.ops.containers.inspect(name)
                    if c is None:
                        return f"there is no container {name}"
                    if not c.running:
                        tail = self.ops.containers.logs_tail(name, 5)
                        return f"container {name} exited before it became healthy: {tail.strip()[-300:]}"
                failures += 1
                now = self.clock()
                answered = last.isdigit()
                first_bad_answer = (first_bad_answer or now) if answered else None
                if now >= deadline or (first_bad_answer and now - first_bad_answer >= BAD_ANSWERS_GRACE):
                    return (f"{name} never became healthy: {probes - failures}/{probes} health checks of "
                            f"{self.spec.health_path} answered 200 ({100.0 * failures / probes:.1f}% error "
                            f"rate, threshold {threshold:g}%) in {now - start:.0f}s; last answer: {last}")
                if probes == 1:
                    self.log(f"waiting for {name} to answer its health check ({last})")
                self.sleep(POLL_FAST if now - start < FAST_FOR else POLL_SLOW)
