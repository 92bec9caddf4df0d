"""Containers on the host, through the Docker CLI over SSH.

Every command is an argument list (quoted in ssh.Host.run). Container environment
values travel in an env file written over SFTP with mode 600, never on a command line.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from ..host import Container
from ..spec import ContainerSpec
from . import STATE_DIR
from .ssh import Host, RemoteError


class LogsUnavailable(Exception):
    """The container's log could not be read (Docker daemon down, container gone):
    the number of ERROR lines is unknown, not zero."""


def _absent(err: str) -> bool:
    """Whether Docker's error says the object does not exist (and nothing else)."""
    return "no such container" in err.lower() or "no such object" in err.lower() or \
        "no such image" in err.lower()


def run_argv(spec: ContainerSpec, env_file: str) -> list[str]:
    args = ["docker", "run", "-d", "--name", spec.name,
            "--restart", spec.restart_policy,
            "-p", f"{spec.bind_address}:{spec.host_port}:{spec.container_port}",
            "--env-file", env_file,
            # Give the app time to drain in-flight requests on `docker stop`.
            "--stop-timeout", "30"]
    for v in spec.volumes:
        args += ["-v", v]
    for k, v in sorted(spec.labels.items()):
        args += ["--label", f"{k}={v}"]
    return args + [spec.image]


def inspect(host: Host, name: str) -> Optional[Container]:
    """The container, or None when Docker says there is none. Any other failure (the
    daemon down, a dropped connection) raises: it is not evidence of absence."""
    argv = ["docker", "inspect", "--type", "container", name]
    status, out, err = host.run(argv, check=False)
    if status != 0:
        if _absent(err):
            return None
        raise RemoteError(argv, status, out, err)
    return _container(out)


def inspect_all(host: Host, names: list[str]) -> dict[str, Optional[Container]]:
    """Several containers in one round trip (None for each Docker says does not exist).
    Any other failure raises, as for `inspect`."""
    argv = ["docker", "inspect", "--type", "container", *names]
    status, out, err = host.run(argv, check=False)
    found = {c.name: c for c in _containers(out)} if out.strip().startswith("[") else {}
    if status != 0:
        # Docker prints what it found and one error line per missing name: only those
        # errors are evidence of absence.
        errors = [line for line in err.strip().splitlines() if line.strip()]
        if len(found) == len(names) or not errors or not all(_absent(line) for line in errors):
            raise RemoteError(argv, status, out, err)
    return {name: found.get(name) for name in names}


def _container(inspected: str) -> Container:
    """The container from `docker inspect`'s JSON."""
    return _containers(inspected)[0]


def _containers(inspected: str) -> list[Container]:
    out = []
    for data in json.loads(inspected):
        state = data.get("State", {})
        out.append(Container(
            name=data["Name"].lstrip("/"), id=data["Id"][:12], image=data["Config"]["Image"],
            running=bool(state.get("Running")), status=state.get("Status", ""),
            labels=data["Config"].get("Labels") or {}))
    return out


def image_exists(host: Host, image: str) -> bool:
    argv = ["docker", "image", "inspect", image]
    status, out, err = host.run(argv, check=False)
    if status != 0 and not _absent(err):
        raise RemoteError(argv, status, out, err)
    return status == 0


def write_env_file(host: Host, path: str, env: dict) -> None:
    """Docker's --env-file, over SFTP with mode 600: values never on a command line."""
    host.write_file(path, "".join(f"{k}={v}\n" for k, v in sorted(env.items())), mode=0o600)


def run(host: Host, spec: ContainerSpec) -> Container:
    app_dir = f"{STATE_DIR}/{spec.labels.get('canary.app', spec.name)}"
    env_file = f"{app_dir}/{spec.name}.env"
    # 700 even when the directory already existed (mkdir -p -m leaves its mode alone).
    host.run(["install", "-d", "-m", "700", app_dir])
    write_env_file(host, env_file, spec.env)
    # One round trip: the run, then the inspection of what it started.
    argv = run_argv(spec, env_file)
    status, out, err = host.run(["sh", "-c", _RUN_AND_INSPECT, "sh", *argv], check=False)
    if status == _INSPECT_FAILED:
        if _absent(err):
            raise RuntimeError(f"container {spec.name} vanished right after `docker run`")
        raise RemoteError(["docker", "inspect", "--type", "container", spec.name], status, "", err)
    if status != 0:
        raise RemoteError(argv, status, out, err)
    return _container(out)


# Runs the `docker run -d` in "$@", then prints `docker inspect` of the container it
# started (exit 3 when that fails: `docker run -d` itself fails with 125 to 127).
_RUN_AND_INSPECT = r'''
id=$("$@") || exit $?
docker inspect --type container "$id" || exit 3
'''
_INSPECT_FAILED = 3


# $1: seconds from the stop signal to SIGKILL; $2: the container; $3: "drained" when nginx
# sends it nothing any more. Then an app that does not catch its stop signal (its PID 1
# has no handler for it: SigCgt in /proc) is killed at once: the kernel drops a signal
# that the init of a PID namespace has no handler for, so the grace would only be waited
# out. Only when /proc shows that very container's process (its cgroup names the
# container), and for the stop signals named below; otherwise the grace stands.
# Prints the grace given.
_STOP_AND_REMOVE = r'''
set -f
grace=$1
if [ "$3" = drained ] &&
   info=$(docker inspect -f '{{.State.Pid}} {{.Id}} {{or (index .Config "StopSignal") "SIGTERM"}}' "$2" 2>/dev/null)
then
    set -- "$@" $info  # $4 pid, $5 id, $6 stop signal
    case ${6#SIG} in
        HUP|1) n=1 ;; INT|2) n=2 ;; QUIT|3) n=3 ;; USR1|10) n=10 ;; USR2|12) n=12 ;;
        TERM|15) n=15 ;; WINCH|28) n=28 ;; *) n=0 ;;
    esac
    case $4 in ''|0|*[!0-9]*) n=0 ;; esac
    case $5 in ''|*[!0-9a-f]*) n=0 ;; esac  # (an empty id would match any cgroup line)
    caught=$(sed -n 's/^SigCgt:[[:space:]]*\([0-9a-f]\{16\}\)$/\1/p' "/proc/$4/status" 2>/dev/null)
    if [ "$n" != 0 ] && [ -n "$caught" ] && grep -qF "$5" "/proc/$4/cgroup" 2>/dev/null &&
       [ $(( 0x${caught#????????} >> (n - 1) & 1 )) = 0 ]; then
        grace=0
    fi
fi
echo "$grace"
docker stop -t "$grace" "$2" >/dev/null 2>&1; docker rm -f "$2" >/dev/null
'''


def stop_and_remove(host: Host, name: str, timeout: int = 30, drained: bool = False,
                    daemon_wait: float = 90) -> int:
    """Stops (the stop signal, then SIGKILL after `timeout` s: the app drains) and removes.
    `drained`: nothing is sent to it any more, so an app that would not act on the stop
    signal is killed at once (see _STOP_AND_REMOVE). Returns the grace given.

    Waits out a Docker daemon that is restarting rather than leaving the container
    behind (with a restart policy it would come back by itself)."""
    deadline = time.monotonic() + daemon_wait
    while True:
        # One round trip: the stop (its outcome does not matter), then the removal.
        status, out, err = host.run(["sh", "-c", _STOP_AND_REMOVE, "sh", str(timeout), name,
                                     "drained" if drained else ""], check=False, timeout=timeout + 60)
        if status == 0 or "No such container" in err:
            given = (out.strip().splitlines() or [""])[-1]  # (after any login-shell output)
            return int(given) if given.isdigit() else timeout
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not remove container {name}: {err.strip()[-200:]}")
        time.sleep(2)


def port_holder(host: Host, port: int) -> Optional[str]:
    """Who listens on the port already (a process line from ss), or None."""
    out = host.sh('ss -Htlnp "sport = :$1" 2>/dev/null || true', str(port), check=False)
    return out.strip() or None


# Counts the lines containing $3 in the container's log since $1, and says whether
# `docker logs` itself succeeded (its own error is its last line).
_COUNT_LOG_LINES = r'''
{ docker logs --since "$1" "$2" 2>&1; echo "canary:docker-logs-status:$?"; } |
    NEEDLE="$3" awk '/^canary:docker-logs-status:/ { st = substr($0, 27); next }
                     index($0, ENVIRON["NEEDLE"]) { n++ }
                     { last = $0 }
                     END { print n + 0; print st; print last }'
'''


def count_log_lines(host: Host, name: str, since: str, needle: str = "ERROR") -> int:
    """Lines containing `needle` in the container's log since `since`. Raises
    LogsUnavailable when `docker logs` failed (the count is unknown, not 0)."""
    out = host.sh(_COUNT_LOG_LINES, since, name, needle).split("\n")
    count, status, last = (out + ["", "", ""])[:3]
    if status.strip() != "0" or not count.strip().isdigit():
        raise LogsUnavailable(f"`docker logs {name}` failed (exit {status.strip() or '?'}): "
                              f"{last.strip()[-200:]}")
    return int(count)
