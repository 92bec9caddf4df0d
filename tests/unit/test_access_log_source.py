"""The access log source reads a bounded amount of new log a check, line-aligned."""

import json

from canary.analysis.sources import Check
from canary.analysis.sources.access_log import AccessLog
from canary.analysis.verdict import Evidence


class LogHost:
    """Answers the source's two shell commands (`stat`, `tail | head`) from a string."""

    def __init__(self):
        self.log, self.read_bytes = "", 0

    def sh(self, script, *args, check=True):
        if script.startswith("stat"):
            return f"{len(self.log.encode())}\n"
        start, _, count = args
        data = self.log.encode()[int(start) - 1:int(start) - 1 + int(count)]
        self.read_bytes += len(data)
        return data.decode()


def line(port, status="200", uri="/web"):
    return json.dumps({"upstream": f"127.0.0.1:{port}", "status": status, "urt": "0.010", "uri": uri}) + "\n"


def test_reads_whole_lines_and_keeps_a_partial_one_for_the_next_check():
    host, e = LogHost(), Evidence(planned_probes=0)
    host.log = line(8069) * 3  # before the analysis: not counted
    with AccessLog(host, "/log", 8069, 8070) as source:
        whole = line(8070, "500")
        host.log += line(8070) + whole[:10]
        source.collect(e, Check(1, 2, 0, 10))
        host.log += whole[10:]
        source.collect(e, Check(2, 2, 10, 10))
    assert (e.canary.requests, e.canary.errors, e.stable.requests) == (2, 1, 0)
    assert not e.unmeasured


def test_a_flood_is_read_only_up_to_the_bound_and_leaves_the_log_unmeasured():
    host, e = LogHost(), Evidence(planned_probes=0)
    with AccessLog(host, "/log", 8069, 8070, max_bytes=10_000) as source:
        host.log += line(8070, uri="/" + "x" * 500) * 1000  # ~0.5 MB of long URLs
        source.collect(e, Check(1, 2, 0, 10))
        assert host.read_bytes <= 10_000 and 0 < e.canary.requests < 30
        assert "not read in check 1" in e.unmeasured["the access log"]
        host.log += line(8070) * 5  # the next check starts at the first whole line after the skip
        source.collect(e, Check(2, 2, 10, 10))
    assert e.canary.requests < 35 and "the access log" in e.unmeasured  # it stays unmeasured
