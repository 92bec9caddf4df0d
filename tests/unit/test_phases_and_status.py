"""The phase table, the typed status and the release's diff rule (pure)."""

from __future__ import annotations

import json

import pytest

from canary import plan as P
from canary import provider
from canary.phases import TABLE, Outcome, Phase, transition
from canary.status import EXPORTED, OUTPUT_KEYS, ReleaseStatus
from tests.unit.test_controller import spec


# -- phases ----------------------------------------------------------------------------
@pytest.mark.parametrize("phase,action,outcome,new", [
    (Phase.STABLE, P.ANALYSE, Outcome.DONE, Phase.PROMOTED),
    (Phase.STABLE, P.ANALYSE, Outcome.FAILED, Phase.ROLLED_BACK),
    (Phase.HOLDING, P.ANALYSE, Outcome.INCONCLUSIVE, Phase.INCONCLUSIVE),
    (Phase.STABLE, P.ANALYSE, Outcome.HELD, Phase.HOLDING),
    (Phase.ROLLED_BACK, P.NOOP, Outcome.IN_SYNC, Phase.STABLE),
    (Phase.PROMOTED, P.NOOP, Outcome.IN_SYNC, Phase.PROMOTED),
    (Phase.HOLDING, P.NOOP, Outcome.DONE, Phase.HOLDING),
    (Phase.HOLDING, P.ABORT, Outcome.DONE, Phase.ABORTED),
    (Phase.HOLDING, P.ROUTE, Outcome.DONE, Phase.HOLDING),
    (Phase.PROMOTED, P.REPLACE, Outcome.FAILED, Phase.ROLLED_BACK),
    (Phase.INTERRUPTED, P.RESTORE, Outcome.DONE, Phase.STABLE),
    (Phase.HOLDING, "refresh", Outcome.CANARY_GONE, Phase.ABORTED),
    (Phase.STABLE, "refresh", Outcome.CANARY_GONE, Phase.STABLE),
    (Phase.STABLE, "refresh", Outcome.CANARY_FOUND, Phase.INTERRUPTED),
    (Phase.INCONCLUSIVE, "refresh", Outcome.CANARY_FOUND, Phase.INCONCLUSIVE),
])
def test_transitions(phase, action, outcome, new):
    assert transition(phase, action, outcome) is new


def test_every_step_that_records_an_outcome_has_a_rule_in_every_phase():
    # blocked and halt raise instead (they record nothing)
    recorded = {a for _, a, _ in TABLE}
    assert recorded == {P.NOOP, P.DEPLOY, P.RESTORE, P.CLEANUP, P.ABORT, P.ROUTE, P.PROMOTE, P.REPLACE,
                        P.ANALYSE, "refresh"}
    for phase in Phase:
        for _, action, outcome in TABLE:
            assert isinstance(transition(phase, action, outcome), Phase)


def test_a_combination_no_step_produces_is_a_bug():
    with pytest.raises(ValueError, match="no transition for deploy ending failed"):
        transition(Phase.STABLE, P.DEPLOY, Outcome.FAILED)


# -- the status ------------------------------------------------------------------------
def test_outputs_are_never_null_and_round_trip():
    s = ReleaseStatus(phase=Phase.HOLDING, canary_image="odoo-erp:v2", canary_weight=25,
                      analysis={"decision": "pass", "series": [{"check": 1}]})
    out = s.to_outputs()
    assert set(out) == set(OUTPUT_KEYS) and None not in out.values()
    assert (out["phase"], out["failed_image"], out["production_running"]) == ("holding", "", False)
    # the engine hands numbers back as floats
    assert ReleaseStatus.from_outputs({**out, "canary_weight": 25.0, "unknown": 1}) == s
    assert "series" not in s.journal_record()["analysis"]


def test_a_mistyped_field_is_an_error_not_a_dropped_key():
    with pytest.raises(TypeError):
        ReleaseStatus().with_(phsae=Phase.STABLE)


def test_the_release_declares_every_output_and_the_stack_exports_a_subset():
    declared = set(provider.Release.__annotations__)
    assert set(OUTPUT_KEYS) <= declared
    assert set(EXPORTED) <= set(OUTPUT_KEYS)


# -- the diff rule ---------------------------------------------------------------------
def _props(s):
    inputs = s.to_inputs()
    return {"spec": {k: v for k, v in inputs.items() if k not in ("env", "canary_env")},
            "env": inputs["env"], "canary_env": inputs["canary_env"]}


def _recorded(s, **status):
    keyed, _ = provider._with_key(provider._spec_inputs(_props(s)), {})
    k = keyed["revision_key"]
    rev = s.keyed(k).revision
    outs = ReleaseStatus(production_revision=rev, production_image=s.image, production_running=True,
                         **status).to_outputs()
    return {**outs, "spec": provider._public_spec(keyed), "revision_key": k}


def diff(olds, news_spec):
    return provider.ReleaseProvider().diff("odoo", olds, _props(news_spec)).changes


def test_an_unchanged_release_is_no_change():
    s = spec("v1")
    assert diff(_recorded(s, phase=Phase.PROMOTED), s) is False


def test_a_new_tag_or_a_new_weight_is_a_change():
    v1 = spec("v1")
    olds = _recorded(v1, phase=Phase.PROMOTED)
    assert diff(olds, spec("v2")) is True
    assert diff(olds, spec("v1", canary_percentage=25)) is True  # the spec changed


def test_a_blocked_revision_is_a_change_so_update_can_fail_with_the_reason():
    bad = spec("bad")
    v1 = spec("v1")
    olds = _recorded(v1, phase=Phase.ROLLED_BACK)
    olds["failed_revision"] = bad.keyed(olds["revision_key"]).revision
    olds["spec"] = provider._public_spec(provider._with_key(provider._spec_inputs(_props(bad)), olds)[0])
    assert diff(olds, bad) is True


def test_the_promote_step_changes_when_its_release_does_or_a_promotion_is_due():
    from canary.promotion_resource import PromotionProvider
    from pulumi.runtime.rpc import UNKNOWN
    v2 = spec("v2")
    promoted = _recorded(v2, phase=Phase.PROMOTED)
    passed = {**promoted, "phase": "holding", "canary_revision": promoted["production_revision"], "passed": True}

    def changes(release, olds_release, olds=promoted, news=v2):
        olds = json.loads(json.dumps({**olds, "release": olds_release}))  # (lists, as the engine gives them)
        return PromotionProvider().diff("promote-web-1", olds, {**_props(news), "release": release}).changes
    # Promoted already (its release's outputs still say "passed": they were saved before).
    assert changes(passed, passed) is False
    # Nothing passed: the release's status is this step's, so a new one is a change (a
    # rollback), the same one is none (both refreshed from the droplet).
    rolled_back = {**promoted, "phase": "rolled_back", "failed_revision": "odoo-erp:v2#x", "passed": False}
    assert changes(rolled_back, passed) is True
    assert changes({**promoted, "passed": False}, passed) is False
    assert changes(UNKNOWN, passed) is True  # a preview: its release changes first
    # A promotion its release asked for and it has not carried out (a run cut short).
    assert changes(passed, passed, olds={**promoted, "production_revision": "odoo-erp:v1#x"}) is True
    assert changes(passed, passed, news=spec("v2", canary_percentage=25)) is True  # the spec changed


def test_container_name_cannot_change():
    olds = _recorded(spec("v1"), phase=Phase.PROMOTED)
    with pytest.raises(Exception, match="container_name cannot change"):
        diff(olds, spec("v1", container_name="erp"))


def test_a_user_error_is_reported_as_its_message_a_bug_with_its_traceback():
    import sys
    import traceback

    from canary.errors import DeployError

    def formatted(fn):  # as the dynamic provider server reports what it caught
        try:
            fn()
        except Exception:
            return traceback.format_exc()

    def user_error():
        raise DeployError("canary odoo-erp:v2 was rolled back: 5xx 40%")

    def bug():
        raise KeyError("phase")
    try:
        assert formatted(provider._reported(user_error)).strip() == (
            "canary.errors.DeployError: canary odoo-erp:v2 was rolled back: 5xx 40%")
        text = formatted(provider._reported(bug))
        assert text.startswith("Traceback (most recent call last):") and "in bug" in text
    finally:
        if hasattr(sys, "tracebacklimit"):
            del sys.tracebacklimit
