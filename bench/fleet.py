"""A fleet's promotion: `pulumi up` v1 -> v2 on 1, 3 and 6 droplets, side by side.

The droplets are the local fleet's (testhost/fleet.sh: each its own sshd, nginx and
Docker engine). The canary runs on the first droplet (one analysis step), then the
others are promoted in one wave. Twice: an app that listens at once, and one that takes
3 s to listen, as Odoo does (every container start then waits for it). Printed per
fleet size: the update's wall time, the analysis in it, the rest (wall minus analysis)
and its ratio to one droplet's, the CPU seconds the machine was busy (the local droplets
share its cores), and the requests users sent to every droplet meanwhile with how many
failed; then each update's steps as the engine's events timed them.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from bench.overhead import engine_event
from tests.e2e.harness import Deployment, reset_host, sh, testhost_turn
from tests.e2e.test_fleet_hosts import FLEET, address, fleet_reset, host_key_file

SIZES = (1, 3, 6)
STARTUPS = ("0s", "3s")  # how long the app takes to listen


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


def promotion(tmp: Path, size: int, startup: str) -> dict:
    fleet_reset()
    hosts = [{"name": f"web-{n}", "host": address(n), "ssh_host_key_file": str(host_key_file(n))}
             for n in range(1, size + 1)]
    d = Deployment(tmp, config={"ssh_port": "22", "hosts": json.dumps(hosts), "monitoring_duration": "10s"},
                   echo=False)
    d.stack.remove_config("canary:host")
    d.stack.remove_config("canary:ssh_host_key_file")
    d.set_secret("env.STARTUP_DELAY", startup)
    d.up()
    d.set(image_tag="v2")
    events: list[tuple[float, dict]] = []
    with Users(list(range(1, size + 1))) as users:
        start, busy, cli, me = time.monotonic(), _cpu_busy(), _cpu_children(), _cpu_self()
        d.up(on_event=lambda e: events.append((time.monotonic() - start, engine_event(e))))
        wall, cpu = time.monotonic() - start, _cpu_busy() - busy
        cli, me = _cpu_children() - cli, _cpu_self() - me
    o = d.outputs()
    if not all(h["production_image"] == "canary-demo:v2" for h in o["hosts"].values()):
        raise RuntimeError(f"the promotion did not reach every droplet: {o['hosts']}")
    d.destroy()
    return {"size": size, "startup": startup, "wall": wall, "analysis": float(o["analysis"]["seconds"]),
            "requests": sum(users.statuses.values()), "failed": users.failed, "statuses": dict(users.statuses),
            "spans": spans(events), "cpu": cpu, "cli": cli, "users": me}


def _cpu_busy() -> float:
    """CPU seconds this machine spent busy so far, all cores (/proc/stat): the local
    fleet's droplets, the CLI and the providers all share them."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu_self() -> float:
    """CPU seconds of this process so far: mostly the users' requests."""
    t = os.times()
    return t.user + t.system


def _cpu_children() -> float:
    """CPU seconds of this process's finished children: the `pulumi` CLI of an update
    with its plugins and provider processes (the controller's side of the work)."""
    t = os.times()
    return t.children_user + t.children_system


def spans(events: list[tuple[float, dict]]) -> list[tuple[str, float, float]]:
    """(resource, start, end) of every step that took time, from the engine's events, in
    the order they started: where the update's time went."""
    began: dict[str, float] = {}
    out = []
    for t, e in events:
        kind, name = e["kind"], e.get("urn", "").rsplit("::", 1)[-1]
        if kind == "resource_pre_event":
            began[name] = t
        elif kind in ("res_outputs_event", "res_op_failed_event") and name in began:
            out.append((name, began.pop(name), t))
    return sorted((s for s in out if s[2] - s[1] >= 0.05), key=lambda s: s[1])


def main() -> None:
    print(f"Fleet: pulumi up of a promotion v1 -> v2 on {', '.join(map(str, SIZES))} droplets (canary on the "
          "first, one 10 s analysis step, then the rest in one wave), users on every droplet; an app that "
          f"takes {' or '.join(STARTUPS)} to listen")
    with tempfile.TemporaryDirectory() as tmp, testhost_turn():
        reset_host()
        sh(f"bash {FLEET} start {max(SIZES)}")
        runs = [promotion(Path(tmp) / f"fleet-{startup}-{size}", size, startup)
                for startup in STARTUPS for size in SIZES]
        fleet_reset()
    print(f"  {'listens':>7} {'droplets':>8} {'wall s':>8} {'analysis s':>10} {'rest s':>8} {'rest / 1':>8} "
          f"{'CPU s':>6} {'CLI s':>6} {'users s':>7} {'requests':>8} {'failed':>6}")
    for r in runs:
        one = next(o for o in runs if o["startup"] == r["startup"] and o["size"] == 1)
        rest = r["wall"] - r["analysis"]
        print(f"  {r['startup']:>7} {r['size']:>8} {r['wall']:>8.1f} {r['analysis']:>10.1f} {rest:>8.1f} "
              f"{rest / (one['wall'] - one['analysis']):>8.2f} {r['cpu']:>6.1f} {r['cli']:>6.1f} {r['users']:>7.1f} "
              f"{r['requests']:>8} {r['failed']:>6}" + (f"  {r['statuses']}" if r["failed"] else ""))
    print(f"  (CPU s: busy seconds of this machine's {os.cpu_count()} cores during the update, every local "
          "droplet included; CLI s: of those, the `pulumi` CLI's with its plugins and providers; users s: the users' "
          "requests')")
    for r in runs:
        print(f"  {r['size']} droplets, app listening after {r['startup']}, the update's steps (seconds from its "
              "start, those over 0.05 s):")
        for name, begin, end in r["spans"]:
            print(f"    {begin:6.1f} -> {end:6.1f}  {end - begin:5.1f}  {name}")
