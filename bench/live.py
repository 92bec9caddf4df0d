"""Live benchmarks on the local test host, through the real `pulumi` CLI.

- No dropped requests: wrk (GETs and POSTs, a new connection each, >= 200 req/s)
  through nginx during a full promotion and a full rollback, with an app that takes
  3 s to start listening; the same for the guide's sequences typed by hand.
- Detection: a canary that starts failing 8 s after it starts: time until traffic is
  100 % stable and user requests answered with an error by it meanwhile.
- Overhead: `pulumi up` wall time minus the configured analysis, and `pulumi preview`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pulumi import automation as auto

from tests.e2e.harness import SITE_URL, Deployment, Load, reset_host, sh

ROOT = Path(__file__).resolve().parents[1]
WRK = ["wrk", "-t1", "-c4", "-d600s", "-s", str(ROOT / "bench" / "wrk-mixed.lua"), SITE_URL + "/"]


class Wrk:
    """wrk in the background for the duration of a `with` block: users on a new
    connection each, or (`keepalive`) on kept-alive connections."""

    def __init__(self, keepalive: bool = False):
        self.keepalive = keepalive

    def __enter__(self):
        argv = WRK if self.keepalive else [*WRK[:-1], "-H", "Connection: close", WRK[-1]]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        out = self.proc.communicate(timeout=30)[0]
        m = re.search(r"RESULT requests=(\d+) seconds=([\d.]+) non2xx=(\d+) connect=(\d+) read=(\d+) "
                      r"write=(\d+) timeout=(\d+)", out)
        if not m:
            raise RuntimeError("wrk printed no result:\n" + out)
        v = [float(x) for x in m.groups()]
        self.requests, self.seconds = int(v[0]), v[1]
        self.errors = int(sum(v[2:]))
        kinds = zip(("non-2xx", "connect", "read", "write", "timeout"), v[2:])
        self.kinds = ", ".join(f"{int(n)} {k}" for k, n in kinds if n)
        self.rate = self.requests / max(self.seconds, 1e-9)

    def line(self, what: str) -> str:
        return (f"{what:52} {self.requests:7d} requests at {self.rate:5.0f}/s, "
                f"{self.errors} non-2xx or connection errors" + (f" ({self.kinds})" if self.kinds else ""))


@contextmanager
def users() -> Iterator[tuple[Wrk, Wrk]]:
    """The same users twice at once: on a new connection each, and on kept-alive ones."""
    with Wrk() as new, Wrk(keepalive=True) as kept:
        yield new, kept


def report(what: str, both: tuple[Wrk, Wrk]) -> None:
    new, kept = both
    print(new.line(what))
    print(kept.line("  the same, users on kept-alive connections"))


def deployment(workdir: Path, **config) -> Deployment:
    reset_host()
    d = Deployment(workdir, config={"monitoring_duration": "20s", "check_interval": "5s",
                                    "probes_per_check": "5", **config}, echo=False)
    d.set_secret("env.STARTUP_DELAY", "3s")  # an app that takes seconds to listen, like Odoo
    return d


GUIDE_PROMOTE = ("docker stop odoo && docker rm odoo && "
                 "docker run -d --name odoo -e STARTUP_DELAY=3s -p 127.0.0.1:8069:8069 canary-demo:v2 && "
                 "rm -f /etc/nginx/conf.d/odoo-canary.conf && nginx -s reload && "
                 "sleep 5 && docker rm -f odoo-canary")
GUIDE_ROLLBACK = ("docker stop odoo-canary && docker rm odoo-canary && "
                  "rm -f /etc/nginx/conf.d/odoo-canary.conf && nginx -s reload && sleep 2")


def zero_drop(tmp: Path) -> None:
    print("No dropped requests (wrk: 3 GETs : 1 POST, a new connection each, and the same on kept-alive "
          "connections; app starts in 3 s)")
    d = deployment(tmp / "a")
    d.up()
    # Baseline: nginx itself. A graceful reload closes the old workers' idle kept-alive
    # connections, racing a client's next request on one (wrk counts a read error and
    # does not send it again). A promotion reloads 3 times, a rollback twice.
    with users() as u:
        for _ in range(3):
            sh("nginx -s reload")
            time.sleep(3)
    report("baseline: 3 graceful nginx reloads, nothing else", u)
    d.set(image_tag="v2")
    with users() as u:
        start = time.monotonic()
        d.up()
        up_seconds = time.monotonic() - start
    report("project: promotion v1 -> v2 (pulumi up)", u)
    analysis = d.outputs()["analysis"]["seconds"]
    start = time.monotonic()
    d.preview()
    preview_seconds = time.monotonic() - start

    d.set(image_tag="slow")  # fails on latency; its own answers are not errors
    with users() as u:
        try:
            d.up()
        except auto.CommandError:
            pass  # rolled back, as it should
    report("project: rollback of a slow canary (pulumi up)", u)

    # The guide's sequences, by hand, from the same starting points.
    d = deployment(tmp / "b")
    d.up()
    d.set(image_tag="v2", auto_promote="false")
    d.up()  # holding: v1 in production, v2 canary at 10 %
    with users() as u:
        sh(GUIDE_PROMOTE)
        time.sleep(8)
    report("guide: promotion (stop stable, start new, drop split)", u)
    d = deployment(tmp / "c")
    d.up()
    d.set(image_tag="v2", auto_promote="false")
    d.up()
    with users() as u:
        sh(GUIDE_ROLLBACK)
    report("guide: rollback (stop canary, drop split)", u)
    print(f"\nOverhead: pulumi up of the promotion took {up_seconds:.1f}s, of which {analysis:.1f}s "
          f"analysis (configured 20s): {up_seconds - analysis:.1f}s for everything else "
          "(two container starts of 3 s each, drains, nginx reloads)")
    print(f"          pulumi preview took {preview_seconds:.1f}s")


def detection(tmp: Path) -> None:
    print("\nDetection: the canary (10 %) starts failing every request 8 s after it starts")
    d = deployment(tmp / "d", monitoring_duration="60s", check_interval="5s", probes_per_check="5")
    d.up()
    d.set(image_tag="v2")
    d.stack.set_config("canary:canary_env.FAIL_AFTER", auto.ConfigValue("8s"), path=True)
    with Load(rate=50) as load:
        try:
            d.up()
        except auto.CommandError:
            pass  # rolled back, as it should
        time.sleep(2)
    events = [(t, status) for t, status, backend in load.events if backend == "localhost:8070"]
    failures = [t for t, status in events if status != 200]
    if not failures:
        print("  the canary never failed under load: no figure")
        return
    first_failure, last_canary = failures[0], events[-1][0]
    served = [t for t, _ in events if t < first_failure]
    rps = len(served) / max(first_failure - events[0][0], 1e-9)
    ours = last_canary - first_failure
    print(f"  project: {ours:5.1f}s from the first failure to 100 % stable, {len(failures)} user requests "
          f"answered with an error by the canary (it got {rps:.1f} req/s)")
    for wait, label in ((15, "mean"), (30, "worst")):
        print(f"  guide:   {wait + ours:5.1f}s ({label}: the next 30 s probe comes {wait}s later, then the "
              f"same rollback), ~{(wait + ours) * rps:.0f} user requests answered with an error "
              "(modelled at the measured canary rate)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CANARY_REPORT_DIR", str(Path(tmp) / "reports"))
        zero_drop(Path(tmp))
        detection(Path(tmp))
        reset_host()


if __name__ == "__main__":
    main()
