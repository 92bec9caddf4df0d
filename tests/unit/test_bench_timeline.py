"""The overhead benchmark's breakdown (bench/timeline.py): every instant of a traced
`pulumi up` counted once, in the part that was doing the work."""

import pytest

from bench import timeline as T


def span(what, start, end, detail="", proc="provider", **extra):
    return {"pid": 1, "proc": proc, "thread": "t", "what": what, "detail": detail,
            "start": start, "end": end, **extra}


def test_innermost_step_wins_and_remote_commands_count_outside_steps():
    spans = T._update_spans([
        span("release update", 0, 10), span("observe", 1, 3),
        span("ssh command", 1, 2, "docker inspect odoo"), span("ssh command", 4, 5, "mkdir"),
        span("lock take", 6, 8), span("ssh connect", 6, 7),
    ], ready={})
    parts = T.attribute(0, 10, spans)
    assert parts[T.STEPS["observe"]] == 2
    assert parts[T.LEAF["ssh command"]] == 1
    assert parts[T.STEPS["ssh connect"]] == 1
    assert parts[T.STEPS["lock take"]] == 1
    assert parts[T.CONTROLLER] == 5
    assert sum(parts.values()) == 10


def test_health_wait_split_at_the_moment_the_app_listened():
    records = [span("docker run", 0, 1, "odoo"),
               span("health wait", 1, 9, "odoo"), span("health wait", 9, 9.5, "odoo (check)")]
    ready = T.ready_times(records, {"odoo": 3.5})
    parts = T.attribute(0, 10, T._update_spans(records, ready))
    assert parts[T.APP_STARTUP] == pytest.approx(2.5)
    assert parts[T.POLLING] == pytest.approx(5.5)
    assert parts[T.CHECK] == pytest.approx(0.5)


def test_a_container_without_its_log_line_starts_as_long_as_the_others():
    records = [span("docker run", 0, 1, "odoo"), span("docker run", 10, 11, "odoo-canary")]
    assert T.ready_times(records, {"odoo": 3.0}) == {"odoo": 3.0, "odoo-canary": 13.0}


def test_phases_add_up_to_the_whole_run():
    records = [span("process", 0.5, 0.6, "python pulumi-language-python-exec", proc="program"),
               span("program main", 1.0, 1.2, proc="program"),
               span("process", 1.5, 1.6, "python -u -m pulumi.dynamic"),
               span("release update", 2.0, 30.0), span("analysis", 5.0, 25.0, "10%")]
    run = T.Run(start=0.0, end=33.0, records=records, cli=(0.0, 32.0),
                events=[(31.0, {"kind": "summary_event"})])
    rows = T.breakdown(run)
    assert sum(r.seconds for r in rows if r.level == 0) == pytest.approx(33.0)
    update = next(r for r in rows if r.part == "release update")
    assert sum(r.seconds for r in rows if r.level == 1) == pytest.approx(update.seconds)
    s = T.summary(run, rows)
    assert (s["total"], s["analysis"], s["overhead"]) == (32.0, 20.0, 12.0)


def test_command_kinds_name_the_scripts():
    from bench.tracer import command_kind
    from canary.remote import nginx
    assert command_kind(["sh", "-c", nginx._WAIT_DRAINED, "sh", "1"]) == "nginx drain wait"
    assert command_kind(["docker", "inspect", "--type", "container", "odoo"]) == "docker inspect"
    assert command_kind(["docker", "image", "inspect", "x"]) == "docker image inspect"


def test_shell_commands_outside_the_analysis():
    records = [span("analysis", 5, 25), span("ssh command", 6, 7, "access log size"),
               span("ssh command", 1, 2, "mkdir"), span("ssh session", 0, 1, "bash"),
               span("sftp write", 3, 4, "journal.json")]
    assert T.shell_commands_outside_analysis(records) == 2
