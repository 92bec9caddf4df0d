"""The controller on a host in memory (fake_host.py): every plan kind, the failures of
each step, a CLI killed mid-way and refresh corrections. After every change the fake
checks that a healthy backend serves what nginx routes, and that nothing the stack does
not own is stopped."""

from __future__ import annotations

import json

import pytest

from canary.analysis.verdict import INCONCLUSIVE
from canary.config import load
from canary.controller import Controller
from canary.health_wait import POLL_FAST
from canary.errors import CanaryError, DeployError
from canary.remote.ssh import ConnectionFailed
from canary.spec import ReleaseSpec
from tests.unit.fake_host import FakeHost, Killed

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"
BASE = {"image": "odoo-erp", "host": "10.0.0.5", "ssh_private_key": KEY, "ssh_host_key": HOST_KEY,
        "image_pull": "false", "monitoring_duration": "20s", "check_interval": "10s"}
REVISION_KEY = "5e" * 32


def spec(tag: str, **over) -> ReleaseSpec:
    values = {**BASE, "image_tag": tag, **{k: str(v).lower() if isinstance(v, bool) else v for k, v in over.items()}}
    return ReleaseSpec.from_settings(load(values.get, "production")).keyed(REVISION_KEY)


def host(*tags: str, **behaviours: str) -> FakeHost:
    h = FakeHost()
    for tag in tags:
        h.image(f"odoo-erp:{tag}", behaviours.get(tag, "healthy"))
    return h


class Run:
    """`pulumi up` of one tag: the stack's recorded outputs go in, new ones come out."""

    def __init__(self, h: FakeHost):
        self.h, self.outputs, self.lines = h, {}, []

    def up(self, tag: str, **over) -> dict:
        self.h.events.clear()
        c = Controller(self.h.ops(), spec(tag, **over), self.lines.append, report_dir="",
                       clock=self.h.now, sleep=self.h.sleep)
        self.outputs = c.reconcile(self.outputs).to_outputs()
        return self.outputs

    def refresh(self, tag: str) -> dict:
        c = Controller(self.h.ops(), spec(tag), self.lines.append, report_dir="",
                       revision=self.outputs.get("production_revision") or None)
        self.outputs = c.refreshed(self.outputs)
        return self.outputs

    def destroy(self, tag: str) -> None:
        Controller(self.h.ops(), spec(tag), self.lines.append, report_dir="").destroy()


def running(h: FakeHost) -> dict:
    return {name: c.labels.get("canary.image", c.image) for name, c in h.containers.items() if c.running}


def at_v1(*tags: str, **behaviours: str) -> Run:
    """A host whose production runs v1, deployed by the stack."""
    r = Run(host("v1", *tags, **behaviours))
    assert r.up("v1")["phase"] == "promoted"
    return r


def before(events: list, a: str, b: str) -> bool:
    return events.index(a) < events.index(b)


# -- the happy paths ---------------------------------------------------------------------
def test_first_deploy_goes_straight_to_production():
    r = Run(host("v1"))
    out = r.up("v1")
    assert (out["phase"], out["production_image"], out["canary_image"]) == ("promoted", "odoo-erp:v1", "")
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None
    assert r.up("v1")["phase"] == "promoted" and r.h.events == ["lock", "journal:noop", "journal:done"]
    assert not r.h.violations


def test_a_canary_that_passes_is_promoted_without_a_gap():
    r = at_v1("v2")
    out = r.up("v2")
    assert (out["phase"], out["production_image"], out["previous_image"]) == ("promoted", "odoo-erp:v2", "odoo-erp:v1")
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None
    e = r.h.events
    # canary up, analysed at 10 %, all traffic to it, production replaced, traffic back
    assert e.index("run:odoo-canary") < e.index("route:10") < e.index("analyse:10") < e.index("route:100")
    assert before(e, "route:100", "stop:odoo") and before(e, "run:odoo", "unroute")
    assert before(e, "unroute", "stop:odoo-canary")
    assert before(e, "journal:promoting", "stop:odoo")
    assert not r.h.violations


def test_a_container_that_answers_its_health_check_needs_no_inspect():
    r = at_v1("v2", "v3", v3="slow:3")
    r.h.inspected.clear()
    r.up("v2")  # (every health check answers at once: each is one local probe)
    assert r.h.inspected == [] and not r.h.violations
    r.up("v3")  # one that does not answer yet: is it still running?
    assert "odoo-canary" in r.h.inspected and r.outputs["production_image"] == "odoo-erp:v3"


def test_steps_are_analysed_in_order():
    r = at_v1("v2")
    r.up("v2", canary_steps=[10, 25, 50])
    assert [e for e in r.h.events if e.startswith("analyse:")] == ["analyse:10", "analyse:25", "analyse:50"]


def test_a_held_canary_is_re_weighted_then_promoted_by_hand():
    r = at_v1("v2")
    out = r.up("v2", auto_promote=False)
    assert (out["phase"], out["canary_weight"], out["passed_weight"]) == ("holding", 10, 10)
    assert running(r.h) == {"odoo": "odoo-erp:v1", "odoo-canary": "odoo-erp:v2"} and r.h.weight == 10
    # more traffic than it passed at: analysed again there, without a restart
    out = r.up("v2", auto_promote=False, canary_percentage=25)
    assert (out["phase"], out["passed_weight"], r.h.weight) == ("holding", 25, 25)
    assert "run:odoo-canary" not in r.h.events and "analyse:25" in r.h.events
    # less traffic: only the split changes
    out = r.up("v2", auto_promote=False, canary_percentage=10)
    assert (out["phase"], r.h.weight) == ("holding", 10) and not any(e.startswith("analyse") for e in r.h.events)
    out = r.up("v2", auto_promote=False, canary_percentage=10, promote="v2")
    assert (out["phase"], out["production_image"]) == ("promoted", "odoo-erp:v2")
    assert not any(e.startswith("analyse") for e in r.h.events) and not r.h.violations


def test_a_fleet_canary_droplet_ends_at_the_verdict_and_its_promote_step_promotes_it():
    r = at_v1("v2")
    c = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep,
                   promoted_by="promote-web-1")
    out = c.reconcile(r.outputs).to_outputs()
    # The canary passed and holds its share; nothing of production changed yet.
    assert (out["phase"], out["canary_weight"], out["passed_weight"]) == ("holding", 10, 10)
    assert out["message"] == "holding odoo-erp:v2 for promote-web-1: passed its analysis at 10%"
    assert running(r.h) == {"odoo": "odoo-erp:v1", "odoo-canary": "odoo-erp:v2"} and r.h.weight == 10
    assert "route:100" not in r.h.events and r.h.events[-1] == "journal:done"
    # The promote step (the same config: auto_promote) finds it passed in the journal and
    # promotes it without a second analysis, even from outputs that predate the verdict.
    r.h.events.clear()
    out = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="", clock=r.h.now,
                     sleep=r.h.sleep).reconcile(r.outputs).to_outputs()
    assert (out["phase"], out["production_image"], out["previous_image"]) == ("promoted", "odoo-erp:v2", "odoo-erp:v1")
    assert not any(e.startswith("analyse") for e in r.h.events) and "run:odoo-canary" not in r.h.events
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None and not r.h.violations


def test_a_fleet_canary_droplet_promoted_by_hand_passes_it_on_too():
    r = at_v1("v2")
    r.up("v2", auto_promote=False)
    c = Controller(r.h.ops(), spec("v2", auto_promote=False, promote="v2"), r.lines.append, report_dir="",
                   clock=r.h.now, sleep=r.h.sleep, promoted_by="promote-web-1")
    out = c.reconcile(r.outputs).to_outputs()
    assert out["phase"] == "holding" and "promoted by hand" in out["message"] and r.h.weight == 10
    out = r.up("v2", auto_promote=False, promote="v2")
    assert (out["phase"], out["production_image"]) == ("promoted", "odoo-erp:v2") and not r.h.violations


def test_a_fleet_canary_droplet_still_rolls_back_and_replaces_by_itself():
    r = at_v1("v2", "bad")
    r.up("v2")

    def release(tag: str):
        return Controller(r.h.ops(), spec(tag), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep,
                          promoted_by="promote-web-1").reconcile(r.outputs)
    # An instant rollback needs no verdict: the release goes all the way.
    status = release("v1")
    assert (status.phase, status.production_image) == ("promoted", "odoo-erp:v1")
    r.outputs = status.to_outputs()
    r.h.verdicts[10] = ("fail", "5xx 40% above 5%")
    assert release("bad").phase == "rolled_back" and running(r.h) == {"odoo": "odoo-erp:v1"}
    assert not r.h.violations


def test_instant_rollback_to_the_previous_image_skips_the_analysis():
    r = at_v1("v2")
    r.up("v2")
    out = r.up("v1")
    assert (out["phase"], out["production_image"], out["previous_image"]) == ("promoted", "odoo-erp:v1", "odoo-erp:v2")
    assert not any(e.startswith("analyse") for e in r.h.events) and not r.h.violations


def test_percentage_100_promotes_and_0_aborts_a_held_canary():
    r = at_v1("v2", "v3")
    r.up("v2", auto_promote=False)
    out = r.up("v2", canary_percentage=0)
    assert out["phase"] == "aborted" and running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None
    out = r.up("v3", canary_percentage=100)
    assert (out["phase"], out["production_image"]) == ("promoted", "odoo-erp:v3")
    assert not any(e.startswith("analyse") for e in r.h.events) and not r.h.violations


# -- a canary that fails ---------------------------------------------------------------
def changes(events: list) -> list:
    """The events that change the host (not the lock, not the journal)."""
    return [e for e in events if not e.startswith(("lock", "journal:"))]


def test_a_failed_analysis_rolls_back_and_blocks_the_revision():
    r = at_v1("bad")
    r.h.verdicts[10] = ("fail", "5xx 40% above 5%")
    out = r.up("bad")
    assert (out["phase"], out["failed_image"], out["failure_reason"]) == ("rolled_back", "odoo-erp:bad",
                                                                          "5xx 40% above 5%")
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None and "stop:odoo" not in r.h.events
    with pytest.raises(DeployError, match="was rolled back: 5xx 40% above 5%"):
        r.up("bad")
    assert "run:odoo-canary" not in r.h.events
    r.h.verdicts.clear()
    assert r.up("bad", retry=True)["phase"] == "promoted"
    assert not r.h.violations


@pytest.mark.parametrize("behaviour,reason", [("exits", "exited before it became healthy"),
                                              ("errors", "never became healthy")])
def test_a_canary_that_never_becomes_healthy_is_rolled_back(behaviour, reason):
    r = at_v1("v2", v2=behaviour)
    out = r.up("v2")
    assert out["phase"] == "rolled_back" and reason in out["failure_reason"]
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and not r.h.violations


def test_a_canary_docker_refuses_to_run_is_recorded_as_failed():
    r = at_v1("v2")
    r.h.failures["run:odoo-canary"] = __import__("canary.remote.ssh", fromlist=["RemoteError"]).RemoteError(
        ["docker", "run"], 125, "", "invalid mount config for type bind")
    out = r.up("v2")
    assert out["phase"] == "rolled_back" and "docker run of odoo-canary was rejected" in out["failure_reason"]
    assert "invalid mount config" in out["failure_reason"] and running(r.h) == {"odoo": "odoo-erp:v1"}


def test_inconclusive_holds_the_canary():
    r = at_v1("v2")
    r.h.verdicts[10] = (INCONCLUSIVE, "42 of 50 requests")
    out = r.up("v2")
    assert (out["phase"], out["canary_weight"]) == ("inconclusive", 10) and r.h.weight == 10
    assert "42 of 50" in out["message"]


# -- the kept backend is not healthy ---------------------------------------------------------
def test_a_new_production_that_fails_leaves_traffic_on_the_canary_and_the_next_up_restores():
    r = at_v1("v2")
    r.h.failures["run:odoo"] = RuntimeError("docker: Error response from daemon: OCI runtime create failed")
    before_outputs = dict(r.outputs)
    with pytest.raises(Exception, match="OCI runtime"):
        r.up("v2")
    assert r.h.weight == 100 and running(r.h) == {"odoo-canary": "odoo-erp:v2"}
    assert not r.h.violations  # the canary carries every request
    r.outputs = before_outputs  # the failed update saved nothing
    out = r.up("v2")
    assert (out["phase"], out["production_image"]) == ("promoted", "odoo-erp:v2")
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None and not r.h.violations


def test_a_new_production_that_never_gets_healthy_keeps_the_canary_serving():
    r = at_v1("v2")
    r.h.images["odoo-erp:v2"] = "healthy"
    r.up("v2", auto_promote=False)
    r.h.images["odoo-erp:v2"] = "exits"  # the production container started from it dies
    with pytest.raises(DeployError, match="traffic stays on the canary"):
        r.up("v2", auto_promote=False, promote="v2")
    assert r.h.weight == 100 and r.h.containers["odoo-canary"].healthy and not r.h.violations


def test_a_canary_is_not_removed_while_production_is_unhealthy():
    r = at_v1("v2")
    r.h.verdicts[10] = ("fail", "5xx")
    # production breaks during the analysis
    r.h.failures["analyse:10"] = lambda: setattr(r.h.containers["odoo"], "behaviour", "errors")
    with pytest.raises(DeployError, match=r"production \(odoo\) is not healthy .* stay as they are"):
        r.up("v2")
    assert "stop:odoo-canary" not in r.h.events and r.h.weight == 10 and not r.h.violations


def test_production_down_and_no_healthy_canary_changes_nothing():
    r = at_v1("v2")
    r.up("v2", auto_promote=False)
    r.h.containers["odoo"].behaviour = "errors"
    r.h.containers["odoo-canary"].behaviour = "errors"
    with pytest.raises(DeployError, match="neither production nor the canary answers"):
        r.up("v3")
    assert changes(r.h.events) == []


def test_a_healthy_canary_replaces_an_unhealthy_production():
    r = at_v1("v2")
    r.up("v2", auto_promote=False)
    r.h.containers["odoo"].behaviour = "errors"
    out = r.up("v2", auto_promote=False)
    assert (out["phase"], out["production_image"]) == ("stable", "odoo-erp:v2")
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None


# -- a step that fails, a CLI killed mid-way ------------------------------------------------
def test_a_dropped_connection_while_routing_leaves_production_serving_alone():
    r = at_v1("v2")
    r.h.failures["route:10"] = ConnectionFailed("connection reset")
    with pytest.raises(ConnectionFailed):
        r.up("v2")
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None and not r.h.violations


@pytest.mark.parametrize("step", ["analyse:10", "route:100", "stop:odoo", "run:odoo", "unroute",
                                  "stop:odoo-canary", "journal:promoting"])
def test_killed_anywhere_the_next_up_finishes_the_release(step):
    r = at_v1("v2")
    saved = dict(r.outputs)
    r.h.failures[step] = Killed()
    with pytest.raises(Killed):
        r.up("v2")
    assert not r.h.violations
    r.outputs = saved  # Pulumi saved nothing of the killed update
    out = r.up("v2")
    # production replaced already: only the canary is left to clean up
    replaced = step in ("unroute", "stop:odoo-canary")
    assert (out["phase"], out["production_image"]) == ("stable" if replaced else "promoted", "odoo-erp:v2")
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None and not r.h.violations
    if step not in ("analyse:10", "route:100", "journal:promoting"):  # production was touched
        assert out["previous_image"] == "odoo-erp:v1"  # from the host journal


def test_killed_during_a_rollback_the_revision_stays_blocked():
    r = at_v1("bad")
    r.h.verdicts[10] = ("fail", "5xx 40%")
    saved = dict(r.outputs)
    r.h.failures["unroute"] = Killed()
    with pytest.raises(Killed):
        r.up("bad")
    r.outputs = saved
    refreshed = r.refresh("bad")
    assert refreshed["failed_image"] == "odoo-erp:bad"  # the journal's record
    with pytest.raises(DeployError, match="was rolled back"):
        r.up("bad")
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None  # its canary was cleaned up


# -- refresh ---------------------------------------------------------------------------------
def test_refresh_finds_a_held_canary_removed_by_hand():
    r = at_v1("v2")
    r.up("v2", auto_promote=False)
    r.h.containers.pop("odoo-canary")
    r.h.split = None
    out = r.refresh("v2")
    assert (out["phase"], out["canary_image"], out["message"]) == \
        ("aborted", "", "the canary was removed outside Pulumi")


def test_refresh_finds_a_canary_the_stack_did_not_record():
    r = at_v1("v2")
    saved = dict(r.outputs)
    r.h.failures["analyse:10"] = Killed()
    with pytest.raises(Killed):
        r.up("v2")
    r.outputs = saved
    r.h.journal_text = None  # (and no journal to tell)
    out = r.refresh("v1")
    assert (out["phase"], out["canary_image"], out["canary_weight"]) == ("interrupted", "odoo-erp:v2", 10)


def test_refresh_sees_a_stopped_production_and_the_next_up_starts_it():
    r = at_v1()
    r.h.containers["odoo"].running = False
    out = r.refresh("v1")
    assert out["production_running"] is False and out["message"] == "the production container is exited"
    out = r.up("v1")
    assert out["production_running"] is True and running(r.h) == {"odoo": "odoo-erp:v1"}


# -- what the stack does not own ---------------------------------------------------------------
def test_a_container_of_another_stack_is_never_touched():
    r = Run(host("v1"))
    r.h.start("odoo", "odoo-erp:v1", {"canary.stack": "staging"}, 8069)
    with pytest.raises(DeployError, match="managed by stack 'staging'"):
        r.up("v1")
    with pytest.raises(DeployError, match="managed by stack 'staging'"):
        r.destroy("v1")
    assert "odoo" in r.h.containers and changes(r.h.events) == []


def test_a_hand_started_container_is_adopted_only_when_asked():
    r = Run(host("v1", "v2"))
    r.h.start("odoo", "odoo-erp:v1", {}, 8069)
    with pytest.raises(DeployError, match="adopt true"):
        r.up("v2")
    r.h.adopt = True
    out = r.up("v2", adopt=True)
    assert (out["phase"], out["production_image"], out["previous_image"]) == ("promoted", "odoo-erp:v2", "odoo-erp:v1")
    assert not r.h.violations


def test_a_port_held_by_another_process_fails_before_anything_starts():
    r = Run(host("v1"))
    r.h.taken_ports[8069] = 'LISTEN 0 511 0.0.0.0:8069 users:(("python3",pid=7,fd=3))'
    with pytest.raises(DeployError, match="port 8069 on the host is already taken"):
        r.up("v1")
    assert r.h.containers == {}


def test_destroy_removes_what_the_stack_owns_only():
    r = at_v1("v2")
    r.up("v2", auto_promote=False)
    r.destroy("v2")
    assert r.h.containers == {} and r.h.split is None and r.h.journal_text is None
    assert not [v for v in r.h.violations if "does not own" in v]


# -- the journal and the errors ----------------------------------------------------------------
def test_the_journal_is_written_before_each_step_acts():
    r = at_v1("v2")
    r.up("v2")
    entry = json.loads(r.h.journal_text)
    assert (entry["step"], entry["record"]["phase"], entry["record"]["previous_image"]) == (
        "done", "promoted", "odoo-erp:v1")
    assert "series" not in entry["record"]["analysis"]


def test_user_errors_are_canary_errors():
    assert issubclass(DeployError, CanaryError) and issubclass(ConnectionFailed, CanaryError)


def test_a_report_that_cannot_be_drawn_does_not_fail_the_release(monkeypatch, tmp_path):
    from canary.analysis import report

    def broken(*args, **kwargs):
        raise ValueError("a chart library bug")
    monkeypatch.setattr(report, "write", broken)
    r = at_v1("v2")
    c = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir=str(tmp_path), clock=r.h.now, sleep=r.h.sleep)
    assert c.reconcile(r.outputs).phase == "promoted"
    assert any("could not write the analysis report: a chart library bug" in line for line in r.lines)


def test_the_report_renders_from_the_next_wait_not_beside_the_promotions_quick_steps(monkeypatch, tmp_path):
    """The page's rendering would slow the journal write and the nginx change that follow
    an analysis: it starts at nginx's drain (a promotion), and is written before the
    update returns."""
    from canary.analysis import report
    r = at_v1("v2")
    started = []
    monkeypatch.setattr(report, "write", lambda *a, **k: started.append(list(r.h.events)) or "page")
    c = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir=str(tmp_path), clock=r.h.now, sleep=r.h.sleep)
    assert c.reconcile(r.outputs).phase == "promoted"
    assert len(started) == 1
    seen = started[0]  # the host's operations so far: the render starts just before the drain
    assert "route:100" in seen and seen[seen.index("route:100") + 1:] in ([], ["drain"]), seen


def test_a_drained_container_gets_a_short_stop_grace_an_undrained_one_the_full():
    from canary.controller import DRAINED_STOP_GRACE, STOP_GRACE
    r = at_v1("v2", "v3")
    r.up("v2")
    assert r.h.graces == {"odoo": DRAINED_STOP_GRACE, "odoo-canary": DRAINED_STOP_GRACE}
    r.h.drains = False  # requests still in flight when drain_timeout ran out
    r.up("v3")
    assert r.h.graces == {"odoo": STOP_GRACE, "odoo-canary": STOP_GRACE}


def test_a_drained_app_that_does_not_catch_its_stop_signal_gets_no_grace_an_undrained_one_the_full():
    from canary.controller import STOP_GRACE
    r = at_v1("v2", "v3")
    r.h.uncaught = {"odoo", "odoo-canary"}
    r.up("v2")
    assert r.h.graces == {"odoo": 0, "odoo-canary": 0}
    said = [line for line in r.lines if "does not catch its stop signal" in line]
    assert [line.split(":")[0] for line in said] == ["odoo", "odoo-canary"], r.lines
    r.lines.clear()
    r.h.drains = False  # in flight still: it serves them until SIGKILL, SIGTERM or not
    r.up("v3")
    assert r.h.graces == {"odoo": STOP_GRACE, "odoo-canary": STOP_GRACE}
    assert not [line for line in r.lines if "does not catch" in line]


def test_a_health_wait_answers_as_soon_as_the_app_does():
    r = at_v1("v2", v2="slow:7")  # listens after 7 failed health checks
    r.h.clock = 0.0
    r.up("v2")
    waited = r.h.clock  # fake time: POLL_FAST per failed check
    assert 7 * POLL_FAST <= waited < 25  # (the analysis is scripted: no time)
    assert f"odoo-canary is healthy ({7 * POLL_FAST:.1f}s)" in " ".join(r.lines), r.lines


# -- a fleet's droplet ---------------------------------------------------------------------------
def test_a_later_wave_goes_to_the_revision_without_analysis_once_approved():
    r = at_v1("v2")
    c = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep,
                   approved="passed on the canary droplets web-1")
    out = c.reconcile(r.outputs).to_outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "odoo-erp:v2" and not out["analysis"]
    assert running(r.h) == {"odoo": "odoo-erp:v2"}
    assert "odoo: replace (passed on the canary droplets web-1)" in r.lines


def test_a_droplet_rolled_back_with_the_fleet_runs_its_previous_revision_and_blocks_the_failed_one():
    r = at_v1("v2")
    r.up("v2")
    assert running(r.h) == {"odoo": "odoo-erp:v2"}
    c = Controller(r.h.ops(), spec("v1"), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep)
    reverted = c.revert(spec("v2").revision, "odoo-erp:v2", "rolled back with the fleet (web-3: unhealthy)")
    assert running(r.h) == {"odoo": "odoo-erp:v1"}
    assert (reverted.phase, reverted.failed_revision, reverted.failure_reason) == (
        "rolled_back", spec("v2").revision, "rolled back with the fleet (web-3: unhealthy)")
    # The journal says so (the droplet's release still records v2): the next up of v2 is blocked.
    journaled = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="").journaled(r.outputs)
    assert journaled["production_image"] == "odoo-erp:v1" and journaled["phase"] == "rolled_back"
    with pytest.raises(DeployError, match="rolled back with the fleet"):
        Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="", clock=r.h.now,
                   sleep=r.h.sleep).reconcile(journaled)
    assert running(r.h) == {"odoo": "odoo-erp:v1"}


@pytest.mark.parametrize("step", ["route:100", "stop:odoo", "run:odoo", "unroute", "stop:odoo-canary"])
def test_a_fleet_revert_killed_anywhere_is_finished_by_the_retry_to_the_same_revision(step):
    r = at_v1("v2")
    r.up("v2")
    failed = spec("v2").revision

    def revert():
        c = Controller(r.h.ops(), spec("v1"), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep)
        return c.revert(failed, "odoo-erp:v2", "rolled back with the fleet (web-3: unhealthy)")
    r.h.failures[step] = Killed()
    with pytest.raises(Killed):
        revert()
    # What the retry reads (refresh): the journal never names the failed revision as the previous one.
    journaled = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="").journaled(r.outputs)
    assert journaled["previous_revision"] != failed
    reverted = revert()
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None and not r.h.violations
    assert (reverted.phase, reverted.failed_revision) == ("rolled_back", failed)
    assert not any("analysing" in line for line in r.lines)  # straight back, no analysis


# -- a later wave's droplet before its gate opens (stage_resource.py) ----------------------------
def stager(r: Run, tag: str, **over) -> Controller:
    """The Stage's controller: its spec comes without the release's revision key."""
    values = {**BASE, "image_tag": tag, **over}
    return Controller(r.h.ops(), ReleaseSpec.from_settings(load(values.get, "production")), r.lines.append,
                      report_dir="", clock=r.h.now, sleep=r.h.sleep)


def test_a_staged_container_carries_no_traffic_and_the_approved_release_reuses_it():
    r = at_v1("v2")
    staged, message = stager(r, "v2").stage()
    assert staged and "staged beside production" in message, message
    assert running(r.h) == {"odoo": "odoo-erp:v1", "odoo-canary": "odoo-erp:v2"} and r.h.split is None
    # Staged again (a retried update): kept, not restarted.
    r.h.events.clear()
    assert stager(r, "v2").stage()[0] and not any(e.startswith(("run:", "stop:")) for e in r.h.events)
    r.h.events.clear()
    c = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep,
                   approved="passed on the canary droplets web-1")
    out = c.reconcile(r.outputs).to_outputs()
    assert out["phase"] == "promoted" and running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None
    assert "run:odoo-canary" not in r.h.events and "run:odoo" in r.h.events  # one start after the gate
    assert not r.h.violations


def test_a_gate_that_stays_closed_removes_the_staged_container_and_nothing_else():
    r = at_v1("v2")
    assert stager(r, "v2").stage()[0]
    assert "removed the odoo-erp:v2 container" in Controller(r.h.ops(), spec("v2"), r.lines.append,
                                                             report_dir="").unstage()
    assert running(r.h) == {"odoo": "odoo-erp:v1"} and r.h.split is None and not r.h.violations
    # Nothing staged (or something else there): nothing to remove.
    assert Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="").unstage() == ""


@pytest.mark.parametrize("case", ["no key yet", "production runs it", "rolled back here", "unhealthy"])
def test_nothing_is_staged_where_the_release_would_not_reuse_it(case):
    r = at_v1("v2", v2="silent") if case == "unhealthy" else at_v1("v2")
    if case == "no key yet":
        r.h.journal_text = None
    elif case == "production runs it":
        r.up("v2")
    elif case == "rolled back here":
        Controller(r.h.ops(), spec("v1"), r.lines.append, report_dir="", clock=r.h.now,
                   sleep=r.h.sleep).revert(spec("v2").revision, "odoo-erp:v2", "rolled back with the fleet")
    before_ = running(r.h)
    staged, message = stager(r, "v2").stage()
    assert not staged and message.startswith("nothing staged"), message
    assert running(r.h) == before_ and r.h.split is None and not r.h.violations


def test_a_stage_killed_while_the_container_starts_is_taken_up_by_the_release():
    r = at_v1("v2")
    r.h.failures["run:odoo-canary"] = Killed()
    with pytest.raises(Killed):
        stager(r, "v2").stage()
    c = Controller(r.h.ops(), spec("v2"), r.lines.append, report_dir="", clock=r.h.now, sleep=r.h.sleep,
                   approved="passed on the canary droplets web-1")
    assert c.reconcile(r.outputs).to_outputs()["phase"] == "promoted"
    assert running(r.h) == {"odoo": "odoo-erp:v2"} and r.h.split is None and not r.h.violations


# -- the release's migration: backup -> migrate -> canary -> analysis -> promote -------------
def migrating_spec(tag, **over):
    values = {**BASE, "image_tag": tag, "migrate_command": "trytond-admin -d erp -u party",
              **{k: str(v).lower() if isinstance(v, bool) else v for k, v in over.items()}}
    # (database_url is read by the provider; the fake host stands in for the database)
    return ReleaseSpec.from_settings(load(values.get, "production")
                                     if "backup" in over else _with_url(values)).keyed(REVISION_KEY)


def _with_url(values):
    values = {**values, "database_url": "postgresql://erp:pw@172.17.0.1:5432/erp"}
    return load(values.get, "production", frozenset({"database_url"}))


def up(h, outputs, tag, lines=None, **over):
    c = Controller(h.ops(), migrating_spec(tag, **over), (lines if lines is not None else []).append,
                   report_dir="", clock=h.now, sleep=h.sleep)
    return c.reconcile(outputs).to_outputs()


def test_a_release_backs_up_then_migrates_before_its_canary_takes_traffic():
    h = host("v1", "v2")
    h.database = True
    first = up(h, {}, "v1")
    assert h.events.index("backup") < h.events.index("migrate:odoo-erp:v1") < h.events.index("run:odoo")
    assert first["last_backup"].endswith("-v1.dump")
    h.events.clear()
    lines = []
    out = up(h, first, "v2", lines)
    ev = h.events
    assert ev.index("backup") < ev.index("migrate:odoo-erp:v2") < ev.index("run:odoo-canary") < ev.index("run:odoo")
    assert out["phase"] == "promoted" and out["last_backup"].endswith("-v2.dump")
    assert any(line.startswith("migrating: `trytond-admin -d erp -u party`") for line in lines)
    assert len(h.migrations) == 2 and h.violations == []
    # An instant rollback to v1 runs no migration (v1's schema is older: expand/contract).
    h.events.clear()
    up(h, out, "v1")
    assert len(h.migrations) == 2 and "backup" not in h.events


def test_a_failed_migration_fails_the_release_with_production_untouched():
    h = host("v1", "v2", v2="migration-fails")
    h.database = True
    first = up(h, {}, "v1")
    production = h.containers["odoo"].image
    h.events.clear()
    out = up(h, first, "v2")
    assert out["phase"] == "rolled_back" and "the migration" in out["failure_reason"]
    assert "run:odoo-canary" not in h.events and h.containers["odoo"].image == production
    assert set(h.containers) == {"odoo"} and h.split is None and out["last_backup"].endswith("-v2.dump")
    # The same tag again is refused with the reason (no second migration) until retry.
    h.events.clear()
    with pytest.raises(CanaryError, match="the migration"):
        up(h, out, "v2")
    assert "backup" not in h.events and len(h.migrations) == 2


def test_a_rollback_after_the_migration_says_the_schema_stays_migrated():
    h = host("v1", "v2")
    h.database = True
    h.verdicts[10] = ("fail", "real traffic error rate 30% above the 5% threshold")
    first = up(h, {}, "v1")
    out = up(h, first, "v2")
    assert out["phase"] == "rolled_back"
    assert "The database keeps odoo-erp:v2's migration" in out["message"] and out["last_backup"] in out["message"]


def test_a_resumed_canary_is_not_migrated_again():
    h = host("v1", "v2")
    h.database = True
    h.failures["analyse:10"] = Killed()
    first = up(h, {}, "v1")
    with pytest.raises(Killed):
        up(h, first, "v2")
    assert len(h.migrations) == 2
    up(h, first, "v2")  # the canary runs: resumed, analysed, promoted
    assert len(h.migrations) == 2


def test_without_a_backup_the_migration_runs_alone():
    h = host("v1", "v2")
    out = up(h, {}, "v1", backup=False)
    assert "backup" not in h.events and len(h.migrations) == 1 and out["last_backup"] == ""


def test_restoring_a_backup_is_explicit_done_once_and_before_the_rollback():
    h = host("v1", "v2")
    h.database = True
    first = up(h, {}, "v1")
    promoted = up(h, first, "v2")
    name = promoted["last_backup"].rsplit("/", 1)[1]
    h.events.clear()
    back = up(h, promoted, "v1", restore_backup=name)  # restore, then the instant rollback to v1
    # The database as it was is dumped first: the writes made since the backup are kept there.
    assert h.events.index("backup") < h.events.index(f"restore:{name}") < h.events.index("run:odoo-canary")
    assert back["last_backup"].endswith("-before-restore.dump")
    assert back["restored_backup"] == name and back["production_image"] == "odoo-erp:v1"
    h.events.clear()
    up(h, back, "v1", restore_backup=name)  # the same name again: nothing to do
    assert not any(e.startswith("restore:") for e in h.events)
    with pytest.raises(DeployError, match="no backup nope.dump"):
        up(h, back, "v1", restore_backup="nope.dump")


def test_no_restore_while_a_canary_runs():
    h = host("v1", "v2")
    h.database = True
    first = up(h, {}, "v1")
    held = up(h, first, "v2", auto_promote=False)
    name = held["last_backup"].rsplit("/", 1)[1]
    with pytest.raises(DeployError, match="a canary runs beside production"):
        up(h, held, "v2", auto_promote=False, restore_backup=name)
