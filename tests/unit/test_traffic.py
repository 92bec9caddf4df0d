"""The access log as the analysis reads it: forced requests are not real traffic."""

import json

from canary.analysis import traffic


def line(upstream, status, urt, forced=None, final=None, rt=0.1):
    rec = {"time": 1.0, "upstream": upstream, "status": status, "final": final or int(status.split(",")[-1]),
           "rt": rt, "urt": urt, "method": "GET", "uri": "/"}
    if forced is not None:
        rec["forced"] = forced
    return json.dumps(rec)


def test_forced_requests_are_left_out_of_every_backend():
    lines = "\n".join([
        line("127.0.0.1:8070", "200", "0.010"),
        line("127.0.0.1:8069", "200", "0.020", forced=""),
        line("127.0.0.1:8070", "500", "0.900", forced="canary", rt=0.9),
        line("127.0.0.1:8070", "502", "3.000", forced="canary", final=502, rt=3.0),
        line("127.0.0.1:8069", "200", "0.030", forced="stable"),
        line("127.0.0.1:8070, 127.0.0.1:8069", "502, 200", "0.001, 0.004", forced="canary", final=200),
    ])
    stats = traffic.parse(lines, 8069, 8070)
    assert stats["canary"].requests == 1 and stats["canary"].errors == 0
    assert stats["canary"].latencies == [0.010]
    assert stats["stable"].requests == 1 and stats["stable"].latencies == [0.020]
    assert stats["forced"].requests == 4 and stats["forced"].errors == 2  # final statuses
    assert stats["forced"].latencies == [0.9, 3.0, 0.1, 0.1]


def test_lines_without_the_field_and_junk_count_as_before():
    lines = "\n".join([
        line("127.0.0.1:8070", "503", "0.010"),  # a log written before the field existed
        line("127.0.0.1:8070", "200", "0.010", forced="-"),
        line("127.0.0.1:8070", "200", "0.010", forced="1"),  # only nginx's own values mean forced
        "not json", "[1, 2]", '"text"', "",
    ])
    stats = traffic.parse(lines, 8069, 8070)
    assert stats["canary"].requests == 3 and stats["canary"].errors == 1
    assert stats["forced"].requests == 0


def test_a_retry_still_counts_on_both_backends_when_not_forced():
    stats = traffic.parse(line("127.0.0.1:8070, 127.0.0.1:8069", "502, 200", "0.001, 0.004", final=200),
                          8069, 8070)
    assert stats["canary"].errors == 1 and stats["stable"].requests == 1
