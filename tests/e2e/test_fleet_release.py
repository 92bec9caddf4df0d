"""A release across three droplets (the local fleet, testhost/fleet.sh) through the real
CLI: the canary on the first droplet, then the others in waves; hold and promote
fleet-wide; a failure on any droplet rolls back every droplet that runs the new version
and leaves the others as they are; a droplet that is down fails the run before any
change; refresh and destroy work on every droplet."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from .harness import Deployment, reset_host, sh
from .test_fleet_hosts import FLEET, FLEET_DIR, HOSTS, address, connect, fleet_reset, host_key_file, out

NAMES = {n: f"web-{n}" for n in HOSTS}


@pytest.fixture(scope="module")
def fleet():
    sh(f"bash {FLEET} start 3")
    hosts = {n: connect(n) for n in HOSTS}
    yield hosts
    for h in hosts.values():
        h.close()
    fleet_reset()


@pytest.fixture
def clean(fleet):
    reset_host()
    fleet_reset()
    yield fleet
    fleet_reset()


def fleet_stack(tmp_path, **config) -> Deployment:
    hosts = [{"name": NAMES[n], "host": address(n), "ssh_host_key_file": str(host_key_file(n))} for n in HOSTS]
    d = Deployment(tmp_path, config={"ssh_port": "22", "hosts": json.dumps(hosts), **config})
    d.stack.remove_config("canary:host")
    d.stack.remove_config("canary:ssh_host_key_file")
    return d


def production(host) -> tuple[str, str]:
    """(image, container id) of the app's production container on a droplet."""
    line = out(host, "docker ps -a --filter name=^/odoo$ --format '{{.Image}} {{.ID}}'").split()
    return (line[0], line[1]) if line else ("", "")


def started_at(host) -> float:
    """When the production container on a droplet started (seconds since the epoch)."""
    stamp = out(host, "docker inspect -f '{{.State.StartedAt}}' odoo").strip()
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + stamp[20:29].rstrip("Z"))


def served(n: int) -> set[str]:
    return {requests.get(f"http://{address(n)}:8088/", timeout=5).text.split(":")[0] for _ in range(10)}


def test_the_canary_droplet_first_then_the_others_in_waves_hold_promote_refresh_destroy(clean, tmp_path):
    fleet = clean
    d = fleet_stack(tmp_path, wave_size="1")
    d.up()
    assert {n: production(h)[0] for n, h in fleet.items()} == {1: "canary-demo:v1", 2: "canary-demo:v1",
                                                               3: "canary-demo:v1"}
    # A new tag, held for a person: the canary droplet analyses and holds; the others wait.
    d.set(image_tag="v2", auto_promote="false")
    preview = d.preview(diff=True).stdout
    for n in HOSTS:
        assert f"release-{NAMES[n]}" in preview
    d.up()
    o = d.outputs()
    hosts = o["hosts"]
    assert hosts["web-1"]["phase"] == "holding" and hosts["web-1"]["canary_weight"] == 10, hosts["web-1"]
    for name in ("web-2", "web-3"):
        assert hosts[name]["production_image"] == "canary-demo:v1" and not hosts[name]["converged"]
        assert "waiting for web-1" in hosts[name]["message"], hosts[name]
    assert production(fleet[2])[0] == production(fleet[3])[0] == "canary-demo:v1"
    assert "canary-demo v2" in served(1) and served(2) == served(3) == {"canary-demo v1"}
    # Their v2 containers were started during the analysis, without traffic, and removed
    # when the gate stayed closed.
    log = "\n".join(d.log)
    for name in ("web-2", "web-3"):
        assert f"{name}: canary-demo:v2 staged beside production, without traffic" in log, log[-3000:]
        assert f"{name}: removed the canary-demo:v2 container staged beside production" in log, log[-3000:]
    for n in (2, 3):
        assert out(fleet[n], "docker ps -a --format '{{.Names}}'").split() == ["odoo"], n

    # More traffic to the held canary: re-analysed at 25 % on the canary droplet only.
    d.set(canary_percentage="25")
    d.up()
    hosts = d.outputs()["hosts"]
    assert hosts["web-1"]["phase"] == "holding" and hosts["web-1"]["canary_weight"] == 25, hosts["web-1"]
    assert all("waiting for web-1" in hosts[n]["message"] for n in ("web-2", "web-3")), hosts

    # A person promotes it: the canary droplet first, then web-2, then web-3 (waves of 1).
    d.set(promote="v2")
    d.up()
    hosts = d.outputs()["hosts"]
    assert all(h["converged"] and h["production_image"] == "canary-demo:v2" for h in hosts.values()), hosts
    # web-2 went at web-1's verdict, while web-1 replaced its production; web-3 after web-2.
    assert started_at(fleet[2]) < started_at(fleet[3]) and started_at(fleet[1]) < started_at(fleet[3])
    assert "the later waves may go, promote-web-1 promotes it here" in "\n".join(d.log)
    # (web-3's container waited beside production from the start: its turn only moved traffic)
    assert "web-3: canary-demo:v2 staged beside production, without traffic" in "\n".join(d.log)
    for n in HOSTS:
        assert served(n) == {"canary-demo v2"}, n
        assert out(fleet[n], "docker ps --format '{{.Names}}'").split() == ["odoo"]
    assert "passed on the canary droplets web-1" in "\n".join(d.log)

    # Nothing left to do: a preview shows no change on any droplet.
    assert d.preview().change_summary.get("update", 0) == 0
    d.refresh()
    assert d.outputs()["hosts"]["web-3"]["production_image"] == "canary-demo:v2"
    assert d.preview().change_summary.get("update", 0) == 0  # (web-1's release and promote step agree)

    # Instant rollback, fleet-wide: the previous tag again, no analysis on any droplet.
    d.set(image_tag="v1")
    d.up()
    assert {n: production(h)[0] for n, h in fleet.items()} == {n: "canary-demo:v1" for n in HOSTS}
    assert "instant rollback" in d.outputs()["message"]
    d.destroy()
    for n, h in fleet.items():
        assert out(h, "docker ps -aq --filter label=canary.app=odoo").strip() == "", n
        assert h.run(["test", "-e", "/etc/nginx/conf.d/odoo-canary.conf"], check=False)[0] == 1


def test_a_failure_on_any_droplet_rolls_back_every_droplet_that_runs_it(clean, tmp_path):
    fleet = clean
    d = fleet_stack(tmp_path)
    d.up()
    before = {n: production(h) for n, h in fleet.items()}

    # The canary droplet's canary fails: the others are never touched.
    d.set(image_tag="broken")
    with pytest.raises(Exception) as err:
        d.up()
    assert "rolled back on web-1" in str(err.value), str(err.value)[-2000:]
    assert {n: production(h) for n, h in fleet.items()} == before
    for n, h in fleet.items():  # nothing staged for it is left either
        assert out(h, "docker ps -a --format '{{.Names}}'").split() == ["odoo"], n

    # A later wave fails (web-3's v2 is broken): web-1 and web-2, which run v2 by then,
    # go back to v1, and the update fails naming them.
    v2 = out(fleet[3], "docker image inspect -f '{{.Id}}' canary-demo:v2").strip()
    out(fleet[3], "docker tag canary-demo:broken canary-demo:v2")
    try:
        d.set(image_tag="v2", retry="false")
        with pytest.raises(Exception) as err:
            d.up()
        message = str(err.value)
        assert "rolled back on web-3" in message, message[-2000:]
        assert "Rolled back to their previous revision: web-1, web-2" in message, message[-2000:]
        for n, h in fleet.items():
            assert production(h)[0] == "canary-demo:v1", n
            assert served(n) == {"canary-demo v1"}, n
            assert out(h, "docker ps --format '{{.Names}}'").split() == ["odoo"], n

        # The next `pulumi up` of v2 is blocked on every droplet it was rolled back on,
        # though web-1's and web-2's releases last saved v2: their journals say otherwise.
        with pytest.raises(Exception) as err:
            d.up()
        assert "was rolled back" in str(err.value) and "retry" in str(err.value), str(err.value)[-2000:]
        for n, h in fleet.items():
            assert production(h)[0] == "canary-demo:v1", n
    finally:
        out(fleet[3], f"docker tag {v2} canary-demo:v2")


def test_a_droplet_that_is_down_fails_the_run_before_any_change(clean, tmp_path):
    fleet = clean
    d = fleet_stack(tmp_path)
    d.up()
    before = {n: production(h) for n, h in fleet.items()}
    d.set(image_tag="v2")
    sshd = FLEET_DIR / "host2" / "run" / "sshd.pid"
    sh(f"kill $(cat {sshd})")
    try:
        with pytest.raises(Exception) as err:
            d.up()
        message = str(err.value)
        assert "cannot reach every droplet, so nothing was changed on any of them" in message, message[-2000:]
        assert f"web-2 ({address(2)}) port 22" in message and "web-1 (" not in message.split("cannot reach")[1]
    finally:
        sh(f"bash {FLEET} start 3")
    assert {n: production(h) for n, h in fleet.items()} == before
    d.up()
    assert {n: production(h)[0] for n, h in fleet.items()} == {n: "canary-demo:v2" for n in HOSTS}


def test_a_droplet_lost_during_the_promotion_lags_and_the_next_up_finishes_it(clean, tmp_path):
    fleet = clean
    d = fleet_stack(tmp_path)
    d.up()
    d.set(image_tag="v2")
    sshd = FLEET_DIR / "host3" / "run" / "sshd.pid"
    failure: list = []

    def up():
        try:
            d.up()
        except Exception as err:  # (the assertion below reads it)
            failure.append(err)
    update = threading.Thread(target=up)
    update.start()
    try:
        # The pre-flight reached every droplet; while web-1 analyses its canary, web-3's
        # sshd stops listening (new connections are refused).
        deadline = time.monotonic() + 120
        while "odoo-canary" not in out(fleet[1], "docker ps --format '{{.Names}}'").split():
            assert time.monotonic() < deadline and update.is_alive(), "web-1's canary never started"
            time.sleep(0.5)
        sh(f"kill $(cat {sshd})")
        update.join(timeout=600)
    finally:
        sh(f"bash {FLEET} start 3")
    assert failure, "the update did not fail"
    assert "web-3" in str(failure[0]) or "10.231.3.2" in str(failure[0]), str(failure[0])[-2000:]
    # The droplets done stay done; web-3 still runs v1 and is the one change left.
    assert [production(fleet[n])[0] for n in HOSTS] == ["canary-demo:v2", "canary-demo:v2", "canary-demo:v1"]
    preview = d.preview().stdout
    assert "release-web-3 update" in preview, preview[-3000:]
    assert "release-web-1 update" not in preview and "release-web-2 update" not in preview, preview[-3000:]
    d.up()
    assert [production(fleet[n])[0] for n in HOSTS] == ["canary-demo:v2"] * 3
    assert all(h["converged"] for h in d.outputs()["hosts"].values())
