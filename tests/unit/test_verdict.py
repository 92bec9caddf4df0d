"""The canary verdict (pure): fail fast when certain, pass only at the end."""

from canary.analysis.traffic import Backend, parse
from canary.analysis.verdict import (CONTINUE, FAIL, HOST_METRIC, INCONCLUSIVE, PASS, Evidence, Measurement,
                                     Thresholds, judge)

TH = Thresholds(error_threshold=5, max_response_time=2, latency_factor=2, min_requests=50,
                max_error_logs_per_minute=10)


def evidence(ok, failed, planned=300, metric="unset", metric_max=None, **kw):
    e = Evidence(planned_probes=planned, **kw)
    if metric != "unset":  # the host metric command's number, as its source records it
        e.measure(Measurement(HOST_METRIC, metric, max=metric_max))
    for _ in range(ok):
        e.add_probe(True, 0.01)
    for _ in range(failed):
        e.add_probe(False, 0.01)
    e.add_probe(True, 0.01)  # breaks any run of failures
    return e


def test_healthy_canary_passes_only_at_the_end():
    e = evidence(290, 5)
    assert judge(e, TH, final=False).status == CONTINUE
    v = judge(e, TH, final=True)
    assert v.status == PASS and "health checks alone" in v.reason


def test_three_consecutive_failures_fail_fast():
    e = Evidence(planned_probes=300)
    for _ in range(3):
        e.add_probe(False, 5.0)
    assert judge(e, TH, final=False).status == FAIL


def test_failure_certain_before_the_end():
    e = evidence(10, 16)  # 16 > 5% of 300 planned
    v = judge(e, TH, final=False)
    assert v.status == FAIL and "planned" in v.reason


def test_final_rate_above_threshold_fails_with_rate_checks_and_threshold():
    e = evidence(20, 2, planned=23)
    v = judge(e, TH, final=True)
    assert v.status == FAIL and "threshold" in v.reason and "/23" in v.reason


def test_too_little_evidence_is_inconclusive():
    e = Evidence(planned_probes=2)
    e.add_probe(True, 0.01)
    assert judge(e, TH, final=True).status == INCONCLUSIVE


def test_real_traffic_errors_fail_the_canary():
    e = evidence(100, 0)
    e.canary = Backend(requests=200, errors=60, latencies=[0.01] * 200)
    v = judge(e, TH, final=False)
    assert v.status == FAIL and "real traffic" in v.reason


def test_slow_canary_fails_on_latency_against_stable():
    e = evidence(100, 0)
    e.canary = Backend(requests=100, latencies=[0.6] * 100)
    e.stable = Backend(requests=900, latencies=[0.01] * 900)
    v = judge(e, TH, final=False)
    assert v.status == FAIL and "p95" in v.reason


def test_error_logs_and_metric():
    e = evidence(50, 0, minutes=2.0, error_logs=30)
    assert "ERROR log lines" in judge(e, TH, final=False).reason
    e = evidence(50, 0, metric=93.0, metric_max=80)
    assert "metric" in judge(e, TH, final=False).reason


def test_access_log_attributes_retries_to_each_backend():
    lines = "\n".join([
        '{"upstream":"127.0.0.1:8070","status":"200","urt":"0.010"}',
        '{"upstream":"127.0.0.1:8070, 127.0.0.1:8069","status":"502, 200","urt":"0.000, 0.020"}',
        '{"upstream":"127.0.0.1:8069","status":"500","urt":"0.5"}',
        'not json',
    ])
    stats = parse(lines, 8069, 8070)
    assert (stats["canary"].requests, stats["canary"].errors) == (2, 1)
    assert (stats["stable"].requests, stats["stable"].errors) == (2, 1)


def test_slow_health_checks_fail_against_stables_baseline():
    e = Evidence(planned_probes=300)
    for _ in range(10):
        e.add_probe(True, 0.6)
        e.stable_probe_latencies.append(0.002)
    v = judge(e, TH, final=False)
    assert v.status == FAIL and "health check median latency" in v.reason


def test_one_slow_probe_is_no_slow_canary():
    """Seen on the test host: 15 canary probes at ~9 ms but one at 90 ms (p95 61 ms) against
    3 stable probes at 9 ms rolled a healthy canary back on the p95 ratio."""
    e = Evidence(planned_probes=15)
    for i in range(15):
        e.add_probe(True, 0.090 if i == 0 else 0.009)
    e.stable_probe_latencies.extend([0.009, 0.008, 0.010])
    assert judge(e, TH, final=True).status == PASS


def test_metric_that_is_no_number_fails_closed():
    assert judge(evidence(290, 0, metric=42.0, metric_max=80), TH, final=True).status == PASS
    for bad in (None, float("nan"), float("inf"), float("-inf")):
        v = judge(evidence(290, 0, metric=bad, metric_max=80), TH, final=False)
        assert v.status == FAIL and "no number" in v.reason, bad
    # Without a metric configured, no metric is fine; without a limit, it is only shown.
    assert judge(evidence(290, 0), TH, final=True).status == PASS
    assert judge(evidence(290, 0, metric=None), TH, final=True).status == PASS


class _MetricHost:
    """Answers the metric command like the host would (status, stdout)."""

    def __init__(self, status, out):
        self.status, self.out, self.argv = status, out, None

    def run(self, argv, check=True, stdin=None, timeout=300):
        self.argv, self.stdin, self.timeout = argv, stdin, timeout
        return self.status, self.out, ""


def test_metric_command_runs_under_a_timeout_and_only_finite_numbers_count():
    from canary.analysis.sources.metric_command import metric_timeout, run_metric as _metric
    host = _MetricHost(0, "connections\n42.5\n")
    assert _metric(host, "psql -c 'x'", metric_timeout(30)) == 42.5
    assert host.argv == ["timeout", "-k", "5", "30", "sh", "-s"] and host.stdin == "psql -c 'x'\n"
    assert host.timeout > 30
    assert metric_timeout(2) == 5 and metric_timeout(600) == 30
    for status, out in ((0, "nan"), (0, "inf"), (0, "-Infinity"), (0, "lots"), (0, ""), (124, ""),
                        (1, "12"), (0, "1e999")):
        assert _metric(_MetricHost(status, out), "x", 5) is None, (status, out)


def _traffic(e, canary, stable, canary_lines, stable_lines):
    e.canary = Backend(requests=canary, latencies=[0.01] * canary)
    e.stable = Backend(requests=stable, latencies=[0.01] * stable)
    e.error_logs, e.stable_error_logs, e.minutes = canary_lines, stable_lines, 2.0
    return e


def test_error_lines_are_judged_per_request_against_stables():
    # A busy ERP whose routine ERROR lines stable logs too: no rollback, however many a minute.
    busy = _traffic(evidence(100, 0), canary=400, stable=3600, canary_lines=80, stable_lines=720)
    assert judge(busy, TH, final=True).status == PASS
    # A canary whose RPCs fail with HTTP 200: a line for 1 in 4 requests, stable none.
    failing = _traffic(evidence(100, 0), canary=200, stable=1800, canary_lines=50, stable_lines=0)
    v = judge(failing, TH, final=False)
    assert v.status == FAIL and "ERROR log lines per 100 requests" in v.reason and "stable's 0.0" in v.reason
    # Within the threshold above stable's (5 points): judged only at the end, and passed.
    near = _traffic(evidence(100, 0), canary=200, stable=1800, canary_lines=12, stable_lines=90)
    assert judge(near, TH, final=False).status == CONTINUE
    assert judge(near, TH, final=True).status == PASS


def test_quiet_traffic_falls_back_to_the_guides_limit_a_minute():
    quiet = _traffic(evidence(50, 0), canary=10, stable=90, canary_lines=30, stable_lines=0)
    assert "ERROR log lines a minute" in judge(quiet, TH, final=False).reason


def test_a_source_that_could_not_measure_makes_a_pass_inconclusive():
    e = evidence(290, 0)
    e.unmeasured["the ERROR log lines"] = "`docker logs odoo-canary` failed (exit 1): Cannot connect"
    v = judge(e, TH, final=True)
    assert v.status == INCONCLUSIVE and "could not be measured" in v.reason and "Cannot connect" in v.reason
    # ... but never hides a failure.
    e.add_probe(False, 0.01), e.add_probe(False, 0.01), e.add_probe(False, 0.01)
    assert judge(e, TH, final=False).status == FAIL


def test_measurements_outside_their_limits_fail():
    e = evidence(290, 0)
    e.measure(Measurement("database connections %", 85.0, max=80))
    assert judge(e, TH, final=False).reason == "database connections % 85 above its limit 80"
    e.measure(Measurement("database connections %", 12.0, max=80))
    e.measure(Measurement("orders per minute", 3.0, min=10))
    assert "below its limit 10" in judge(e, TH, final=False).reason


def test_before_enough_traffic_only_lines_beyond_stables_rate_count_against_the_limit():
    # Stable logs 1 line in 5 requests; the canary, 12 requests in, logs what that predicts.
    early = _traffic(evidence(20, 0), canary=12, stable=110, canary_lines=3, stable_lines=22)
    early.minutes = 0.1
    assert judge(early, TH, final=False).status == CONTINUE
    # The same canary with 12 lines beyond it: failed on the guide's limit.
    early.error_logs = 15
    v = judge(early, TH, final=False)
    assert v.status == FAIL and "beyond the 2 stable's rate predicts" in v.reason
