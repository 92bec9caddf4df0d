"""Secrets (`scripts/faults`): no configured secret value in failure reasons, outputs,
reports, notifications, CLI output or the state, even when the app itself prints one;
env files private from their first instant."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e.harness import Deployment, reset_host, sh
from tests.e2e.test_ecosystem import Receiver

from .conftest import record

PASSWORD = "pw-correct-horse-battery"
METRIC = "echo 12 # metric-token-4f9a2c"


def test_a_secret_the_app_prints_is_masked_everywhere(tmp_path):
    reset_host()
    receiver = Receiver()
    d = Deployment(tmp_path)
    d.set_secret("env.DB_PASSWORD", PASSWORD)
    d.set_secret("notify_webhook", receiver.url)
    d.stack.set_config("canary:metric_command", auto.ConfigValue(value=METRIC, secret=True))
    d.set(metric_max="80")
    d.up()
    # A canary that cannot start and says why, with the password, in its log.
    d.stack.set_config("canary:canary_env.CRASH_ON_START", auto.ConfigValue(value="1"), path=True)
    d.set(image_tag="v2")
    modes: list[str] = []
    stop = threading.Event()

    def watch_env_files():  # any instant in which an env file is readable by others
        while not stop.is_set():
            modes.append(sh("stat -c '%a %n' /var/lib/canary/odoo /var/lib/canary/odoo/*.env* "
                            "2>/dev/null || true", check=False))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_env_files, daemon=True)
    watcher.start()
    with pytest.raises(auto.CommandError) as failed:
        d.up()
    stop.set()
    watcher.join()
    out = d.outputs()
    masked = "[secret]" in out["failure_reason"] and "cannot connect to the database" in out["failure_reason"]
    reports = "\n".join(p.read_text() for p in Path(d.env["CANARY_REPORT_DIR"]).glob("*") if p.is_file())
    places = {"error": str(failed.value), "CLI output": "\n".join(d.log), "outputs": json.dumps(out),
              "exported state": d.export(), "reports": reports,
              "notifications": json.dumps(receiver.received),
              "journal": sh("cat /var/lib/canary/odoo/journal.json")}
    secrets = {"env value": PASSWORD, "metric command": "metric-token-4f9a2c",
               "webhook": "secret-token"}
    leaks = [f"{s} in {p}" for p, text in places.items() for s, v in secrets.items() if v in text]
    lines = [line for snapshot in modes for line in snapshot.splitlines()]
    env_files = [line for line in lines if ".env" in line]
    private = bool(env_files) and all(line.split()[0] in ("600", "700") for line in lines)
    print(out["failure_reason"], leaks, sorted(set(lines)), sep="\n")
    reset_host()
    record("a secret printed by the app is masked in reasons, outputs, reports, notifications",
           masked and not leaks and private, 0, leaks=leaks)
