"""The local fleet (testhost/fleet.sh): three test hosts at their own addresses, each
with its own sshd, host key, nginx and Docker engine, reached through real SSH with the
host key pinned; isolated from each other and from the single test host; and a real
deployment of the program to one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from canary.remote.ssh import ConnectionFailed, Host, Target

from .harness import ROOT, TESTHOST_DIR, Deployment, containers, reset_host, sh

FLEET = ROOT / "testhost" / "fleet.sh"
FLEET_DIR = TESTHOST_DIR / "fleet"
HOSTS = (1, 2, 3)
DEMO_IMAGES = {f"canary-demo:{t}" for t in ("v1", "v2", "broken", "slow", "sick")}


def address(n: int) -> str:
    return f"10.231.{n}.2"


def host_key_file(n: int) -> Path:
    return FLEET_DIR / f"host{n}" / "ssh_host_ed25519_key.pub"


def connect(n: int, pinned: int | None = None) -> Host:
    """An SSH connection to fleet host n, pinning the host key of fleet host `pinned`."""
    key = host_key_file(pinned or n).read_text().split()
    return Host(Target(host=address(n), port=22, user="root", host_key=f"{key[0]} {key[1]}",
                       private_key=(TESTHOST_DIR / "id_ed25519").read_text()), retries=2)


def out(host: Host, command: str) -> str:
    status, stdout, stderr = host.run(["sh", "-c", command], check=False)
    assert status == 0, f"{command!r} on {host.target}: {stderr or stdout}"
    return stdout


def sessions(n: int) -> int:
    """Sessions fleet host n's sshd has started so far."""
    return (FLEET_DIR / f"host{n}" / "sshd.log").read_text().count("Starting session:")


def logins(n: int) -> int:
    """Connections fleet host n's sshd has let in with the deployer's key so far."""
    return (FLEET_DIR / f"host{n}" / "sshd.log").read_text().count("Accepted publickey for root")


def fleet_reset() -> None:
    sh(f"bash {FLEET} reset")


@pytest.fixture(scope="module")
def fleet():
    sh(f"bash {FLEET} start 3")
    fleet_reset()
    hosts = {n: connect(n) for n in HOSTS}
    yield hosts
    for h in hosts.values():
        h.close()
    fleet_reset()


def test_each_host_has_its_own_engine_nginx_and_pinned_key(fleet):
    engines, nginx_pids = set(), set()
    for n, host in fleet.items():
        assert out(host, "docker ps --format '{{.Names}}'").split() == [], f"host {n} starts clean"
        images = set(out(host, "docker images canary-demo --format '{{.Repository}}:{{.Tag}}'").split())
        assert images >= DEMO_IMAGES, f"host {n}: {images}"
        status, _, err = host.run(["nginx", "-t"], check=False)
        assert status == 0 and "test is successful" in err, err
        # Its own engine (by engine id and data directory) and its own nginx master.
        engines.add(out(host, "docker info -f '{{.ID}} {{.DockerRootDir}}'").split()[0])
        nginx_pids.add(out(host, "cat /run/nginx.pid").strip())
        assert out(host, "readlink -f /var/run/docker.sock").strip() == "/run/docker.sock"
    engines.add(sh("docker info -f '{{.ID}}'").split()[0])
    nginx_pids.add(Path("/run/nginx.pid").read_text().strip())
    assert len(engines) == 4 and len(nginx_pids) == 4, (engines, nginx_pids)
    # Each host has a key of its own: pinning host 1's key refuses host 2.
    wrong = connect(2, pinned=1)
    with pytest.raises(ConnectionFailed, match="not the pinned"):
        wrong.run(["true"])
    wrong.close()
    # sshd logs the sessions of its host only.
    assert "Starting session" in (FLEET_DIR / "host1" / "sshd.log").read_text()


def test_hosts_are_isolated(fleet):
    one, two = fleet[1], fleet[2]
    probe = "/etc/nginx/conf.d/fleet-isolation.conf"
    try:
        one.write_file(probe, "# written on fleet host 1\n")
        out(one, "nginx -t 2>/dev/null && nginx -s reload")
        assert out(one, f"cat {probe}") == "# written on fleet host 1\n"
        assert two.run(["test", "-e", probe], check=False)[0] == 1, "not on host 2"
        assert not Path(probe).exists(), "not on this machine"

        out(one, "docker run -d --name fleet-isolation --label canary.app=fleet-isolation "
                 "-p 127.0.0.1:8199:8069 canary-demo:v1")
        assert "fleet-isolation" in out(one, "docker ps --format '{{.Names}}'").split()
        assert "fleet-isolation" not in out(two, "docker ps -a --format '{{.Names}}'").split()
        assert "fleet-isolation" not in sh("docker ps -a --format '{{.Names}}'").split()
        # Its published port is on host 1's loopback only.
        assert "127.0.0.1:8199" in out(one, "ss -Htln 'sport = :8199'")
        assert out(two, "ss -Htln 'sport = :8199'").strip() == ""

        # /var/lib/canary is the host's own, and stays so when this machine's is removed
        # (testhost.sh reset does that before every test).
        out(one, "mkdir -p /var/lib/canary && echo one >/var/lib/canary/fleet-isolation")
        reset_host()
        out(one, "echo again >>/var/lib/canary/fleet-isolation")
        assert out(one, "cat /var/lib/canary/fleet-isolation") == "one\nagain\n"
        assert two.run(["test", "-e", "/var/lib/canary/fleet-isolation"], check=False)[0] == 1
        assert not Path("/var/lib/canary/fleet-isolation").exists()
    finally:
        one.run(["rm", "-f", probe], check=False)
        one.run(["sh", "-c", "nginx -s reload"], check=False)
    # fleet.sh reset cleans the host: the labelled container and /var/lib/canary go.
    fleet_reset()
    assert out(one, "docker ps -aq --filter name=fleet-isolation").strip() == ""
    assert out(one, "ls -A /var/lib/canary").strip() == ""


def test_deployment_to_fleet_host_2(fleet, tmp_path):
    reset_host()  # this machine's test host: no app, so none can be mistaken for ours
    two = fleet[2]
    sessions_before, logins_before = sessions(2), logins(2)
    d = Deployment(tmp_path, config={
        "host": address(2), "ssh_port": "22", "ssh_host_key_file": str(host_key_file(2)),
        "listen_port": "8088"})
    d.up()
    assert d.outputs()["production_image"] == "canary-demo:v1"
    d.set(image_tag="v2")
    d.up()
    result = d.outputs()
    assert result["phase"] == "promoted", result["message"]
    assert result["production_image"] == "canary-demo:v2"
    assert result["analysis"]["decision"] == "pass"

    site = f"http://{address(2)}:8088/"
    answers = {requests.get(site, timeout=5).text.split(":")[0] for _ in range(20)}
    assert answers == {"canary-demo v2"}
    running = out(two, "docker ps --format '{{.Names}} {{.Image}}'").splitlines()
    assert running == ["odoo canary-demo:v2"], running
    assert two.run(["test", "-f", "/etc/nginx/sites-enabled/odoo.conf"])[0] == 0
    # Nothing of it on this machine's test host, nor on the other fleet hosts.
    assert containers() == {}
    assert not Path("/etc/nginx/sites-enabled/odoo.conf").exists()
    for n in (1, 3):
        assert out(fleet[n], "docker ps -aq").strip() == "", f"host {n}"
    # The host's own sshd carried the deployment's commands: each `pulumi up` logged in
    # and opened at least the host lock's session and a shell there (commands share a
    # connection's shells, so sessions no longer count commands; what they did on this
    # host is checked above).
    assert logins(2) >= logins_before + 2
    assert sessions(2) >= sessions_before + 4
