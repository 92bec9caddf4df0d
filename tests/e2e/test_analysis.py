"""Analysis beyond the guide: latency, no traffic, progressive steps in one run, reports,
and routing for testers (issue: accurate split and real-traffic analysis)."""

import json

import pytest
import requests
from pulumi import automation as auto

from canary.analysis import report

from .harness import SITE_URL, Load, containers, served_versions


def test_slow_canary_is_rolled_back_on_latency(deployment):
    d = deployment
    d.up()
    d.set(image_tag="slow")
    with Load(rate=60), pytest.raises(auto.CommandError) as failed:
        d.up()
    assert "latency" in str(failed.value) and "2x stable's" in str(failed.value), str(failed.value)
    assert containers() == {"odoo": "canary-demo:v1"}


def test_no_traffic_and_too_few_probes_is_inconclusive_and_holds(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2", monitoring_duration="2s", check_interval="2s", probes_per_check="2")
    d.up()
    out = d.outputs()
    assert out["phase"] == "inconclusive", out["message"]
    assert "too little evidence" in out["message"]
    assert containers() == {"odoo": "canary-demo:v1", "odoo-canary": "canary-demo:v2"}
    # More evidence next time: the same canary is analysed again, then promoted.
    d.set(monitoring_duration="6s", check_interval="2s", probes_per_check="4")
    d.up()
    assert d.outputs()["phase"] == "promoted"


def test_progressive_steps_in_one_up_with_a_report(deployment, tmp_path):
    d = deployment
    d.up()
    d.stack.set_config("canary:canary_steps", auto.ConfigValue("[10, 50]"))
    d.set(image_tag="v2")
    with Load() as load:
        d.up()
    out = d.outputs()
    assert out["phase"] == "promoted" and out["analysis"]["weight"] == 50
    routed = [line for line in d.log if "routing" in line and "% of new clients" in line]
    assert any("10%" in line for line in routed) and any("50%" in line for line in routed)
    assert load.failures == 0, load.statuses
    reports = sorted((d.workdir / "reports").glob("*.json"))
    assert len(reports) == 2, "one report per step"
    last = json.loads(reports[-1].read_text())
    assert last["weight"] == 50 and last["series"]
    html = reports[-1].with_suffix(".html").read_text()
    assert 'id="traffic-errors"' in html and "canary" in html
    assert (d.workdir / "reports" / report.PLOTLY_JS).is_file(), "the charts' JS beside the reports"


def test_testers_can_force_the_canary_and_clients_stay_pinned(deployment):
    d = deployment
    d.up()
    d.set(image_tag="v2", auto_promote="false", canary_percentage="50")
    token = "e2e-testers-token-0123456789"
    d.set_secret("force_token", token)
    d.up()
    assert served_versions(20, headers={"X-Canary": "always", "X-Canary-Token": token}) == {"canary-demo v2": 20}
    assert served_versions(20, cookies={"canary_odoo": f"force.{token}"}) == {"canary-demo v2": 20}
    assert served_versions(20, headers={"X-Canary": "never", "X-Canary-Token": token}) == {"canary-demo v1": 20}
    # A client keeps the backend it was given.
    with requests.Session() as s:
        seen = {s.get(SITE_URL + "/").text.split(":")[0] for _ in range(20)}
    assert len(seen) == 1
