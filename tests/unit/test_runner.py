"""The analysis loop on fake evidence sources and a fake clock: pacing, order, early
stop, progress lines and what a source that cannot measure does to the verdict."""

from canary.analysis import runner
from canary.analysis.sources import Source
from canary.analysis.verdict import FAIL, INCONCLUSIVE, PASS, Measurement, Thresholds
from canary.spec import AnalysisSpec

TH = Thresholds(error_threshold=5, max_response_time=2, latency_factor=2, min_requests=50,
                max_error_logs_per_minute=10)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


class Probes(Source):
    """Healthy (or failing from check `fail_from` on) probes, paced like the real ones."""
    name = "probes"

    def __init__(self, per_check, fail_from=None):
        self.per_check, self.fail_from, self.events = per_check, fail_from, []

    def __enter__(self):
        self.events.append("open")
        return self

    def __exit__(self, *exc):
        self.events.append("close")

    def collect(self, evidence, check):
        for j in range(self.per_check):
            check.wait_until(check.start + j * check.interval / self.per_check)
            ok = self.fail_from is None or check.index < self.fail_from
            evidence.add_probe(ok, 0.01)
            evidence.last_probe = "200" if ok else "500"
            self.events.append((check.index, j, round(check.clock(), 2)))


class Logs(Source):
    name = "the ERROR log lines"

    def __init__(self, fail_at=()):
        self.fail_at, self.seen = fail_at, []

    def collect(self, evidence, check):
        self.seen.append(check.index)
        if check.index in self.fail_at:
            evidence.unmeasured[self.name] = "docker logs failed"
        else:
            evidence.unmeasured.pop(self.name, None)


def spec(duration=30, interval=10, per_check=2):
    return AnalysisSpec(duration=duration, interval=interval, probes_per_check=per_check, thresholds=TH)


def test_checks_are_paced_and_every_source_collects_after_the_probes():
    clock, lines = Clock(), []
    probes, logs = Probes(2), Logs()
    r = runner.analyse([probes, logs], spec(), "app:v2", 10, lines.append, clock, clock.sleep)
    assert r.verdict.status == PASS and len(r.series) == 3 and logs.seen == [1, 2, 3]
    assert probes.events[0] == "open" and probes.events[-1] == "close"
    assert [e[2] for e in probes.events[1:-1]] == [100, 105, 110, 115, 120, 125]
    assert lines[0].startswith("analysing app:v2 at 10% for 30s: 3 checks every 10s")
    assert lines[1].startswith("check 1/3: health 200, 2/2 ok") and "PASS" in lines[-1]


def test_a_failure_ends_the_analysis_early_and_closes_the_sources():
    clock, lines = Clock(), []
    probes = Probes(3, fail_from=2)
    r = runner.analyse([probes], spec(duration=100), "app:v2", 10, lines.append, clock, clock.sleep)
    assert r.verdict.status == FAIL and len(r.series) == 2 and probes.events[-1] == "close"
    assert "FAIL: health check failed 3 times in a row" in lines[-1]


def test_unmeasured_at_the_end_holds_but_a_recovered_source_passes():
    clock = Clock()
    r = runner.analyse([Probes(2), Logs(fail_at={3})], spec(), "v", 10, lambda m: None, clock, clock.sleep)
    assert r.verdict.status == INCONCLUSIVE and "docker logs failed" in r.verdict.reason
    clock = Clock()
    r = runner.analyse([Probes(2), Logs(fail_at={1})], spec(), "v", 10, lambda m: None, clock, clock.sleep)
    assert r.verdict.status == PASS


def test_measurements_show_in_progress_and_summary():
    class Connections(Source):
        name = "database connections %"

        def collect(self, evidence, check):
            evidence.measure(Measurement(self.name, 40.0 + 30 * check.index, max=80))

    clock, lines = Clock(), []
    r = runner.analyse([Probes(2), Connections()], spec(), "v", 10, lines.append, clock, clock.sleep)
    assert r.verdict.status == FAIL and r.verdict.reason == "database connections % 100 above its limit 80"
    assert "| database connections % 70" in lines[1]
    assert r.summary()["measurements"] == [{"name": "database connections %", "value": 100.0, "max": 80,
                                            "min": None}]
