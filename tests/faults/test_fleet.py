"""Fleet faults: a rollback of the fleet that could not reach a droplet is finished by
the next `pulumi up`; users of every droplet lose no request meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import requests
from pulumi import automation as auto

from bench.fleet import Users
from tests.e2e.harness import program_processes, sh
from tests.e2e.test_fleet_hosts import FLEET, FLEET_DIR, HOSTS, address, out
from tests.e2e.test_fleet_release import clean, fleet, fleet_stack, production  # noqa: F401  (fixtures)

from .conftest import record


def test_a_fleet_rollback_that_could_not_reach_a_droplet_is_finished_by_the_next_up(clean, tmp_path):  # noqa: F811
    hosts = clean
    d = fleet_stack(tmp_path, wave_size="0")
    d.up()
    # web-3's v2 never becomes healthy: the later wave fails there, after web-2 and the
    # canary droplet web-1 run v2. Meanwhile web-1's sshd stops listening, so the fleet's
    # rollback cannot reach it.
    v2 = out(hosts[3], "docker image inspect -f '{{.Id}}' canary-demo:v2").strip()
    out(hosts[3], "docker tag canary-demo:broken canary-demo:v2")
    d.set(image_tag="v2")
    failure: list = []

    def up():
        try:
            d.up()
        except Exception as err:  # (read below)
            failure.append(str(err))
    try:
        with Users(list(HOSTS)) as users:
            update = threading.Thread(target=up)
            update.start()
            deadline = time.monotonic() + 180
            # (web-1 is promoted beside the later wave: both done, web-3 still failing)
            while ([production(hosts[n])[0] for n in (1, 2)] != ["canary-demo:v2"] * 2
                   or out(hosts[1], "docker ps -aq --filter name=^/odoo-canary$").strip()):
                assert time.monotonic() < deadline and update.is_alive(), "web-1 and web-2 never ran v2"
                time.sleep(0.5)
            sh(f"kill $(cat {FLEET_DIR / 'host1' / 'run' / 'sshd.pid'})")
            update.join(timeout=600)
            first = failure[0] if failure else ""
            sh(f"bash {FLEET} start 3")
            mixed = [production(hosts[n])[0] for n in HOSTS]
            # The next `pulumi up` (same config): refused, and web-1 rolled back now.
            failure.clear()
            up()
            second = failure[0] if failure else ""
    finally:
        out(hosts[3], f"docker tag {v2} canary-demo:v2")
        sh(f"bash {FLEET} start 3")
    after = [production(hosts[n])[0] for n in HOSTS]
    served = {n: {requests_text(n) for _ in range(5)} for n in HOSTS}
    record("fleet rollback that could not reach a droplet", {
        "the update failed naming web-3": "rolled back on web-3" in first,
        "it said web-1 was NOT rolled back": "NOT rolled back: web-1" in first,
        "web-2 rolled back at once, web-1 left on v2": mixed == ["canary-demo:v2", "canary-demo:v1", "canary-demo:v1"],
        "the next up was refused (retry)": "retry true" in second,
        "... and rolled web-1 back": "Rolled back to their previous revision: web-1" in second,
        "every droplet runs v1 again": after == ["canary-demo:v1"] * 3,
        "every droplet serves v1": all(s == {"canary-demo v1"} for s in served.values()),
    }, lost=users.failed)


def requests_text(n: int) -> str:
    return requests.get(f"http://{address(n)}:8088/", timeout=5).text.split(":")[0]


def test_pulumi_up_killed_during_the_fleets_rollback_is_finished_by_the_next_up(clean, tmp_path):  # noqa: F811
    hosts = clean
    d = fleet_stack(tmp_path, wave_size="0")
    d.up()
    # web-3's v2 never becomes healthy: the fleet rolls web-1 and web-2 back, and the CLI
    # is killed (with its plugins) in the middle of that.
    v2 = out(hosts[3], "docker image inspect -f '{{.Id}}' canary-demo:v2").strip()
    out(hosts[3], "docker tag canary-demo:broken canary-demo:v2")
    d.set(image_tag="v2")
    try:
        with Users(list(HOSTS)) as users:
            killed = _kill_cli_mid_rollback(d)
            leftover = program_processes(d.project)
            mid = [production(hosts[n])[0] for n in HOSTS]
            d.cli("cancel", "--yes", check=False)
            d.refresh()
            try:
                d.up()
                second = ""
            except auto.CommandError as err:
                second = str(err)
    finally:
        out(hosts[3], f"docker tag {v2} canary-demo:v2")
    after = [production(hosts[n])[0] for n in HOSTS]
    served = {n: {requests_text(n) for _ in range(5)} for n in HOSTS}
    canaries = [out(hosts[n], "docker ps -a -q --filter name=^/odoo-canary$").strip() for n in HOSTS]
    print(f"production when the CLI was killed: {mid}; after the next up: {after}\n{second}")
    record("pulumi up killed during a fleet's rollback", {
        "the CLI was killed while the fleet rolled a droplet back": killed,
        "no program or provider process of the killed run left": not leftover,
        "the next up fails, naming web-3": "rolled back on web-3" in second,
        "every droplet runs v1 again": after == ["canary-demo:v1"] * 3,
        "every droplet serves v1": all(s == {"canary-demo v1"} for s in served.values()),
        "no canary container left": canaries == ["", "", ""],
    }, lost=users.failed)


def test_pulumi_up_killed_at_the_canary_droplets_verdict_is_finished_by_the_next_up(clean, tmp_path):  # noqa: F811
    hosts = clean
    d = fleet_stack(tmp_path, wave_size="0")
    d.up()
    d.set(image_tag="v2")
    with Users(list(HOSTS)) as users:
        # web-1's release ended at its verdict (its canary holds 10 %); its promote step and
        # the later wave were just handed out when the CLI dies with its plugins.
        killed = _kill_cli_at(d, lambda line: "the later waves may go, promote-web-1 promotes it here" in line)
        leftover = program_processes(d.project)
        d.cli("cancel", "--yes", check=False)
        preview = d.preview().stdout
        d.up()
        again = d.preview().change_summary.get("update", 0)
    o = d.outputs()
    served = {n: {requests_text(n) for _ in range(5)} for n in HOSTS}
    canaries = [out(hosts[n], "docker ps -a -q --filter name=^/odoo-canary$").strip() for n in HOSTS]
    record("pulumi up killed at a fleet's canary verdict", {
        "the CLI was killed right after web-1's verdict": killed,
        "no program or provider process of the killed run left": not leftover,
        "the preview shows web-1's promotion still to do": "promote-web-1" in preview,
        "the next up promotes every droplet": all(h["converged"] and h["production_image"] == "canary-demo:v2"
                                                   for h in o["hosts"].values()),
        "every droplet serves v2": all(s == {"canary-demo v2"} for s in served.values()),
        "no canary container left": canaries == ["", "", ""],
        "a preview after it is clean": again == 0,
    }, lost=users.failed)


def _kill_cli_at(d, moment) -> bool:
    """Runs `pulumi up` and SIGKILLs its process group at the first line of its output
    that `moment` accepts; whether it got there."""
    cli = subprocess.Popen(["pulumi", "up", "--yes", "--skip-preview", "--stack", "e2e", "--non-interactive"],
                           cwd=d.project, env={**os.environ, **d.env}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = False
    deadline = time.monotonic() + 300
    while not seen and time.monotonic() < deadline:
        line = cli.stdout.readline()
        if not line:
            break
        seen = moment(line)
    os.killpg(cli.pid, signal.SIGKILL)
    cli.wait()
    time.sleep(3)
    return seen


def _kill_cli_mid_rollback(d) -> bool:
    """Runs `pulumi up` and SIGKILLs its process group once the fleet's rollback of a
    droplet is under way (its temporary canary takes the traffic); whether it got there."""
    return _kill_cli_at(d, lambda line: "routing 100% of new clients" in line
                        and ("web-1: " in line or "web-2: " in line))
