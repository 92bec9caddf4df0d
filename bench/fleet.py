"""A fleet's promotion: `pulumi up` v1 -> v2 on 1, 3 and 6 droplets, side by side.

The droplets are the local fleet's (testhost/fleet.sh: each its own sshd, nginx and
Docker engine). The canary runs on the first droplet (one analysis step), then the
others are promoted in one wave. Printed per fleet size: the update's wall time, the
analysis in it, the rest (wall minus analysis) and its ratio to one droplet's, and the
requests users sent to every droplet meanwhile with how many failed.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.e2e.harness import Deployment, reset_host, sh, testhost_turn
from tests.e2e.test_fleet_hosts import FLEET, address, fleet_reset, host_key_file

SIZES = (1, 3, 6)


class Users:
    """New clients against every droplet's site for the duration of a `with` block."""

    def __init__(self, hosts: list[int], rate: float = 20.0):
        self.hosts, self.rate = hosts, rate
        self.statuses: Counter = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in hosts]

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                r = requests.get(f"http://{address(n)}:8088/page/{i}", timeout=10)  # a new connection each
                self.statuses[r.status_code] += 1
            except requests.RequestException as err:
                self.statuses[type(err).__name__] += 1
            time.sleep(1 / self.rate)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join()

    @property
    def failed(self) -> int:
        return sum(n for k, n in self.statuses.items() if k != 200)


def promotion(tmp: Path, size: int) -> dict:
    fleet_reset()
    hosts = [{"name": f"web-{n}", "host": address(n), "ssh_host_key_file": str(host_key_file(n))}
             for n in range(1, size + 1)]
    d = Deployment(tmp, config={"ssh_port": "22", "hosts": json.dumps(hosts), "monitoring_duration": "10s"},
                   echo=False)
    d.stack.remove_config("canary:host")
    d.stack.remove_config("canary:ssh_host_key_file")
    d.up()
    d.set(image_tag="v2")
    with Users(list(range(1, size + 1))) as users:
        start = time.monotonic()
        d.up()
        wall = time.monotonic() - start
    o = d.outputs()
    if not all(h["production_image"] == "canary-demo:v2" for h in o["hosts"].values()):
        raise RuntimeError(f"the promotion did not reach every droplet: {o['hosts']}")
    d.destroy()
    return {"size": size, "wall": wall, "analysis": float(o["analysis"]["seconds"]),
            "requests": sum(users.statuses.values()), "failed": users.failed, "statuses": dict(users.statuses)}


def main() -> None:
    print(f"Fleet: pulumi up of a promotion v1 -> v2 on {', '.join(map(str, SIZES))} droplets (canary on the "
          "first, one 10 s analysis step, then the rest in one wave), users on every droplet")
    with tempfile.TemporaryDirectory() as tmp, testhost_turn():
        reset_host()
        sh(f"bash {FLEET} start {max(SIZES)}")
        runs = [promotion(Path(tmp) / f"fleet-{size}", size) for size in SIZES]
        fleet_reset()
    base = runs[0]["wall"] - runs[0]["analysis"]
    print(f"  {'droplets':>8} {'wall s':>8} {'analysis s':>10} {'rest s':>8} {'rest / 1':>8} "
          f"{'requests':>8} {'failed':>6}")
    for r in runs:
        rest = r["wall"] - r["analysis"]
        print(f"  {r['size']:>8} {r['wall']:>8.1f} {r['analysis']:>10.1f} {rest:>8.1f} {rest / base:>8.2f} "
              f"{r['requests']:>8} {r['failed']:>6}" + (f"  {r['statuses']}" if r["failed"] else ""))
