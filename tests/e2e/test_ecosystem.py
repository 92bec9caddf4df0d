"""Notifications on a local webhook receiver, and the policy pack through the real CLI."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pulumi import automation as auto

from .harness import ROOT, Deployment, containers, reset_host, ssh_commands


class Receiver:
    """A Slack-compatible incoming webhook on loopback that records what it is told."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        return [m["event"] for m in self.received]


def test_notifications_for_promotion_and_rollback(deployment):
    d = deployment
    receiver = Receiver()
    d.set(notify_allow_local="true")  # the receiver is on loopback
    d.set_secret("notify_webhook", receiver.url)
    d.up()
    d.set(image_tag="v2")
    d.up()
    assert receiver.events() == ["started", "promoted"]
    assert "analysis at 10%: pass" in receiver.received[-1]["text"]
    d.set(image_tag="broken")
    with pytest.raises(auto.CommandError):
        d.up()
    assert receiver.events()[-1] == "rolled_back"
    assert "Production is unchanged" in receiver.received[-1]["text"]
    # The webhook URL is a secret: not in the state, the CLI output or the outputs.
    assert "secret-token" not in d.export()
    assert not any("secret-token" in line for line in d.log)
    receiver.server.shutdown()


def test_an_unreachable_webhook_never_fails_a_deployment(deployment):
    d = deployment
    d.set(notify_allow_local="true")
    d.set_secret("notify_webhook", "http://127.0.0.1:9/hook")
    d.up()
    d.set(image_tag="v2")
    d.up()
    assert d.outputs()["phase"] == "promoted"
    assert any("notification 'promoted' failed" in line for line in d.log)


def policy_preview(tmp_path, **config):
    reset_host()
    d = Deployment(tmp_path, name="production", config=config)
    before = ssh_commands()
    try:
        return d.stack.preview(policy_packs=[str(ROOT / "policy")], on_output=print), d
    finally:
        assert ssh_commands() == before and containers() == {}


def test_policy_pack_refuses_a_risky_production_config(tmp_path):
    with pytest.raises(auto.CommandError) as refused:
        policy_preview(tmp_path, canary_percentage="75", monitoring_duration="6s")
    text = str(refused.value)
    assert "big-canaries-need-review" in text and "auto_promote false" in text
    assert "production-monitors-long-enough" in text


def test_policy_pack_accepts_a_compliant_production_config(tmp_path):
    # A held canary at 75 %, promoted by hand (canary:promote): the documented path.
    result, _ = policy_preview(tmp_path, canary_percentage="75", auto_promote="false",
                               monitoring_duration="15", promote="v1")
    # stack, docker provider, image, the sites' command provider, site, the release's
    # provider, release, verdict
    assert result.change_summary.get("create") == 8
