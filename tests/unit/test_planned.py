"""The planned action in words, from records the controller really writes (fake host)."""

from __future__ import annotations

from canary.planned import describe
from canary.status import ReleaseStatus
from tests.unit.test_controller import at_v1, spec


def says(run, tag, **over) -> str:
    return describe(spec(tag, **over), ReleaseStatus.from_outputs(run.outputs))


def test_first_deploy_and_no_change():
    assert describe(spec("v1"), None) == "first deploy: odoo-erp:v1 straight to production (nothing runs there yet)"
    r = at_v1()
    assert says(r, "v1") == "no change: production runs odoo-erp:v1"


def test_a_new_tag_is_a_canary_with_its_weights_and_analysis_time():
    r = at_v1("v2")
    assert says(r, "v2") == ("canary: odoo-erp:v1 -> odoo-erp:v2, 10% of new clients for 20s of analysis, "
                             "then promote it; roll back on failure")
    assert says(r, "v2", canary_steps=[10, 50], monitoring_duration="15", auto_promote=False) == (
        "canary: odoo-erp:v1 -> odoo-erp:v2, 10%, 50% of new clients for 15m of analysis per step, "
        "then hold it for promotion by hand; roll back on failure")


def test_instant_rollback_and_promotion_without_analysis():
    r = at_v1("v2", "v3")
    r.up("v2")
    assert says(r, "v1") == ("instant rollback: odoo-erp:v2 -> odoo-erp:v1, no analysis "
                             "(odoo-erp:v1 ran in production before)")
    assert says(r, "v3", canary_percentage=100) == ("promote without analysis (canary_percentage 100): "
                                                    "odoo-erp:v2 -> odoo-erp:v3")


def test_a_held_canary_re_weighted_promoted_or_aborted():
    r = at_v1("v2")
    r.up("v2", auto_promote=False, canary_percentage=25)
    assert says(r, "v2", auto_promote=False, canary_percentage=10) == (
        "re-weight the held canary odoo-erp:v2: 25% -> 10% of new clients (it passed at 25%), no new analysis")
    assert says(r, "v2", auto_promote=False, canary_percentage=50).startswith(
        "analyse the running canary odoo-erp:v2 at 50% of new clients for 20s")
    assert says(r, "v2", auto_promote=False, canary_percentage=25, promote="v2") == (
        "promote the held canary: odoo-erp:v1 -> odoo-erp:v2 (it holds 25%), no new analysis")
    assert says(r, "v2", canary_percentage=0) == (
        "abort: remove the canary odoo-erp:v2; production odoo-erp:v1 keeps all traffic")
    assert says(r, "v2", auto_promote=False, canary_percentage=25) == (
        "no change: the canary odoo-erp:v2 holds 25% of new clients")


def test_a_rolled_back_tag_is_refused_with_its_reason():
    r = at_v1("bad")
    r.h.verdicts[10] = ("fail", "5xx 40% above 5%")
    r.up("bad")
    assert says(r, "bad") == ("refused, nothing changes: odoo-erp:bad was rolled back (5xx 40% above 5%); "
                              "change image_tag, or set retry true to analyse it again")
    assert says(r, "bad", retry=True).startswith("canary: odoo-erp:v1 -> odoo-erp:bad")
