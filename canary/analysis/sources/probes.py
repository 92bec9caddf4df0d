"""Health probes: `probes_per_check` HTTP GETs of the canary's health path spread evenly
over the check, through an SSH tunnel to its port (or the configured `probe_url`), and
one probe of stable's: the latency baseline the canary is compared with.

Everything that talks to the app uses `app_session()`: the environment's HTTP(S)_PROXY
settings and .netrc are ignored, since the app is reached through our own tunnel (or
the configured `probe_url`), never through a proxy.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, nullcontext
from typing import TYPE_CHECKING, Optional

from ..verdict import Evidence
from . import Check, Source

if TYPE_CHECKING:
    import requests

    from ...remote.ssh import Host


def app_session() -> requests.Session:
    """A requests session for the app: no proxy from the environment, no .netrc."""
    import requests  # when first probing, not at import: see canary/controller.py
    session = requests.Session()
    session.trust_env = False
    return session


def probe(session: requests.Session, url: str, timeout: float) -> tuple[bool, float, str]:
    """(answered 200, seconds, what it answered: the status or the error's name)."""
    import requests
    start = time.monotonic()
    try:
        r = session.get(url, timeout=timeout, allow_redirects=False)
        return r.status_code == 200, time.monotonic() - start, str(r.status_code)
    except requests.RequestException as err:
        return False, time.monotonic() - start, type(err).__name__


class HealthProbes(Source):
    name = "health probes"

    def __init__(self, host: Host, health_path: str, canary_port: int, stable_port: int,
                 probes_per_check: int, timeout: float, max_consecutive_failures: int,
                 probe_url: Optional[str] = None, log=lambda m: None):
        self.host, self.path, self.log = host, health_path, log
        self.canary_port, self.stable_port, self.probe_url = canary_port, stable_port, probe_url
        self.per_check, self.timeout = probes_per_check, timeout
        self.max_consecutive = max_consecutive_failures
        self._stack = ExitStack()

    def __enter__(self) -> "HealthProbes":
        with ExitStack() as stack:
            tunnel = nullcontext(None) if self.probe_url else self.host.forward(self.canary_port)
            local = stack.enter_context(tunnel)
            stable = stack.enter_context(self.host.forward(self.stable_port))
            self.session = stack.enter_context(app_session())
            base = self.probe_url.rstrip("/") if self.probe_url else f"http://127.0.0.1:{local}"
            self.url = base + self.path
            self.stable_url = f"http://127.0.0.1:{stable}{self.path}"
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def collect(self, evidence: Evidence, check: Check) -> None:
        spacing = check.interval / self.per_check
        for j in range(self.per_check):
            check.wait_until(check.start + j * spacing)
            connects = self.host.connects
            ok, seconds, last = probe(self.session, self.url, self.timeout)
            if not ok and not self.probe_url and _tunnel_broke(self.host, connects):
                # Our SSH connection failed, not the canary: no evidence either way.
                self.log(f"probe lost: the SSH connection to the host dropped ({last}); reconnected")
                continue
            evidence.last_probe = last
            evidence.add_probe(ok, seconds)
            if evidence.consecutive_failures >= self.max_consecutive:
                break
        ok, seconds, _ = probe(self.session, self.stable_url, self.timeout)
        if ok:
            evidence.stable_probe_latencies.append(seconds)


def _tunnel_broke(host: Host, connects_before: int) -> bool:
    """Whether the SSH connection carrying the probe had to be re-established."""
    try:
        host.client()  # reconnects (with backoff) when the connection is gone
    except Exception:
        return True
    return host.connects > connects_before
