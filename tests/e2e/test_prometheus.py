"""Prometheus as an evidence source through the real CLI: the test host's Prometheus
(testhost.sh: 127.0.0.1:9090, job `node` = node-exporter) asked through the SSH tunnel."""

import json

import pytest
from pulumi import automation as auto

from .harness import containers

UP = 'up{job="node"}'  # 1 while node-exporter answers Prometheus's scrapes


def release_v2_with(d, **metric):
    """v1 in production, then v2 analysed with one Prometheus metric on `UP`."""
    d.up()
    d.stack.set_config("canary:prometheus_metrics",
                       auto.ConfigValue(json.dumps([{"name": "up", "query": UP, **metric}])))
    d.set(image_tag="v2")


def test_a_metric_within_its_limit_is_promoted(deployment):
    d = deployment
    d.up()
    # As a user sets a list of maps (--path); min arrives as a string.
    d.cli("config", "set", "--path", "canary:prometheus_metrics[0].name", "up")
    d.cli("config", "set", "--path", "canary:prometheus_metrics[0].query", UP)
    d.cli("config", "set", "--path", "canary:prometheus_metrics[0].min", "1")
    d.set(image_tag="v2", check_interval="3s")  # the query's timeout: 1.5 (s), not a whole number
    d.up()
    out = d.outputs()
    assert out["phase"] == "promoted", out["message"]
    m = next(m for m in out["analysis"]["measurements"] if m["name"] == "prometheus up")
    assert (m["value"], m["min"]) == (1, 1), m
    assert any("| prometheus up 1" in line for line in d.log)
    assert containers() == {"odoo": "canary-demo:v2"}
    d.preview(expect_no_changes=True)  # the metrics came back from the engine as they went


def test_a_metric_beyond_its_limit_rolls_the_canary_back_naming_it(deployment):
    d = deployment
    release_v2_with(d, max=0.5)
    with pytest.raises(auto.CommandError) as failed:
        d.up()
    assert "prometheus up 1 above its limit 0.5" in str(failed.value), str(failed.value)
    out = d.outputs()
    assert out["phase"] == "rolled_back" and out["failed_image"] == "canary-demo:v2"
    assert containers() == {"odoo": "canary-demo:v1"}


def test_an_unreachable_prometheus_fails_closed(deployment):
    d = deployment
    release_v2_with(d, min=1)
    d.set(prometheus_url="http://127.0.0.1:9")  # nothing listens there on the droplet
    with pytest.raises(auto.CommandError) as failed:
        d.up()
    message = str(failed.value)
    assert "prometheus up: no number (Prometheus could not be asked" in message and "failing closed" in message, \
        message
    assert d.outputs()["phase"] == "rolled_back"
    assert containers() == {"odoo": "canary-demo:v1"}
