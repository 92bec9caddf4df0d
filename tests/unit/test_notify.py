"""Webhook notifications reach the configured receiver only, and say what the app logged as
plain text: local receivers on loopback (no host, no CLI)."""

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from canary import notify
from canary.config_values import local_address_kind


class Receiver:
    """An HTTP server on loopback that records each request and answers `status`
    (a redirect to `location` for 3xx)."""

    def __init__(self, status=200, location=""):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                seen.append({"path": self.path, "headers": dict(self.headers),
                             "body": self.rfile.read(length).decode()})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_CONNECT = _answer

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-path-xyz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]
    yield make
    for r in made:
        r.close()


def send(url, text="canary started", analysis=None, allow_local=True):
    logs = []
    notify.Notifier(url, "prod", "odoo", logs.append, allow_local=allow_local).send("rolled_back", text, analysis)
    time.sleep(0.05)  # (a failure is logged from the sender thread)
    return logs


@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("100.100.100.200", "cloud metadata"),
    ("169.254.10.1", "link-local"), ("fe80::1%eth0", "link-local"), ("0.0.0.0", "not a unicast"),
    ("224.0.0.1", "not a unicast"),
])
def test_local_and_metadata_addresses_are_named(address, kind):
    assert kind in local_address_kind(address)


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.10", "203.0.113.7", "2001:db8::1", "hooks.slack.com"])
def test_other_addresses_are_not_local(address):
    assert local_address_kind(address) == ""


def test_a_loopback_receiver_is_refused_unless_allowed(receivers):
    r = receivers()
    logs = send(r.url, allow_local=False)
    assert r.seen == []
    assert any("failed (ConnectionError: the webhook's address is a loopback address" in m for m in logs), logs
    assert not any("secret-path-xyz" in m for m in logs)
    assert send(r.url) == [] and len(r.seen) == 1  # canary:notify_allow_local true


def test_redirects_are_not_followed(receivers):
    target = receivers()
    redirecting = receivers(status=307, location=target.url)
    logs = send(redirecting.url)
    assert len(redirecting.seen) == 1 and target.seen == []
    assert any("not accepted by the webhook (HTTP 307)" in m for m in logs), logs


def test_proxy_and_netrc_from_the_environment_are_ignored(receivers, tmp_path, monkeypatch):
    target, proxy = receivers(), receivers()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert send(target.url) == []
    assert proxy.seen == [] and len(target.seen) == 1
    headers = {k.lower() for k in target.seen[0]["headers"]}
    assert "authorization" not in headers and "proxy-authorization" not in headers
    assert base64.b64encode(b"netrc-user:netrc-password").decode() not in json.dumps(target.seen)


def test_text_from_the_app_cannot_ping_the_channel_or_link(receivers):
    r = receivers()
    hostile = "ERROR <!channel> deploy <https://evil.example/x|click here> & <@U123> <!here>"
    assert send(r.url, f"rolled back: {hostile}",
                {"decision": "fail", "weight": 10, "reason": f"log: {hostile}"}) == []
    text = json.loads(r.seen[0]["body"])["text"]
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example/x|click here&gt;" in text
    assert "&amp; &lt;@U123&gt;" in text
    assert text.count("&lt;!channel&gt;") == 2  # the message and the analysis line
    assert text.startswith(":rotating_light: *odoo* (prod): rolled back:")  # its own markup stays


def _outside_address() -> str:
    """An address of this machine that is not loopback (the peer check lets it through)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: the route picks the address
            return s.getsockname()[0]
        except OSError:
            return ""


def test_an_outside_receiver_is_reached_through_the_checked_connection():
    address = _outside_address()
    if not address or local_address_kind(address):
        pytest.skip("no address of this machine outside loopback")
    r = Receiver()
    r.server.server_close()
    r.server = HTTPServer((address, 0), r.server.RequestHandlerClass)
    threading.Thread(target=r.server.serve_forever, daemon=True).start()
    try:
        assert send(f"http://{address}:{r.server.server_port}/hooks/x", allow_local=False) == []
        assert len(r.seen) == 1
        # A TLS failure (here: no TLS at all) is logged by name, never raised from the thread.
        logs = send(f"https://{address}:{r.server.server_port}/hooks/secret-path-xyz", allow_local=False)
        assert any("failed (SSLError)" in m or "failed (ConnectionError)" in m for m in logs), logs
        assert not any("secret-path-xyz" in m for m in logs)
    finally:
        r.close()


def test_the_refusal_is_found_in_whatever_requests_raised():
    import ssl

    import requests
    refusal = notify.RefusedAddress("the webhook's address is a loopback address")
    wrapped = requests.exceptions.ConnectionError(ValueError("pool"))
    wrapped.__context__ = refusal
    assert notify._refused(wrapped) is refusal
    tls = ssl.SSLCertVerificationError(1, "certificate verify failed")
    tls.reason = "CERTIFICATE_VERIFY_FAILED"  # a string: not followed
    assert notify._refused(requests.exceptions.SSLError(tls)) is None
