"""Overhead of a promotion: `pulumi up` v1 -> v2 with a 20 s analysis, broken down.

The same stack as the live benchmarks (one 20 s step at 10 %, an app that takes 3 s to
listen, wrk's users during the promotion), through the real CLI. bench/tracer.py times
the program's and the providers' work from inside their processes; the engine's event
stream and the CLI process's own start and end give the rest. bench/timeline.py turns
them into the table printed here.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from pulumi import automation as auto

from canary.controller import DRAINED_STOP_GRACE
from canary.remote import docker
from canary.remote.ssh import Host
from tests.e2e.harness import BASE_CONFIG, TESTHOST_DIR, link_lock_files, sh, ssh_target, testhost_turn

from . import live, timeline

ROOT = Path(__file__).resolve().parents[1]


def _traced(d, trace: Path) -> None:
    """The stack's Python processes write their timings to `trace` (bench/tracer.py)."""
    env = d.stack.workspace.env_vars
    env["CANARY_BENCH_TRACE"] = str(trace)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench" / "tracing"), env.get("PYTHONPATH") or str(ROOT)])


def _timed_cli(stack, marks: list) -> None:
    """Notes when the `pulumi up` process itself starts and ends (the Automation API then
    runs `pulumi stack output` and `pulumi stack history`)."""
    run = stack._run_pulumi_cmd_sync

    def timed(args, *a, **k):
        start = time.time()
        try:
            return run(args, *a, **k)
        finally:
            if "up" in args[:2]:  # the Automation API may put --non-interactive first
                marks.append((start, time.time()))
    stack._run_pulumi_cmd_sync = timed


def promotion(tmp: Path, load: bool = True) -> timeline.Run:
    """Deploys v1, then times the promotion to v2 (under wrk's load when `load`)."""
    d = live.deployment(tmp)
    d.up()
    trace = tmp / "trace.jsonl"
    trace.write_text("")
    _traced(d, trace)
    cli: list = []
    _timed_cli(d.stack, cli)
    d.set(image_tag="v2")
    events: list[tuple[float, dict]] = []

    def on_event(e: auto.EngineEvent) -> None:
        events.append((time.time(), engine_event(e)))

    with (live.Wrk() if load else _nothing()) as users:
        start = time.time()
        d.stack.up(on_event=on_event, on_output=d._out)
        end = time.time()
    if users is not None:
        print(users.line("  users during the promotion (wrk)"))
    records = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    return timeline.Run(start=start, end=end, records=records, events=events, cli=cli[0] if cli else None,
                        listening={n: t for n in ("odoo",) if (t := _listening_at(n)) is not None},
                        analysis_seconds=d.outputs()["analysis"]["seconds"])


@contextmanager
def _nothing():
    yield None


def engine_event(e: auto.EngineEvent) -> dict:
    """The few fields of an engine event the timeline reads."""
    for kind in ("resource_pre_event", "res_outputs_event", "res_op_failed_event"):
        ev = getattr(e, kind, None)
        if ev is not None:
            return {"kind": kind, "urn": ev.metadata.urn, "op": str(ev.metadata.op.value)}
    if e.diagnostic_event is not None:
        return {"kind": "diagnostic_event", "urn": e.diagnostic_event.urn or "",
                "message": e.diagnostic_event.message}
    for kind in ("prelude_event", "summary_event", "cancel_event"):
        if getattr(e, kind, None) is not None:
            return {"kind": kind}
    return {"kind": "other"}


def _listening_at(name: str):
    """When the app in container `name` began to listen (its log line), wall clock."""
    out = sh(f"docker logs -t {name} 2>&1 | grep -m1 ' listening on ' || true", check=False).split()
    return timeline.rfc3339(out[0]) if out else None


def _test_host() -> Host:
    return Host(ssh_target())


def command_cost(n: int = 10) -> tuple[float, float]:
    """Median seconds of one remote command (`true`) and of one SFTP read on the test
    host: what each round trip of the update costs there (a host's shell start-up files
    run for every command)."""
    host = _test_host()
    try:
        host.run(["true"])
        return (statistics.median(_seconds(lambda: host.run(["true"])) for _ in range(n)),
                statistics.median(_seconds(lambda: host.read_file("/etc/hostname")) for _ in range(n)))
    finally:
        host.close()


# Timed on the host itself (no round trip): a graceful reload until the old workers are
# gone. nginx's master waits 100 ms after starting the new workers before it tells the
# old ones to finish, so no drain takes less.
_RELOAD_UNTIL_DRAINED = r'''
master=$(cat /run/nginx.pid); old=$(pgrep -P "$master" | tr '\n' ' ')
start=$(date +%s.%N); nginx -s reload
while kill -0 $old 2>/dev/null; do sleep 0.005; done
echo "$(date +%s.%N) - $start" | bc
'''


def contract_floor(n: int = 3) -> dict[str, float]:
    """Medians, on the idle test host, of the steps the contract itself asks of a
    promotion whatever the tool: removing a container (`docker stop` + `docker rm` of an
    app that exits at once on SIGTERM), an nginx graceful reload until its old workers
    are gone (a drain), and opening an SSH session (OpenSSH, as the Docker provider
    does; paramiko, as the release does). A lower bound: the promotion pays them under
    its users' load."""
    host = _test_host()
    try:
        stop = statistics.median(_removal(host, drained=False) for _ in range(n))
        drain = statistics.median(float(host.sh(_RELOAD_UNTIL_DRAINED)) for _ in range(n))
    finally:
        host.close()
    openssh = ["ssh", "-F", "/dev/null", "-i", str(TESTHOST_DIR / "id_ed25519"), "-p", str(BASE_CONFIG["ssh_port"]),
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               f"{BASE_CONFIG['ssh_user']}@{BASE_CONFIG['host']}", "true"]
    session = statistics.median(_seconds(lambda: subprocess.run(openssh, check=True)) for _ in range(n))

    def paramiko_session() -> None:
        h = _test_host()
        try:
            h.run(["true"])
        finally:
            h.close()
    paramiko = statistics.median(_seconds(paramiko_session) for _ in range(n))
    return {"stop": stop, "drain": drain, "openssh": session, "paramiko": paramiko}


def _removal(host, drained: bool, env: tuple = ()) -> float:
    """Seconds to stop and remove a container of the demo app, started moments before."""
    host.run(["docker", "rm", "-f", "canary-bench-floor"], check=False)  # a run cut short
    host.run(["docker", "run", "-d", "--name", "canary-bench-floor", *(a for e in env for a in ("-e", e)),
              "canary-demo:v1"])
    time.sleep(0.5)
    return _seconds(lambda: docker.stop_and_remove(host, "canary-bench-floor", timeout=DRAINED_STOP_GRACE,
                                                   drained=drained))


def uncaught_removal(n: int = 3) -> tuple[float, float]:
    """Medians of removing a drained container whose app does not catch SIGTERM (the demo
    app with IGNORE_SIGTERM=1), side by side: as the release does (killed at once, as
    nothing could come of waiting), and with the drained grace it got before."""
    host = _test_host()
    try:
        now, grace = [], []
        for _ in range(n):  # alternating
            now.append(_removal(host, drained=True, env=("IGNORE_SIGTERM=1",)))
            grace.append(_removal(host, drained=False, env=("IGNORE_SIGTERM=1",)))
        return statistics.median(now), statistics.median(grace)
    finally:
        host.close()


def floor(tmp: Path, n: int = 3) -> float:
    """Median seconds of `pulumi up` (as the Automation API runs it) of a Python program
    with nothing in it but one stack output, on the same CLI, language host, venv and kind
    of backend: what any program pays before it does anything."""
    project = tmp / "floor"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        f"name: floor\nruntime:\n  name: python\n  options:\n    toolchain: uv\n    virtualenv: {ROOT / '.venv'}\n")
    link_lock_files(project)
    (project / "__main__.py").write_text("import pulumi\n\npulumi.export('ok', True)\n")
    (tmp / "floor-state").mkdir()
    stack = auto.create_or_select_stack("floor", work_dir=str(project), opts=auto.LocalWorkspaceOptions(
        env_vars={"PULUMI_BACKEND_URL": f"file://{tmp / 'floor-state'}", "PULUMI_CONFIG_PASSPHRASE": "floor",
                  "PULUMI_SKIP_UPDATE_CHECK": "1", "PATH": os.environ["PATH"]}))
    marks: list = []
    _timed_cli(stack, marks)
    for _ in range(n + 1):  # the first one creates the stack's output
        stack.up()
    return statistics.median(end - start for start, end in marks[1:])


def _seconds(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main(load: bool = True) -> None:
    print("Overhead: pulumi up of a promotion v1 -> v2 (one 20 s analysis step at 10 %, an app that "
          "starts in 3 s), by part")
    with tempfile.TemporaryDirectory() as tmp, testhost_turn():
        os.environ.setdefault("CANARY_REPORT_DIR", str(Path(tmp) / "reports"))
        run = promotion(Path(tmp) / "overhead", load=load)
        live.reset_host()
        command, sftp = command_cost()
        inherent = contract_floor()
        uncaught = uncaught_removal()
        empty = floor(Path(tmp))
    rows = timeline.breakdown(run)
    print(timeline.table(run, rows))
    beyond = timeline.summary(run, rows)["beyond"]
    print(f"  an empty Python program's `pulumi up` takes {empty:.1f}s here (median of 3: CLI, language host, "
          f"engine, no resources): {max(beyond - empty, 0.0):.1f}s of the {beyond:.1f}s beyond the analysis and "
          "the container starts are this program's own")
    shell = timeline.shell_commands_outside_analysis(run.records)
    print(f"  one remote command costs {command:.3f}s on this test host (`true`, median), an SFTP read "
          f"{sftp:.3f}s: the update ran {shell} commands outside the analysis, {shell * command:.1f}s")
    steps = 2 * inherent["stop"] + 2 * inherent["drain"] + inherent["openssh"] + inherent["paramiko"]
    print(f"  what the contract's own steps cost here, idle (median of 3): removing a container "
          f"{inherent['stop']:.2f}s x2 (old production, canary), an nginx reload until its old workers are gone "
          f"{inherent['drain']:.2f}s x2, an SSH session {inherent['openssh']:.2f}s (OpenSSH: the Docker "
          f"provider) + {inherent['paramiko']:.2f}s (paramiko: the release) = {steps:.1f}s; with the empty "
          f"program's {empty:.1f}s, {steps + empty:.1f}s of the {beyond:.1f}s beyond the analysis and the container "
          "starts are steps that no tool keeping the contract can skip here")
    print(f"  an app that does not catch SIGTERM (IGNORE_SIGTERM=1), removed once nginx drained it (median of 3, "
          f"alternating): {uncaught[0]:.2f}s, killed at once; {uncaught[1]:.2f}s with a {DRAINED_STOP_GRACE} s grace "
          f"({uncaught[1] / uncaught[0]:.0f}x), twice per promotion")


if __name__ == "__main__":
    main()
