"""Operating a running release (operate.py): requests, what they do to the analysis loop
(runner's `control`) and to the controller on the host in memory."""

from __future__ import annotations

import json

from canary import operate
from canary.analysis import runner
from canary.controller import Controller
from canary.analysis.verdict import FAIL, PASS
from canary.operate import Request
from tests.unit.test_controller import Run, at_v1, running
from tests.unit.test_controller import spec as release_spec
from tests.unit.test_runner import Clock, Probes, spec

IMAGE = "odoo-erp:v2"


def request(verb: str, image: str = IMAGE) -> str:
    return Request(verb, "ann@laptop", "2024-05-01T10:00:00Z", image).to_json()


# -- requests ------------------------------------------------------------------------------
def test_a_request_round_trips_and_anything_else_is_none():
    r = Request.parse(request("promote-full"))
    assert r == Request("promote-full", "ann@laptop", "2024-05-01T10:00:00Z", IMAGE)
    for text in (None, "", "{", "[]", '{"verb": "abort"}', request("delete")):
        assert Request.parse(text) is None


def test_decide():
    abort = operate.decide(Request.parse(request("abort")), IMAGE)
    assert (abort.verdict.status, abort.verdict.reason, abort.consume) == (
        FAIL, "aborted by ann@laptop at 2024-05-01T10:00:00Z", True)
    promote = operate.decide(Request.parse(request("promote")), IMAGE)
    assert promote.verdict.status == PASS and "promoted by hand by ann@laptop" in promote.verdict.reason
    assert not promote.full
    full = operate.decide(Request.parse(request("promote-full")), IMAGE)
    assert full.verdict.status == PASS and full.full and full.consume
    stale = operate.decide(Request.parse(request("abort", "odoo-erp:v1")), IMAGE)
    assert stale.verdict is None and stale.consume and "stale" in stale.note
    assert operate.decide(None, IMAGE) == operate.Decision()
    cancelled = operate.decide(Request.parse(request("promote")), IMAGE, cancelled=True)
    assert cancelled.verdict.reason == "cancelled (Ctrl-C)" and not cancelled.consume


def test_running_needs_a_fresh_progress_of_the_journals_update():
    progress = json.dumps({"image": IMAGE, "interval": 2, "updated": 1000})
    journal = json.dumps({"image": IMAGE, "step": "analyse"})
    assert operate.running(progress, journal, now=1010)["image"] == IMAGE
    assert operate.running(progress, journal, now=1000 + 37) is None  # 3 intervals + 30 s: a dead run's
    assert operate.running(progress, json.dumps({"image": IMAGE, "step": "done"}), now=1010) is None
    assert operate.running(progress, json.dumps({"image": "odoo-erp:v3", "step": "analyse"}), now=1010) is None
    assert operate.running(None, journal, now=1010) is None


# -- the analysis loop's control -----------------------------------------------------------------
def test_control_sees_every_check_and_may_end_the_step():
    clock, lines, seen = Clock(), [], []

    def control(c: runner.CheckDone):
        seen.append((c.index, c.count, c.seconds_left, c.verdict.status))
        return operate.decide(Request.parse(request("abort")), IMAGE).verdict if c.index == 2 else None

    r = runner.analyse([Probes(2)], spec(duration=50), IMAGE, 10, lines.append, clock, clock.sleep, control)
    assert r.verdict.status == FAIL and r.verdict.reason.startswith("aborted by ann@laptop")
    assert [s[:2] for s in seen] == [(1, 5), (2, 5)] and seen[0][2] == 45  # (its last probe at 5 s)
    assert lines[-1] == "check 2/5 => FAIL: aborted by ann@laptop at 2024-05-01T10:00:00Z"


def test_control_does_not_overrule_what_the_evidence_decided():
    clock = Clock()
    told = operate.decide(Request.parse(request("promote")), IMAGE).verdict
    r = runner.analyse([Probes(3, fail_from=1)], spec(duration=100), IMAGE, 10, lambda m: None, clock,
                       clock.sleep, lambda c: told)
    assert r.verdict.status == FAIL and "health check failed" in r.verdict.reason


# -- the controller on the host in memory ----------------------------------------------------------
def at_check(r: Run, weight: int, i: int, verb: str, image: str = IMAGE) -> None:
    """An operator's request written while check i of the analysis at weight runs."""
    r.h.failures[f"check:{weight}:{i}"] = lambda: setattr(r.h, "request", request(verb, image))


def test_abort_rolls_back_at_the_next_check():
    r = at_v1("v2")
    at_check(r, 10, 1, "abort")
    out = r.up("v2")
    assert out["phase"] == "rolled_back" and out["failure_reason"].startswith("aborted by ann@laptop at ")
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None
    assert r.h.request is None and r.h.progress is None, "consumed, and no progress left behind"
    assert json.loads(r.h.shown[0])["check"] == 1 and len(r.h.shown) == 1
    assert not r.h.violations


def test_promote_passes_the_step_and_the_next_steps_go_on():
    r = at_v1("v2")
    at_check(r, 10, 1, "promote")
    out = r.up("v2", canary_steps=[10, 50])
    assert [e for e in r.h.events if e.startswith("analyse:")] == ["analyse:10", "analyse:50"]
    assert r.h.events.count("check:10:1") == 1 and "check:10:2" not in r.h.events
    assert out["phase"] == "promoted" and "promoted by hand" not in out["message"]
    assert any("passed at 10%: promoted by hand by ann@laptop" in line for line in r.lines)


def test_promote_full_promotes_now_whatever_auto_promote_says():
    r = at_v1("v2")
    at_check(r, 10, 2, "promote-full")
    out = r.up("v2", canary_steps=[10, 50], auto_promote=False)
    assert "analyse:50" not in r.h.events
    assert out["phase"] == "promoted" and out["production_image"] == "odoo-erp:v2"
    assert "promoted by hand by ann@laptop" in out["message"] and "--full" in out["message"]
    assert out["analysis"]["promoted_by_hand"].startswith("promoted by hand by ann@laptop")
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and not r.h.violations


def test_a_stale_request_is_removed_and_ignored():
    r = at_v1("v2")
    at_check(r, 10, 1, "abort", image="odoo-erp:v9")
    out = r.up("v2")
    assert out["phase"] == "promoted" and r.h.request is None
    assert any("ignoring a stale request to abort odoo-erp:v9" in line for line in r.lines)


def test_ctrl_c_rolls_back_at_the_next_check():
    r = at_v1("v2")
    c = Controller(r.h.ops(), release_spec("v2"), r.lines.append, report_dir="", clock=r.h.now,
                   sleep=r.h.sleep, cancelled=lambda: "check:10:2" in r.h.events)
    out = c.reconcile(r.outputs).to_outputs()
    assert (out["phase"], out["failure_reason"]) == ("rolled_back", "cancelled (Ctrl-C)")
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and "check:10:3" not in r.h.events


def test_a_request_the_analysis_did_not_act_on_is_dropped_at_its_end():
    r = at_v1("v2")
    at_check(r, 10, 3, "abort")  # during the last check, which decides by itself
    assert r.up("v2")["phase"] == "promoted" and r.h.request is None
    assert any("dropped the request to abort" in line for line in r.lines)
    assert json.loads(r.h.shown[-1])["check"] == 3 and r.h.progress is None


def test_the_providers_cancel_sets_the_event_even_through_a_method_bound_before(monkeypatch):
    """gRPC binds the servicer's Cancel when the server starts, before configure() hooks it."""
    import sys
    import types

    from canary import provider
    main = types.ModuleType("stand_in_main")
    exec("class DynamicResourceProviderServicer:\n"
         "    def Cancel(self, request, context):\n        return 'empty'\n", main.__dict__)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(provider, "_CANCELLED", provider.threading.Event())
    bound = main.DynamicResourceProviderServicer().Cancel
    provider._hook_cancel()
    provider._hook_cancel()  # once only
    assert not provider._CANCELLED.is_set()
    assert bound(None, None) == "empty" and provider._CANCELLED.is_set()
