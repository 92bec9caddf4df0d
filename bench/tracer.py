"""Timing instrumentation for the overhead benchmark, inside the stack's own processes.

bench/tracing/sitecustomize.py calls install() in every Python process the `pulumi`
CLI starts for a traced stack (the program, the dynamic providers) when
CANARY_BENCH_TRACE names a file. It wraps functions of the project's modules as they
are imported (nothing of the project is imported early, nothing changes what they do)
and appends one JSON line per call to that file:

    {"pid", "proc", "what", "detail", "start", "end"}   (wall-clock seconds)

Remote commands and SFTP operations are leaves (each one SSH round trip); controller
and provider steps are the spans around them. bench/timeline.py reads the file.
"""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import importlib.util
import json
import os
import sys
import threading
import time

_PATH = os.environ.get("CANARY_BENCH_TRACE", "")
_PROC = "provider" if "pulumi.dynamic" in " ".join(sys.orig_argv) else "program"
_write_lock = threading.Lock()


def record(what: str, start: float, end: float, detail: str = "", **extra) -> None:
    line = json.dumps({"pid": os.getpid(), "proc": _PROC, "thread": threading.current_thread().name,
                       "what": what, "detail": detail, "start": start, "end": end, **extra})
    with _write_lock, open(_PATH, "a") as f:
        f.write(line + "\n")


def _wrap(owner, name: str, what: str, detail=None, result=None) -> None:
    """Records every call of owner.name as a span `what` (detail(args) and result(value)
    add words of their own); a missing attribute is skipped (the code moved on)."""
    original = getattr(owner, name, None)
    if original is None or getattr(original, "_bench_traced", False):
        return

    @functools.wraps(original)
    def traced(*args, **kwargs):
        start = time.time()
        extra = {}
        try:
            value = original(*args, **kwargs)
            if result is not None:
                extra = result(value) or {}
            return value
        finally:
            try:
                words = detail(*args, **kwargs) if detail else ""
            except Exception:
                words = ""
            record(what, start, time.time(), words, **extra)

    traced._bench_traced = True
    setattr(owner, name, traced)


# -- what each remote command is ----------------------------------------------------------------
def command_kind(argv) -> str:
    """A short name for a remote command: the breakdown groups round trips by it."""
    argv = [str(a) for a in argv]
    if argv[:2] == ["docker", "image"]:
        return "docker image inspect"
    if argv[:1] == ["docker"] and len(argv) > 1:
        return f"docker {argv[1]}"
    if argv[:2] == ["sh", "-c"] and len(argv) > 2:
        script = argv[2]
        for needle, kind in (("docker inspect --type container \"$id\"", "docker run+inspect"),
                             ("docker stop -t", "docker stop+rm"), ("nginx -t", "nginx test+reload"),
                             ("shutting down", "nginx drain wait"),
                             ("docker logs --since", "docker logs count"), ("stat -c %s", "access log size"),
                             ("tail -c", "access log read"), ("ss -Htlnp", "port check"),
                             ("journal.json", "journal remove")):
            if needle in script:
                return kind
        return "sh " + " ".join(script.split())[:30]
    return argv[0] if argv else "?"


def _run_detail(self, argv, *a, **k):
    argv = list(argv)
    return command_kind(argv) + (f" {argv[-1]}" if argv[:1] == ["docker"] else "")


def _path_detail(self, path, *a, **k):
    return os.path.basename(str(path))


# -- the modules and what is traced in each -----------------------------------------------------
def _patch_ssh(m):
    _wrap(m.Host, "_connect", "ssh connect")
    _wrap(m.Host, "run", "ssh command", _run_detail)
    _wrap(m.Host, "write_file", "sftp write", _path_detail)
    _wrap(m.Host, "read_file", "sftp read", _path_detail)
    _wrap(m.Host, "open_session", "ssh session", lambda self, argv, *a, **k: command_kind(argv))


def _patch_lock(m):
    _wrap(m.HostLock, "__enter__", "lock take")
    _wrap(m.HostLock, "__exit__", "lock release")


def _patch_docker(m):
    _wrap(m, "run", "docker run", lambda host, spec: spec.name)
    _wrap(m, "stop_and_remove", "docker stop+rm", lambda host, name, *a, **k: name)
    _wrap(m, "inspect", "docker inspect", lambda host, name: name)


def _patch_nginx(m):
    _wrap(m, "install", "nginx split install")
    _wrap(m, "remove", "nginx split remove")
    _wrap(m, "wait_drained", "nginx drain")


def _patch_runner(m):
    _wrap(m, "analyse", "analysis", lambda sources, a, image, weight, *args, **k: f"{weight}%")


def _patch_probes(m):
    _wrap(m, "probe", "http probe", lambda session, url, *a, **k: url.rsplit(":", 1)[-1],
          lambda r: {"ok": bool(r[0])})


def _patch_health_wait(m):
    _wrap(m.HealthWait, "problem", "health wait",
          lambda self, name, port, quiet=False: name + (" (check)" if quiet else ""))


def _patch_report_writer(m):
    _wrap(m.ReportWriter, "add", "analysis report")


def _patch_controller(m):
    c = m.Controller
    _wrap(c, "reconcile", "reconcile")
    _wrap(c, "observe", "observe")
    _wrap(c, "_journal", "journal write", lambda self, step: step)
    _wrap(c, "_read_journal", "journal read")
    _wrap(c, "_check_port", "port check")


def _patch_notify(m):
    _wrap(m.Notifier, "send", "notify", lambda self, event, *a, **k: event)


def _patch_provider(m):
    for name in ("configure", "diff", "create", "update", "read", "delete"):
        _wrap(m.ReleaseProvider, name, f"release {name}")
    for name in ("create", "update", "diff"):
        _wrap(m.VerdictProvider, name, f"verdict {name}")


def _patch_engine_log(m):
    _wrap(m, "say", "progress line")


def _patch_program(m):
    _wrap(m, "main", "program main")


def _patch_docker_resources(m):
    _wrap(m, "registry_digest", "registry digest lookup")


PATCHES = {
    "canary.remote.ssh": _patch_ssh, "canary.remote.lock": _patch_lock,
    "canary.remote.docker": _patch_docker, "canary.remote.nginx": _patch_nginx,
    "canary.analysis.runner": _patch_runner, "canary.analysis.sources.probes": _patch_probes,
    "canary.health_wait": _patch_health_wait, "canary.report_writer": _patch_report_writer,
    "canary.controller": _patch_controller,
    "canary.notify": _patch_notify, "canary.provider": _patch_provider,
    "canary.engine_log": _patch_engine_log, "canary.program": _patch_program,
    "canary.docker_resources": _patch_docker_resources,
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches a module of PATCHES right after it was executed."""

    _busy = threading.local()  # another finder that asks the others in turn asks us back

    def find_spec(self, name, path=None, target=None):
        if name not in PATCHES or getattr(self._busy, "name", None) == name:
            return None
        self._busy.name = name
        try:
            for finder in sys.meta_path:
                if finder is self:
                    continue
                spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
                if spec is not None and spec.loader is not None:
                    break
            else:
                return None
        finally:
            self._busy.name = None
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            PATCHES[name](module)
        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    if not _PATH:
        return
    started = _process_start()
    record("process", started, time.time(), " ".join(os.path.basename(a) for a in sys.orig_argv[:4]))
    sys.meta_path.insert(0, _AfterImport())
    atexit.register(lambda: record("process exit", time.time(), time.time()))


def _process_start() -> float:
    """When this process started (wall clock), from /proc; now when unknown."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()
