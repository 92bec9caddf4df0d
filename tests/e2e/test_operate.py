"""Operating a running release through the real CLI (operate.py, operate_cli.py): `python
-m canary status|abort|promote` from another process while `pulumi up` analyses, and
Ctrl-C of `pulumi up` itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.faults.test_faults import _cli_up, when_logged

from .harness import Deployment, Load, containers, split_exists

STATE = Path("/var/lib/canary/odoo")
ANALYSIS = {"image_tag": "v2", "monitoring_duration": "30s", "check_interval": "2s"}


def canary(d: Deployment, *args: str) -> subprocess.CompletedProcess:
    """`python -m canary ...` as an operator runs it in the project directory."""
    return subprocess.run([sys.executable, "-m", "canary", *args, "--stack", "e2e"], cwd=d.project,
                          env={**os.environ, **d.env}, capture_output=True, text=True, timeout=60)


def split_gone_after(start: float, limit: float = 60) -> float:
    while split_exists() and time.monotonic() - start < limit:
        time.sleep(0.05)
    return time.monotonic() - start


def test_verbs_refuse_when_nothing_runs(deployment):
    d = deployment
    d.up()
    for verb in (["abort"], ["promote"], ["promote", "--full"]):
        r = canary(d, *verb)
        assert r.returncode == 1 and "nothing to " in r.stderr and "no analysis runs" in r.stderr, r
    assert not (STATE / "request.json").exists()
    r = canary(d, "status")
    assert r.returncode == 0 and "phase promoted, production canary-demo:v1" in r.stdout, r
    assert "analysing" not in r.stdout


def test_abort_from_another_process_rolls_back_within_a_check(deployment):
    d = deployment
    d.up()
    d.set(**ANALYSIS)
    seen: dict = {}

    def abort():
        seen["status"] = canary(d, "status")
        seen["abort"] = canary(d, "abort")
        seen["seconds"] = split_gone_after(time.monotonic())

    with Load() as load:
        watcher = when_logged(d, "check 2/", abort)
        with pytest.raises(auto.CommandError) as failed:
            d.up()
        watcher.join(30)
    assert seen["abort"].returncode == 0, seen["abort"].stderr
    print(f"abort: the split file was gone {seen['seconds']:.1f}s after the request (check interval 2s)")
    assert seen["seconds"] <= 2 + 2
    status = seen["status"].stdout
    assert "analysing canary-demo:v2 at 10%: check " in status and "run by stack e2e" in status, status
    out = d.outputs()
    assert out["phase"] == "rolled_back" and out["failure_reason"].startswith("aborted by "), out
    assert "aborted by " in str(failed.value)
    assert containers() == {"odoo": "canary-demo:v1"} and not split_exists()
    assert not (STATE / "request.json").exists() and not (STATE / "progress.json").exists()
    assert load.failures == 0, load.statuses
    # The aborted tag is refused from now on, as every rolled-back one: a preview shows that
    # refusal as the change `pulumi up` would make (fail fast), so it cannot be "no changes".
    with pytest.raises(auto.CommandError):
        d.preview(expect_no_changes=True)


def test_promote_full_promotes_now_with_auto_promote_false(deployment):
    d = deployment
    d.up()
    d.set(**ANALYSIS, auto_promote="false")
    seen: dict = {}
    when_logged(d, "check 1/", lambda: seen.update(promote=canary(d, "promote", "--full")))
    start = time.monotonic()
    with Load() as load:
        d.up()
    seconds = time.monotonic() - start
    print(f"promote --full: pulumi up took {seconds:.1f}s (analysis planned for 30s)")
    assert seen["promote"].returncode == 0, seen["promote"].stderr
    out = d.outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "canary-demo:v2", out["message"]
    assert "promoted by hand by " in out["message"] and "--full" in out["message"]
    assert out["analysis"]["promoted_by_hand"].startswith("promoted by hand by ")
    assert out["analysis"]["checks"] < 15 and seconds < 30
    assert containers() == {"odoo": "canary-demo:v2"}
    assert load.failures == 0, load.statuses
    d.preview(expect_no_changes=True)


def test_ctrl_c_rolls_back_the_running_analysis(deployment):
    d = deployment
    d.up()
    d.set(**ANALYSIS)
    with Load() as load:
        cli = _cli_up(d)
        lines: list[str] = []
        while not any("check 1/" in line for line in lines):
            line = cli.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        reader = threading.Thread(target=lambda: lines.extend(cli.stdout), daemon=True)
        reader.start()
        start = time.monotonic()
        os.kill(cli.pid, signal.SIGINT)  # the CLI alone, as a terminal's Ctrl-C reaches pulumi
        seconds = split_gone_after(start)
        code = cli.wait(timeout=60)
        reader.join(10)
    print(f"Ctrl-C: the split file was gone {seconds:.1f}s after SIGINT; pulumi up exited {code}")
    text = "".join(lines)
    assert code != 0 and "cancelled (Ctrl-C)" in text, text
    assert containers() == {"odoo": "canary-demo:v1"} and not split_exists()
    assert seconds <= 2 + 2
    assert load.failures == 0, load.statuses
    # The release's update ended (its outputs are in the state); the program was cancelled
    # before it exported the stack outputs: refresh --run-program brings them up to date.
    release = next(r for r in json.loads(d.export())["deployment"]["resources"]
                   if r["type"] == "pulumi-python:dynamic/canary:Release")
    assert (release["outputs"]["phase"], release["outputs"]["failure_reason"]) == (
        "rolled_back", "cancelled (Ctrl-C)"), text
    d.refresh()
    out = d.outputs()
    assert (out["phase"], out["failure_reason"]) == ("rolled_back", "cancelled (Ctrl-C)"), out
    with pytest.raises(auto.CommandError):  # refused from now on, like the abort's tag
        d.preview(expect_no_changes=True)
