"""Transport logic that needs no host: lock messages, webhook bounds, the
SSH tunnel's ends."""

import socket
import threading
import time

from canary import notify
from canary.analysis.sources.probes import app_session
from canary.remote.lock import answer_line, busy_message
from canary.remote.ssh import Host, Target


def test_busy_message_names_holder_and_ages():
    m = busy_message("/var/lib/canary/odoo.lock", "BUSY 125 40 stack prod (ci@runner) since 10:00:00 [ab12cd34]", 60)
    assert "holder: stack prod (ci@runner) since 10:00:00 [ab12cd34]" in m
    assert "held for 125s" in m and "last heartbeat 40s ago" in m and "waited 60s" in m


def test_busy_message_without_holder_file():
    assert "holder: unknown" in busy_message("/l", "BUSY 0 0", 5)
    assert "no answer" in busy_message("/l", "", 5)


def test_lock_answer_skips_what_a_login_shell_printed_first():
    assert answer_line(b"pyenv: warning\nWelcome!\nLOCKED stack a [1]\n") == "LOCKED stack a [1]"
    assert answer_line(b"motd\nBUSY 3 1 stack b\n") == "BUSY 3 1 stack b"
    assert answer_line(b"LOCKED\n") == "LOCKED"
    assert answer_line(b"motd\nLOCKED stack a") is None  # not a whole line yet
    assert answer_line(b"UNLOCKED\n") is None and answer_line(b"") is None


def test_app_session_ignores_proxy_environment(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with app_session() as s:
        assert s.trust_env is False
        assert s.merge_environment_settings("http://127.0.0.1:8069/", {}, None, None, None)["proxies"] == {}


def _server(mode):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held = []

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            if mode == "hang":
                held.append(conn)
            else:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/secret-path-xyz"


def _send(url):
    logs = []
    start = time.monotonic()
    notify.Notifier(url, "prod", "odoo", logs.append, allow_local=True).send("started", "canary started")
    return time.monotonic() - start, logs


def test_webhook_that_never_answers_is_bounded():
    sock, url = _server("hang")
    try:
        took, logs = _send(url)
    finally:
        sock.close()
    assert took < notify.WAIT_SECONDS + 1
    assert any("not answered within" in m for m in logs)
    assert not any("secret-path-xyz" in m for m in logs)


def test_webhook_errors_are_logged_without_the_url():
    sock, url = _server("500")
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nobody listens there
    try:
        for target, expect in ((url, "HTTP 500"), (f"http://127.0.0.1:{port}/secret-path-xyz", "ConnectionError"),
                               ("secret-path-xyz", "MissingSchema"),
                               ("http://[::1/secret-path-xyz", "InvalidURL")):
            took, logs = _send(target)
            assert took < notify.WAIT_SECONDS + 1
            assert any(expect in m for m in logs), (target, logs)
            assert not any("secret-path-xyz" in m for m in logs)
    finally:
        sock.close()


def test_forward_passes_on_a_backend_that_closes():
    """An app not listening yet: the backend end of the tunnel closes at once, and so
    must the client's end (a probe fails fast instead of waiting out its timeout)."""
    backend = socket.create_server(("127.0.0.1", 0))

    def refuse():
        conn, _ = backend.accept()
        conn.close()
    threading.Thread(target=refuse, daemon=True).start()

    class Transport:
        def open_channel(self, kind, dest, peer, timeout):
            return socket.create_connection(backend.getsockname())

    class Client:
        def get_transport(self):
            return Transport()

    host = Host(Target("host", 22, "user", "ssh-ed25519 AAAA", ""))
    host.client = Client
    with host.forward(8069) as port:
        client = socket.create_connection(("127.0.0.1", port))
        client.settimeout(3)
        try:
            assert client.recv(100) == b""
        except socket.timeout:
            raise AssertionError("the tunnel kept the client waiting after the backend closed") from None
        finally:
            client.close()
    backend.close()


def test_inspecting_two_containers_in_one_call_tells_absence_from_failure():
    import json as _json

    import pytest

    from canary.remote import docker
    from canary.remote.ssh import RemoteError

    def container(name):
        return {"Name": "/" + name, "Id": "ab" * 32, "Config": {"Image": "canary-demo:v1", "Labels": {}},
                "State": {"Running": True, "Status": "running"}}

    class Stub:  # what `docker inspect` prints (the format the Docker CLI uses)
        def __init__(self, status, found, err):
            self.answer = (status, _json.dumps([container(n) for n in found]), err)

        def run(self, argv, check=True):
            return self.answer

    names = ["odoo", "odoo-canary"]
    both = docker.inspect_all(Stub(0, names, ""), names)
    assert {n: c.name for n, c in both.items()} == {"odoo": "odoo", "odoo-canary": "odoo-canary"}
    one = docker.inspect_all(Stub(1, ["odoo"], "Error response from daemon: No such container: odoo-canary\n"), names)
    assert one["odoo"].running and one["odoo-canary"] is None
    none = docker.inspect_all(Stub(1, [], "Error response from daemon: No such container: odoo\n"
                                          "Error response from daemon: No such container: odoo-canary\n"), names)
    assert none == {"odoo": None, "odoo-canary": None}
    with pytest.raises(RemoteError, match="Cannot connect"):
        docker.inspect_all(Stub(1, [], "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"), names)


def test_a_refused_forward_is_not_logged_once_per_probe(caplog):
    import logging

    import canary.remote.ssh  # noqa: F401  (installs the filter)
    log = logging.getLogger("paramiko.transport")
    with caplog.at_level(logging.INFO, logger="paramiko.transport"):
        log.error("Secsh channel 7 open FAILED: Connection refused: Connect failed")
        log.error("Exception (client): Error reading SSH protocol banner")
    assert [r.getMessage() for r in caplog.records] == ["Exception (client): Error reading SSH protocol banner"]


def test_a_deployer_says_whose_lock_it_waits_for():
    from canary.remote.lock import waiting_message
    buf = b"motd\nWAITING 125 3 stack prod (ci@runner) since 10:00:00 [ab12cd34]\n"
    m = waiting_message("/var/lib/canary/odoo.lock", buf, 60)
    assert m == ("waiting up to 60s for the host lock /var/lib/canary/odoo.lock: held by stack prod (ci@runner) "
                 "since 10:00:00 [ab12cd34] for 125s (last heartbeat 3s ago)")
    assert waiting_message("/l", b"WAITING 1 1 x", 5) is None  # not a whole line yet
    assert waiting_message("/l", b"LOCKED\n", 5) is None
