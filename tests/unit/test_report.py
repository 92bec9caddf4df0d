"""The analysis report: what it charts (pure data preparation) and the files it writes."""

import base64
import hashlib
import json
import os
import re

import pytest
from jinja2 import Environment

from canary import redact
from canary.analysis import report, report_data
from canary.analysis.traffic import Backend
from canary.analysis.verdict import CONTINUE, FAIL, LATENCY_FLOOR, Evidence, judge
from canary.redact import Redactor
from tests import analysis_fixtures as fx


def charts(summary, threshold=5):
    return {c.key: c for c in report_data.page(summary, threshold).charts}


def series(chart, name):
    return next(s for s in chart.series if s.name == name)


def limit(chart, prefix):
    return next(lim for lim in chart.limits if lim.name.startswith(prefix))


def test_the_runner_records_what_the_report_draws():
    s = fx.slow_canary()
    assert s["planned_checks"] == 10 and s["checks"] == len(s["series"]) == 6
    assert s["thresholds"]["latency_factor"] == 1.5 and s["thresholds"]["min_requests"] == 20
    last = s["series"][-1]
    assert {"probes", "probe_failures", "probe_p50", "probe_p95", "stable_probes", "stable_probe_p50"} <= set(last)
    assert last["probes"] == s["probes"] == 30 and last["probe_failures"] == s["probe_failures"] == 1
    assert last["stable_probes"] == 6


def test_real_traffic_charts_show_both_backends_check_by_check_with_the_threshold():
    s = fx.slow_canary()
    c = charts(s, threshold=5)["traffic-errors"]
    assert c.checks == [1, 2, 3, 4, 5, 6] and c.unit == "%" and "%" in c.y_title
    assert series(c, "stable").y == [p["stable_error_rate"] for p in s["series"]]
    assert series(c, "canary").y == [p["canary_error_rate"] for p in s["series"]]
    assert limit(c, "threshold").y == [5] * 6 and limit(c, "threshold").name == "threshold 5 %"
    # The canary had 12 requests after check 1, below min_requests (20): not judged there.
    assert s["series"][0]["canary_requests"] < 20 <= s["series"][1]["canary_requests"]
    assert c.unjudged == 1 and "min_requests (20)" in c.unjudged_why
    assert c.note == ""


def test_latency_in_milliseconds_with_the_verdicts_two_limits():
    s = fx.slow_canary()
    c = charts(s)["traffic-latency"]
    assert c.log and c.unit == "ms" and "ms" in c.y_title
    assert series(c, "canary p95").y == [pytest.approx(p["canary_p95"] * 1000) for p in s["series"]]
    assert series(c, "stable p95").y == [pytest.approx(p["stable_p95"] * 1000) for p in s["series"]]
    assert limit(c, "max_response_time").y == [2000] * 6
    relative = limit(c, "1.5 × stable p95")
    assert relative.relative and relative.y[0] is None  # not judged before min_requests
    assert relative.y[1:] == [pytest.approx(max(50, 1.5 * p["stable_p95"] * 1000)) for p in s["series"][1:]]
    # The decision: the canary's p95 above that limit at the last check only.
    above = [cy > ly for cy, ly in zip(series(c, "canary p95").y[1:], relative.y[1:])]
    assert above == [False, False, False, False, True]


@pytest.mark.parametrize("stable_s", [0.0, 0.01, 0.04, 0.2])
def test_the_relative_latency_limit_drawn_is_where_the_verdict_fails(stable_s):
    drawn = report_data._relative([stable_s * 1000], 1.5, [True])[0] / 1000
    for factor, expected in ((1.01, FAIL), (0.99, CONTINUE)):
        e = Evidence(planned_probes=100)
        e.stable = Backend(requests=50, latencies=[stable_s] * 50)
        e.canary = Backend(requests=50, latencies=[drawn * factor] * 50)
        v = judge(e, fx.THRESHOLDS, final=False)
        assert v.status == expected, (stable_s, factor, v)
    assert drawn >= LATENCY_FLOOR


def test_health_check_charts():
    s = fx.slow_canary()
    c = charts(s)
    errors = c["probe-errors"]
    assert [x.role for x in errors.series] == ["canary"]  # stable is probed for latency only
    assert series(errors, "canary health checks").y == [p["probe_error_rate"] for p in s["series"]]
    assert limit(errors, "threshold").y == [5] * 6
    latency = c["probe-latency"]
    assert series(latency, "canary median").y == [pytest.approx(p["probe_p50"] * 1000) for p in s["series"]]
    assert series(latency, "stable median").y == [pytest.approx(p["stable_probe_p50"] * 1000) for p in s["series"]]
    assert series(latency, "canary p95").secondary
    # Stable is probed once a check: compared once it has 3 probes (check 3).
    assert limit(latency, "1.5 × stable median").y[:2] == [None, None]
    assert limit(latency, "1.5 × stable median").y[2] == pytest.approx(50)  # the floor
    assert limit(latency, "max_response_time").y == [2000] * 6
    assert latency.unjudged == 0  # 5 probes after check 1


def test_the_decision_point_is_the_last_check_with_the_reason():
    s = fx.slow_canary()
    view = report_data.page(s, 5)
    d = view.decision
    assert (d.status, d.check, d.planned, d.early) == ("fail", 6, 10, True)
    assert d.label == "FAIL at check 6" and d.reason == s["reason"] and "1.5x stable" in d.reason
    assert d.seconds == s["series"][-1]["t"]
    assert [r["decision"] for r in view.rows] == [False] * 5 + [True]


def test_the_per_check_table():
    rows = report_data.page(fx.slow_canary(), 5).rows
    assert rows[4]["health"] == "24/25 ok" and rows[4]["health_errors"] == "4.0 %"
    assert rows[0]["canary_requests"] == 12 and rows[0]["t"].endswith(" s")
    assert rows[-1]["canary_p95"].endswith(" ms")
    quiet = report_data.page(fx.no_traffic_pass(), 5).rows
    assert quiet[0]["canary_requests"] == 0 and quiet[0]["canary_errors"] == quiet[0]["canary_p95"] == "—"


def test_one_check_analysis_has_one_point_per_series():
    view = report_data.page(fx.one_check_pass(), 5)
    assert view.decision.label == "PASS at check 1" and not view.decision.early
    for c in view.charts:
        assert c.checks == [1] and c.note == ""
        assert all(len(s.y) == 1 and s.y[0] is not None for s in c.series), c.key


def test_no_real_traffic_is_said_not_drawn_as_zero():
    c = charts(fx.no_traffic_pass())
    for key in ("traffic-errors", "traffic-latency"):
        assert all(v is None for s in c[key].series for v in s.y)
        assert c[key].note == "no real traffic reached the canary or stable"
        assert c[key].unjudged == 4
    assert all(v is not None for v in series(c["probe-latency"], "canary median").y)


def test_a_canary_that_never_started_has_no_charts():
    view = report_data.page(fx.NEVER_STARTED, 5)
    assert view.never_started and view.charts == [] and view.rows == []
    assert view.decision.check is None and view.decision.label == "FAIL"
    assert "exited before it became healthy" in view.decision.reason


def test_an_older_summary_without_thresholds_still_charts():
    s = fx.slow_canary()
    old_keys = {"check", "t", "probe_error_rate", "canary_error_rate", "stable_error_rate", "canary_p95",
                "stable_p95", "canary_requests", "stable_requests"}
    old = {k: v for k, v in s.items() if k not in ("thresholds", "planned_checks")}
    old["series"] = [{k: v for k, v in p.items() if k in old_keys} for p in s["series"]]
    c = charts(old, threshold=3)
    assert limit(c["traffic-errors"], "threshold").y == [3] * 6
    assert c["traffic-latency"].limits == [] and c["traffic-errors"].unjudged == 0
    assert series(c["probe-errors"], "canary health checks").y == [p["probe_error_rate"] for p in s["series"]]
    assert c["probe-latency"].note and report_data.page(old, 3).decision.planned is None


def test_write_puts_the_page_and_plotly_js_side_by_side(tmp_path):
    s = fx.slow_canary()
    path = report.write(str(tmp_path), "production", "odoo:v2", s, outcome="fail", threshold=5)
    assert json.loads(open(path).read())["series"] == s["series"]
    html = open(path[:-len(".json")] + ".html").read()
    js = tmp_path / report.PLOTLY_JS
    assert js.stat().st_size > 1_000_000 and f'<script src="{report.PLOTLY_JS}">' in html
    for key in ("traffic-errors", "traffic-latency", "probe-errors", "probe-latency"):
        assert f'id="{key}"' in html
    assert "FAIL at check 6" in html and s["reason"] in html
    assert len(html) < 100_000
    # Written once: the next report reuses it.
    os.utime(js, (1, 1))
    report.write(str(tmp_path), "production", "odoo:v3", s, outcome="fail", threshold=5)
    assert js.stat().st_mtime == 1


def test_a_report_of_a_canary_that_never_started_says_so(tmp_path):
    path = report.write(str(tmp_path), "production", "odoo:v2", fx.NEVER_STARTED, outcome="fail", threshold=5)
    html = open(path[:-len(".json")] + ".html").read()
    assert "The canary never started" in html and fx.NEVER_STARTED["reason"] in html
    assert "<script" not in html and "plotly-graph-div" not in html
    assert not (tmp_path / report.PLOTLY_JS).exists()


def test_the_report_names_the_database_steps_of_the_run():
    summary = {**fx.slow_canary(), "database": {"migration": "erp-migrate",
                                                 "backup": "/var/lib/canary/odoo/backups/odoo-1-v2.dump"}}
    page = report.render({"stack": "s", "image": "odoo:v2", "outcome": "pass", "at": "now", **summary},
                         report_data.page(summary, 5))
    assert "migrated with <code>erp-migrate</code>" in page and "odoo-1-v2.dump</code>" in page
    plain = report.render({"stack": "s", "image": "odoo:v2", "outcome": "pass", "at": "now", **fx.slow_canary()},
                          report_data.page(fx.slow_canary(), 5))
    assert "Database:" not in plain


# Markup that would run or draw if a page ever printed it as it is.
HOSTILE = ('<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
           '<a href="javascript:alert(1)">click</a> & "quoted" \'single\'')


def hostile_report(tmp_path, summary):
    summary = {**summary, "reason": f"the canary exited: {HOSTILE}"}
    path = report.write(str(tmp_path), "prod<b>", f"odoo:v2{HOSTILE}", summary,
                        outcome=f"fail{HOSTILE}", threshold=5)
    return open(path[:-len(".json")] + ".html").read()


@pytest.mark.parametrize("summary", [fx.slow_canary(), fx.NEVER_STARTED], ids=["charts", "never-started"])
def test_text_from_the_app_and_config_is_escaped_everywhere(tmp_path, summary):
    html = hostile_report(tmp_path, summary)
    assert "<img" not in html and "<a href" not in html and 'document.title="pwned"</script>' not in html
    assert "prod&lt;b&gt;" in html and "<b>prod<b>" not in html
    # Shown as text: in the page (HTML entities) and in the charts' labels (plotly's own
    # entities, inside JSON that escapes < and > again).
    assert "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;" in html
    assert html.count("&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;") >= 2  # the reason, the title
    if summary.get("series"):
        assert "&lt;img src=x onerror=" in html.split('id="traffic-errors"')[1]  # the decision's hover text


def test_the_page_allows_only_its_own_scripts(tmp_path):
    html = hostile_report(tmp_path, fx.slow_canary())
    meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert meta and html.index(meta.group(0)) < html.index("<script")  # before any script
    policy = dict(d.strip().split(" ", 1) for d in meta.group(1).split(";"))
    assert policy["default-src"] == "'none'" and policy["base-uri"] == "'none'"
    sources = policy["script-src"].split()
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
    inline = re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", html, re.DOTALL)
    assert len(inline) == 5  # the four charts' and the page's own
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in inline}
    assert set(sources) == {"'self'"} | hashes


def test_the_policy_never_allows_a_script_smuggled_into_the_page(tmp_path, monkeypatch):
    """Were a value ever printed unescaped, its script is not one the page wrote: the
    policy lists the scripts render() made, not whatever the page ends up holding."""
    monkeypatch.setattr(report, "_env", Environment(loader=report._env.loader, autoescape=False))  # a bug
    html = hostile_report(tmp_path, fx.slow_canary())
    smuggled = 'document.title="pwned"'
    assert f"<script>{smuggled}</script>" in html
    assert report._sha256(smuggled) not in html
    never_started = hostile_report(tmp_path, fx.NEVER_STARTED)
    assert "script-src 'none'" in never_started


def test_the_policy_is_computed_after_secrets_are_masked(tmp_path):
    """A secret inside a chart's script changes the script when it is masked: the hash
    must be of the script as written."""
    redact.install(Redactor(["Real traffic: 5xx"]))  # a chart title, in its script
    try:
        s = fx.slow_canary()
        path = report.write(str(tmp_path), "production", "odoo:v2", s, outcome="fail", threshold=5)
    finally:
        redact.install(Redactor())
    html = open(path[:-len(".json")] + ".html").read()
    assert "Real traffic: 5xx" not in html and "[secret]" in html
    inline = re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", html, re.DOTALL)
    for body in inline:
        assert base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() in html
