"""The overhead breakdown of a traced `pulumi up` (pure: no I/O).

Input: the wall-clock marks the benchmark took around the CLI, the spans
bench/tracer.py recorded inside the program and provider processes, and the engine
events. Output: rows (part, seconds, count, note) whose seconds add up to the whole
`pulumi up`, in the order things happen.

Inside the release's update every instant is given to one part: the innermost traced
step covering it (a health wait, a docker run, a journal write...); a remote command
outside any step counts as itself; what no remote work covers is the controller's own.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Run:
    start: float  # wall clock: the benchmark called stack.up()
    end: float    # ... and it returned
    records: list[dict]  # bench/tracer.py's spans
    events: list[tuple[float, dict]] = field(default_factory=list)  # (received at, engine event)
    cli: Optional[tuple[float, float]] = None  # the `pulumi up` process itself
    listening: dict[str, float] = field(default_factory=dict)  # container -> when its app listened
    analysis_seconds: float = 0.0  # as the release's outputs report it


@dataclass(frozen=True)
class Row:
    part: str
    seconds: float
    count: int = 0
    note: str = ""
    level: int = 0  # 0: a phase of `pulumi up`; 1: a part of the release's update


def rfc3339(text: str) -> float:
    """Docker's timestamps (nanoseconds, Z) as wall-clock seconds."""
    text = text.strip().rstrip("Z")
    whole, _, frac = text.partition(".")
    t = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


# -- the release's update: one part per instant ------------------------------------------------
STEPS = {  # traced step -> part of the update
    "analysis": "analysis (the configured monitoring)",
    "ssh connect": "SSH connect",
    "lock take": "host lock (take, release)", "lock release": "host lock (take, release)",
    "journal read": "journal on the host (read, writes)", "journal write": "journal on the host (read, writes)",
    "observe": "observe (docker inspect x2, split file read)",
    "port check": "port check (docker inspect, ss)",
    "docker run": "container start: docker run (+ env file, inspect)",
    "docker stop+rm": "docker stop + rm",
    "nginx split install": "nginx: split file + nginx -t + reload",
    "nginx split remove": "nginx: split file + nginx -t + reload",
    "nginx drain": "nginx: wait for old workers to drain",
    "analysis report": "report + notify", "notify": "report + notify",
}
APP_STARTUP = "health wait: the app starting (until it listens)"
POLLING = "health wait: polling after the app listened"
CHECK = "health check of a running container"
LEAF = {"docker inspect": "docker inspect (outside the steps above)",
        "ssh command": "other remote commands", "sftp read": "other remote commands",
        "sftp write": "other remote commands", "ssh session": "other remote commands",
        "progress line": "progress lines (the engine's Log RPC)"}
CONTROLLER = "controller itself (no remote work)"
ROUND_TRIPS = ("ssh command", "sftp read", "sftp write", "ssh session")


@dataclass(frozen=True)
class _Span:
    start: float
    end: float
    part: str
    rank: int  # 2: a step, 1: a single remote command, 0: the update itself


def _update_spans(records: list[dict], ready: dict[str, float]) -> list[_Span]:
    spans = []
    for r in records:
        what, start, end = r["what"], r["start"], r["end"]
        if what == "health wait":
            name, quiet = r["detail"].split(" ")[0], "(check)" in r["detail"]
            at = ready.get(name)
            if quiet or at is None:
                spans.append(_Span(start, end, CHECK if quiet else APP_STARTUP + " (no log line)", 2))
            else:
                at = min(max(at, start), end)
                spans += [_Span(start, at, APP_STARTUP, 2), _Span(at, end, POLLING, 2)]
        elif what in STEPS:
            spans.append(_Span(start, end, STEPS[what], 2))
        elif what in LEAF:
            spans.append(_Span(start, end, LEAF[what], 1))
    return spans


def attribute(start: float, end: float, spans: list[_Span]) -> dict[str, float]:
    """Seconds of [start, end] per part: each instant to the covering span of the highest
    rank, the innermost (latest started, then first ended) among equals; the rest to the
    controller."""
    cuts = sorted({start, end, *(t for s in spans for t in (s.start, s.end) if start < t < end)})
    seconds: Counter = Counter()
    for a, b in zip(cuts, cuts[1:]):
        covering = [s for s in spans if s.start <= a and s.end >= b]
        best = max(covering, key=lambda s: (s.rank, s.start, -s.end), default=None)
        seconds[best.part if best else CONTROLLER] += b - a
    return dict(seconds)


def ready_times(records: list[dict], listening: dict[str, float]) -> dict[str, float]:
    """When each started container's app began to listen: its own log line where known,
    else the end of its `docker run` plus the time from there measured on the others."""
    started = {r["detail"]: r["end"] for r in records if r["what"] == "docker run"}
    known = {n: t - started[n] for n, t in listening.items() if n in started}
    delay = sum(known.values()) / len(known) if known else None
    ready = dict(listening)
    for name, t in started.items():
        if name not in ready and delay is not None:
            ready[name] = t + delay
    return ready


# -- the whole `pulumi up` --------------------------------------------------------------------
def _first(records, pred) -> Optional[dict]:
    return min((r for r in records if pred(r)), key=lambda r: r["start"], default=None)


def _event_at(run: Run, kind: str, urn_end: str = "") -> Optional[float]:
    return next((t for t, e in run.events if e.get("kind") == kind and e.get("urn", "").endswith(urn_end)), None)


def breakdown(run: Run) -> list[Row]:
    rec = run.records
    python = _first(rec, lambda r: r["what"] == "process")
    program = _first(rec, lambda r: r["what"] == "process" and "language-python-exec" in r["detail"])
    main = _first(rec, lambda r: r["what"] == "program main")
    digest = _first(rec, lambda r: r["what"] == "registry digest lookup")
    provider = _first(rec, lambda r: r["what"] == "process" and r["proc"] == "provider")
    update = _first(rec, lambda r: r["what"] in ("release update", "release create"))
    if not (program and main and provider and update):
        raise ValueError("the trace lacks the program, the provider or the release's update")
    cli_end = run.cli[1] if run.cli else run.end
    summary = _event_at(run, "summary_event")
    rows: list[Row] = []

    def phase(part: str, a: float, b: float, note: str = "") -> None:
        rows.append(Row(part, max(b - a, 0.0), note=note))

    first_python = python["start"] if python else program["start"]
    phase("CLI start-up", run.start, first_python, "the pulumi binary, backend, stack, plugins")
    phase("language host: uv.lock, plugin discovery", first_python, program["start"],
          f"{sum(1 for r in rec if r['what'] == 'process' and r['start'] < program['start'])} python processes")
    phase("program: Python start-up and imports", program["start"], main["start"])
    lookup = (digest["end"] - digest["start"]) if digest else 0.0
    phase("program: config, resource registrations", main["start"], main["end"] - lookup)
    phase("program: registry digest lookup (docker provider)", 0.0, lookup,
          "get_registry_image" if lookup > 0.01 else "image_pull false: none")
    phase("engine: docker provider, image and site steps, the release's diff", main["end"], update["start"],
          f"its provider process started {provider['start'] - main['end']:.2f}s in")
    rows.append(Row("release update", update["end"] - update["start"],
                    note="the controller on the host, in parts below"))
    inside = [r for r in rec if r["proc"] == "provider" and update["start"] <= r["start"] <= update["end"]]
    ready = ready_times(inside, run.listening)
    parts = attribute(update["start"], update["end"], _update_spans(inside, ready))
    counts = _counts(inside)
    for part, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        rows.append(Row(part, seconds, counts.get(part, 0), level=1))
    end_of_engine = summary if summary and update["end"] < summary < cli_end else cli_end
    phase("engine: verdict, outputs, old image, summary", update["end"], end_of_engine)
    if end_of_engine < cli_end:
        phase("CLI shut-down (plugins, state, exit)", end_of_engine, cli_end)
    if run.cli:
        phase("Automation API: `stack output` + `stack history` after the CLI", cli_end, run.end,
              "a person typing `pulumi up` does not pay this")
    return rows


def _counts(records: list[dict]) -> dict[str, int]:
    c: Counter = Counter()
    for r in records:
        if r["what"] in STEPS:
            c[STEPS[r["what"]]] += 1
        elif r["what"] == "health wait":
            c[CHECK if "(check)" in r["detail"] else APP_STARTUP] += 1
            if "(check)" not in r["detail"]:
                c[POLLING] += 1
    return dict(c)


def round_trips(records: list[dict], start: float, end: float) -> Counter:
    """Remote commands and SFTP operations in [start, end] by kind (one SSH round trip each)."""
    c: Counter = Counter()
    for r in records:
        if r["what"] in ROUND_TRIPS and start <= r["start"] <= end:
            kind = r["detail"].split(" odoo")[0] if r["what"] == "ssh command" else r["what"]
            c[kind] += 1
    return c


def shell_commands_outside_analysis(records: list[dict]) -> int:
    """Remote commands (each one a shell on the host) of the provider, analysis excluded."""
    analyses = [(r["start"], r["end"]) for r in records if r["what"] == "analysis"]
    return sum(1 for r in records if r["proc"] == "provider" and r["what"] in ("ssh command", "ssh session")
               and not any(a <= r["start"] <= b for a, b in analyses))


def summary(run: Run, rows: list[Row]) -> dict:
    analysis = next((r.seconds for r in rows if r.part == STEPS["analysis"]), run.analysis_seconds)
    total = (run.cli[1] - run.start) if run.cli else run.end - run.start
    starts = sum(r.seconds for r in rows if r.part in (APP_STARTUP, STEPS["docker run"]))
    return {"total": total, "analysis": analysis, "overhead": total - analysis,
            "container_starts": starts, "beyond": total - analysis - starts}


def table(run: Run, rows: list[Row]) -> str:
    s = summary(run, rows)
    lines = [f"  {'part':66} {'seconds':>8} {'count':>6}  note"]
    for r in rows:
        name = ("  - " if r.level else "") + r.part
        count = str(r.count) if r.count else ""
        lines.append(f"  {name:66} {r.seconds:8.2f} {count:>6}  {r.note}")
    covered = sum(r.seconds for r in rows if r.level == 0)
    lines.append(f"  {'sum of the phases (check: the whole run)':66} {covered:8.2f}")
    upd = next(r for r in rows if r.part == "release update")
    inside = [r for r in run.records if r["proc"] == "provider"]
    trips = round_trips(inside, 0, float("inf"))
    ssh_seconds = sum(r["end"] - r["start"] for r in inside if r["what"] in ROUND_TRIPS)
    lines += [
        "",
        f"  pulumi up (the CLI): {s['total']:.1f}s; analysis {s['analysis']:.1f}s; everything else "
        f"{s['overhead']:.1f}s, of which {s['container_starts']:.1f}s the container starts (docker run "
        f"until the app listens): {s['beyond']:.1f}s beyond the analysis and the container starts",
        f"  release update {upd.seconds:.1f}s: {sum(trips.values())} SSH round trips ({ssh_seconds:.1f}s, "
        "analysis included): " + ", ".join(f"{k} x{n}" for k, n in trips.most_common()),
    ]
    return "\n".join(lines)
