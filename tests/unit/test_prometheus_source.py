"""The Prometheus source against a fake Prometheus (an HTTP server answering like its
/api/v1/query), reached through a fake host's `forward`; its config keys; and an
analysis it fails."""

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from canary.analysis import runner
from canary.analysis.sources import Check, Source
from canary.analysis.sources.prometheus import PrometheusQueries, PromMetric
from canary.analysis.verdict import FAIL, PASS, Evidence, Thresholds
from canary.config import ConfigError
from canary.spec import AnalysisSpec, ReleaseSpec
from tests.unit.test_config_fields import BASE_CONFIG, _load_as_the_program_does


def vector(*values):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"job": "node", "instance": f"10.0.0.{i}:9100"}, "value": [1700000000.5, v]}
        for i, v in enumerate(values)]}}


SCALAR = {"status": "success", "data": {"resultType": "scalar", "result": [1700000000.5, "0.25"]}}
BAD_DATA = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}


class FakePrometheus:
    """Answers each query from `answers` (query -> (HTTP status, JSON or raw bytes)) and
    records what it was asked."""

    def __init__(self):
        self.answers, self.asked, self.timeouts, self.delay = {}, [], [], 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                query = parse_qs(url.query).get("query", [""])[0]
                fake.asked.append((url.path, query, self.headers["Host"]))
                fake.timeouts.append(parse_qs(url.query).get("timeout", [""])[0])
                time.sleep(fake.delay)
                status, body = fake.answers.get(query, (400, BAD_DATA))
                body = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TunnelHost:
    """A host whose tunnels all lead to `port` on this machine."""

    def __init__(self, port):
        self.port, self.forwards = port, []

    @contextmanager
    def forward(self, remote_port, remote_host="127.0.0.1"):
        self.forwards.append((remote_host, remote_port))
        yield self.port


@pytest.fixture
def prom():
    p = FakePrometheus()
    yield p
    p.close()


def measure(port, *metrics, url="http://127.0.0.1:9090", timeout=None):
    """The evidence of one check of the source for `metrics`."""
    host, e = TunnelHost(port), Evidence(planned_probes=0)
    with PrometheusQueries(host, url, metrics, 10, "odoo", 8070, 8069) as source:
        if timeout:
            source.timeout = timeout
        source.collect(e, Check(1, 1, 0, 10))
    return e, host


def test_one_sample_within_its_limits_passes(prom):
    prom.answers['up{job="node"}'] = (200, vector("1"))
    prom.answers["scalar(node_load1)"] = (200, SCALAR)
    e, host = measure(prom.port, PromMetric("up", 'up{job="node"}', min=1),
                      PromMetric("load", "scalar(node_load1)", max=1))
    up, load = e.measurements["prometheus up"], e.measurements["prometheus load"]
    assert (up.value, up.min, up.problem()) == (1.0, 1, None)
    assert (load.value, load.problem()) == (0.25, None)
    assert host.forwards == [("127.0.0.1", 9090)]
    assert [path for path, _, _ in prom.asked] == ["/api/v1/query"] * 2
    # Half the 10 s check for two queries; in seconds as a number (Prometheus refuses "2.5s").
    assert prom.timeouts == ["2.5", "2.5"]


def test_above_max_and_below_min_fail_naming_the_metric(prom):
    prom.answers["errors"] = (200, vector("3"))
    prom.answers["ready"] = (200, vector("0"))
    e, _ = measure(prom.port, PromMetric("errors", "errors", max=2), PromMetric("ready", "ready", min=1))
    assert e.measurements["prometheus errors"].problem() == "prometheus errors 3 above its limit 2"
    assert e.measurements["prometheus ready"].problem() == "prometheus ready 0 below its limit 1"


@pytest.mark.parametrize("answer, note", [
    ((200, vector()), "no series (an empty vector)"),
    ((200, vector("1", "2")), "2 series, not one"),
    ((200, vector("NaN")), "NaN, not a finite number"),
    ((200, vector("+Inf")), "+Inf, not a finite number"),
    ((200, {"status": "success", "data": {"resultType": "matrix", "result": []}}), "a matrix, not a single number"),
    ((200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": None}]}}), "malformed"),
    ((200, b"<html>a proxy's page</html>"), "HTTP 200, not an answer of Prometheus's HTTP API"),
    ((200, ["not", "a", "map"]), "not an answer of Prometheus's HTTP API"),
    ((400, BAD_DATA), 'Prometheus answered bad_data: parse error: unexpected "}"'),
    ((503, b"Service Unavailable"), "HTTP 503, not an answer"),
])
def test_anything_but_one_finite_sample_is_no_number_and_fails_closed(prom, answer, note):
    prom.answers["q"] = answer
    e, _ = measure(prom.port, PromMetric("q", "q", max=5))
    m = e.measurements["prometheus q"]
    assert m.value is None and note in m.note
    assert m.problem().startswith("prometheus q: no number (") and m.problem().endswith("failing closed")


def test_prometheus_down_or_too_slow_is_no_number(prom):
    prom.close()  # nothing listens on its port any more
    e, _ = measure(prom.port, PromMetric("up", "up", min=1))
    assert e.measurements["prometheus up"].note == "Prometheus could not be asked: ConnectionError"
    slow = FakePrometheus()
    try:
        slow.answers["up"], slow.delay = (200, vector("1")), 0.5
        e, _ = measure(slow.port, PromMetric("up", "up", min=1), timeout=0.1)
        assert e.measurements["prometheus up"].note == "Prometheus could not be asked: ReadTimeout"
    finally:
        slow.delay = 0
        slow.close()


def test_placeholders_name_the_release_and_the_url_its_prefix_and_host(prom):
    query = 'sum(rate(http_requests_total{container="$app-canary",port="$canary_port"}[1m])) / $stable_port'
    e, host = measure(prom.port, PromMetric("rate", query, max=1), url="http://10.0.0.7:9091/prom/")
    assert host.forwards == [("10.0.0.7", 9091)]
    assert prom.asked == [("/prom/api/v1/query",
                           'sum(rate(http_requests_total{container="odoo-canary",port="8070"}[1m])) / 8069',
                           "10.0.0.7:9091")]


# -- an analysis with it --------------------------------------------------------------------------
class Healthy(Source):
    """Probes that always pass (the probes pace a check)."""
    name, last = "probes", "200"

    def collect(self, evidence, check):
        for _ in range(2):
            evidence.add_probe(True, 0.01)


def analyse(port, metric):
    now = [0.0]
    a = AnalysisSpec(duration=6, interval=2, probes_per_check=2,
                     thresholds=Thresholds(error_threshold=5, max_response_time=2, latency_factor=2,
                                           min_requests=50, max_error_logs_per_minute=10))
    source = PrometheusQueries(TunnelHost(port), "http://127.0.0.1:9090", (metric,), a.interval, "odoo", 8070, 8069)
    lines = []
    result = runner.analyse([Healthy(), source], a, "odoo:v2", 10, lines.append, clock=lambda: now[0],
                            sleep=lambda s: now.__setitem__(0, now[0] + s))
    return result, lines


def test_an_analysis_fails_a_canary_on_its_metric_and_passes_one_within_it(prom):
    prom.answers['up{job="node"}'] = (200, vector("1"))
    result, lines = analyse(prom.port, PromMetric("up", 'up{job="node"}', max=0.5))
    assert result.verdict.status == FAIL and len(result.series) == 1
    assert result.verdict.reason == "prometheus up 1 above its limit 0.5"
    assert "| prometheus up 1 => FAIL" in lines[-1]
    result, lines = analyse(prom.port, PromMetric("up", 'up{job="node"}', min=1))
    assert result.verdict.status == PASS and len(result.series) == 3
    result, _ = analyse(prom.port, PromMetric("up", 'up{job="nothing"}', min=1))  # answered bad_data
    assert result.verdict.status == FAIL and "prometheus up: no number (Prometheus answered" in result.verdict.reason


# -- its config ----------------------------------------------------------------------------------
def load(metrics, **more):
    return _load_as_the_program_does({**BASE_CONFIG, "prometheus_metrics": json.dumps(metrics), **more})


def test_metrics_are_read_into_the_spec_and_back():
    s = load([{"name": "up", "query": 'up{job="$app"}', "min": 1},
              {"name": "load", "query": "node_load1", "max": "4", "min": 0}],
             prometheus_url="http://10.0.0.7:9090")
    assert s.prometheus_metrics == (PromMetric("up", 'up{job="$app"}', min=1.0),
                                    PromMetric("load", "node_load1", 4.0, 0.0))
    spec = ReleaseSpec.from_settings(s)
    assert spec.analysis.prometheus_url == "http://10.0.0.7:9090"
    assert ReleaseSpec.from_inputs(spec.to_inputs()) == spec  # through the engine and back
    plain = ReleaseSpec.from_settings(_load_as_the_program_does(BASE_CONFIG))
    assert (plain.analysis.prometheus_url, plain.analysis.prometheus_metrics) == (None, ())
    # A release recorded before the keys existed reads as one without metrics.
    old = plain.to_inputs()
    del old["analysis"]["prometheus_url"], old["analysis"]["prometheus_metrics"]
    assert ReleaseSpec.from_inputs(old) == plain


@pytest.mark.parametrize("metrics, problem", [
    ({"name": "up"}, "canary:prometheus_metrics = \"{'name': 'up'}\" is not allowed: a list of up to 20"),
    (["up"], "canary:prometheus_metrics[0] must be a map with name, query, max, min"),
    ([{"name": "up", "query": "up"}], "canary:prometheus_metrics[0] has no limit: set max, min or both"),
    ([{"name": "up", "query": "up", "max": 1, "limit": 2}], "canary:prometheus_metrics[0] has unknown keys ['limit']"),
    ([{"name": "u p", "query": "up", "max": 1}], "canary:prometheus_metrics[0].name = 'u p' is not allowed"),
    ([{"name": "up", "query": "up", "max": 1}, {"name": "up", "query": "x", "max": 1}],
     "canary:prometheus_metrics[1].name = 'up' is not allowed: another metric has that name"),
    ([{"name": "up", "query": " ", "max": 1}], "canary:prometheus_metrics[0].query is not allowed: a PromQL query"),
    ([{"name": "up", "query": 'up{job="$job"}', "max": 1}],
     "canary:prometheus_metrics[0].query names $job: not allowed: a PromQL query that answers one number, at "
     "most 2000 characters; it may name the release with $app, $canary_port, $stable_port"),
    ([{"name": "up", "query": "up", "max": "lots"}], "canary:prometheus_metrics[0].max = 'lots' is not allowed"),
    ([{"name": "up", "query": "up", "max": 1, "min": 2}], "canary:prometheus_metrics[0].min = 2 is not allowed: "
                                                          "above its max 1"),
])
def test_bad_metrics_are_refused_naming_the_entry_and_what_is_allowed(metrics, problem):
    with pytest.raises(ConfigError) as err:
        load(metrics)
    assert problem in str(err.value)


@pytest.mark.parametrize("url", ["https://10.0.0.7:9090", "http://10.0.0.7:0", "http://10.0.0.7:99999",
                                 "10.0.0.7:9090", "http://10.0.0.7:9090/a b"])
def test_a_bad_prometheus_url_is_refused(url):
    with pytest.raises(ConfigError) as err:
        load([{"name": "up", "query": "up", "min": 1}], prometheus_url=url)
    assert "canary:prometheus_url = " in str(err.value) and "plain http: the SSH tunnel carries it" in str(err.value)
