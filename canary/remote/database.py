"""The app's database on the host: a backup before a migration, and the migration in a
one-off container of the new image.

The backup is PostgreSQL's own `pg_dump -Fc`, run in a container of `backup_image`
(host network: it reaches the database as the droplet does) that writes into
STATE_DIR/APP/backups through a bind mount, so a full disk fails pg_dump itself. The
connection goes in libpq's PG* variables through an env file (mode 600, removed after):
never on a command line. A dump is written as `.partial` and renamed once complete;
the oldest beyond `keep` are removed.

The migration runs detached (`docker run -d`) and is followed by polling its log, so a
long one shows progress, a dropped SSH connection does not kill it, and a CLI killed
meanwhile leaves it to finish: the next run waits for it before anything else.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Callable, Optional, Sequence
from urllib.parse import unquote, urlsplit

from ..errors import DeployError
from ..spec import ContainerSpec
from . import STATE_DIR
from .docker import run_argv, write_env_file
from .ssh import Host

POLL = 0.25  # s between looks at a running migration (its end is seen within that)
SHOW_EVERY = 5.0  # s between its progress lines
SHOWN_LINES = 20  # of its log's end, kept for the failure message


def pg_env(url: str) -> dict[str, str]:
    """libpq's variables for a postgresql:// URL (pg_dump reads them, no argument needed)."""
    u = urlsplit(url)
    env = {"PGHOST": u.hostname or "127.0.0.1", "PGPORT": str(u.port or 5432),
           "PGUSER": unquote(u.username or ""), "PGPASSWORD": unquote(u.password or ""),
           "PGDATABASE": u.path.lstrip("/")}
    return {k: v for k, v in env.items() if v}


def backup_name(app: str, image: str, at: Optional[float] = None) -> str:
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", image.rsplit(":", 1)[-1])[:60]
    return f"{app}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(at))}-{tag}.dump"


# $1 backups dir, $2 file name, $3 env file, $4 image, $5 container name, $6 how many to keep.
_BACKUP = r'''
set -u
dir=$1 name=$2
rm -f "$dir"/*.partial
docker rm -f "$5" >/dev/null 2>&1
docker run --rm --name "$5" --network host --user 0:0 --env-file "$3" -v "$dir:/backups" \
    --entrypoint pg_dump "$4" -Fc -f "/backups/$name.partial"
status=$?
rm -f "$3"
if [ $status != 0 ]; then rm -f "$dir/$name.partial"; exit $status; fi
mv "$dir/$name.partial" "$dir/$name" && chmod 600 "$dir/$name" || exit 1
ls -1t "$dir"/*.dump | tail -n +$(( $6 + 1 )) | while read -r old; do rm -f -- "$old"; done
stat -c %s "$dir/$name"
'''


def backup(host: Host, app: str, url: str, image: str, name: str, keep: int, timeout: float) -> tuple[str, int]:
    """Dumps the database into STATE_DIR/APP/backups/NAME; (its path, its size in bytes)."""
    app_dir = f"{STATE_DIR}/{app}"
    backups = f"{app_dir}/backups"
    env_file = f"{app_dir}/backup.env"
    host.run(["install", "-d", "-m", "700", app_dir, backups])
    write_env_file(host, env_file, pg_env(url))
    status, out, err = host.run(["sh", "-c", _BACKUP, "sh", backups, name, env_file, image, f"{app}-backup",
                                 str(keep)], check=False, timeout=timeout)
    if status != 0:
        raise DeployError(f"the backup of the database failed (pg_dump in {image}, exit {status}): "
                          f"{(err or out).strip()[-400:]}")
    size = (out.strip().splitlines() or ["0"])[-1]
    return f"{backups}/{name}", int(size) if size.isdigit() else 0


# $1 backups dir, $2 file name, $3 env file, $4 image, $5 container name. The schema
# `public` is emptied and the backup replayed in one transaction (psql -1): objects a later
# migration added go too (pg_restore --clean drops only what the backup holds, and fails
# on a newer table that references one of them), and a failure changes nothing.
_RESTORE = r'''
set -u
if [ ! -f "$1/$2" ]; then rm -f "$3"; echo "no backup $2 in $1" >&2; exit 66; fi
docker rm -f "$5" >/dev/null 2>&1
docker run --rm --name "$5" --network host --user 0:0 --env-file "$3" -v "$1:/backups:ro" \
    --entrypoint sh "$4" -c '{ echo "DROP SCHEMA public CASCADE; CREATE SCHEMA public;";
        pg_restore --no-owner -f - "/backups/$1"; } | psql -X -q -1 -v ON_ERROR_STOP=1 >/dev/null' sh "$2"
status=$?
rm -f "$3"
exit $status
'''


def restore(host: Host, app: str, url: str, image: str, name: str, timeout: float) -> None:
    """Restores STATE_DIR/APP/backups/NAME into the database (its schema `public`), in one
    transaction."""
    app_dir = f"{STATE_DIR}/{app}"
    env_file = f"{app_dir}/backup.env"
    write_env_file(host, env_file, pg_env(url))
    status, out, err = host.run(["sh", "-c", _RESTORE, "sh", f"{app_dir}/backups", name, env_file, image,
                                 f"{app}-restore"], check=False, timeout=timeout)
    if status != 0:
        raise DeployError(f"restoring the backup {name} failed (pg_restore in {image}, exit {status}): "
                          f"{(err or out).strip()[-400:]}; the database is as it was (one transaction)")


# $1 the container: its state first (once it has ended, its log is complete), then the
# last $2 lines of its log and how many lines it has, from one read.
_FOLLOW = r'''
state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.State.StartedAt}} {{.State.FinishedAt}}' "$1" \
    2>/dev/null) || state="gone 0"
echo "canary:state $state"
docker logs "$1" 2>&1 | awk -v most="$2" '{ last[NR % most] = $0 }
    END { for (i = NR - most + 1; i <= NR; i++) if (i > 0) print last[i % most]; print "canary:lines " NR }'
'''


def _look(host: Host, name: str) -> tuple[str, int, int, list[str], float]:
    """(state, exit code, lines in its log, its last SHOWN_LINES lines, seconds it ran once
    ended) of a one-off container."""
    out = host.sh(_FOLLOW, name, str(SHOWN_LINES), check=False)
    lines = out.rstrip("\n").split("\n")
    state = next((x.split()[1:] for x in lines if x.startswith("canary:state ")), ["gone", "0"])
    total = next((x.split()[1] for x in reversed(lines) if x.startswith("canary:lines ")), "0")
    last = [x for x in lines if x and not x.startswith(("canary:state ", "canary:lines "))]
    code = state[1] if len(state) > 1 else "0"
    return (state[0], int(code) if code.lstrip("-").isdigit() else -1, int(total) if total.isdigit() else 0,
            last, _ran(*state[2:4]) if len(state) >= 4 else 0.0)


def _ran(started: str, finished: str) -> float:
    """Seconds between Docker's StartedAt and FinishedAt (RFC 3339 with nanoseconds)."""
    try:
        a, b = (datetime.fromisoformat(t[:26].rstrip("Z") + "+00:00") for t in (started, finished))
        return max(0.0, (b - a).total_seconds())
    except ValueError:
        return 0.0


def run_once(host: Host, spec: ContainerSpec, command: Sequence[str], timeout: float,
             log: Callable[[str], None], what: str = "migration",
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str:
    """Runs `command` in a one-off container (`spec`: the image, env, volumes, labels),
    with a progress line every SHOW_EVERY s (its output so far and its last line); returns
    its last lines. Raises DeployError when it fails or
    outlives `timeout` (then it is removed)."""
    name = spec.name
    _finish_leftover(host, name, timeout, log, what, clock, sleep)
    app_dir = f"{STATE_DIR}/{spec.labels.get('canary.app', name)}"
    env_file = f"{app_dir}/{name}.env"
    host.run(["install", "-d", "-m", "700", app_dir])
    write_env_file(host, env_file, spec.env)
    argv = _one_off(run_argv(spec, env_file)) + list(command)
    status, out, err = host.run(argv, check=False)
    if status != 0:
        raise DeployError(f"the {what} container could not start: {(err or out).strip()[-300:]}")
    start, shown = clock(), 0
    said = start - SHOW_EVERY + 1  # its first line after a second
    try:
        while True:
            state, code, total, last, ran = _look(host, name)
            ended = state not in ("running", "created")
            if total > shown and (ended or clock() - said >= SHOW_EVERY):
                # One line a while: a migration may print thousands (Odoo's -u all).
                log(f"{what}: {clock() - start:.0f}s, {total} lines of output; the last: {last[-1][:300]}")
                said, shown = clock(), total
            if ended:
                if code != 0:
                    raise DeployError(f"the {what} `{' '.join(command)[:200]}` failed (exit {code}): "
                                      + " | ".join(last[-5:])[-600:])
                log(f"{what} finished in {clock() - start:.1f}s (its container ran {ran:.2f}s)")
                return "\n".join(last)
            if clock() - start > timeout:
                raise DeployError(f"the {what} `{' '.join(command)[:200]}` did not finish within "
                                  f"{timeout:g}s: stopped")
            sleep(POLL)
    finally:
        host.run(["docker", "rm", "-f", name], check=False)
        host.run(["rm", "-f", env_file], check=False)


def _one_off(argv: list[str]) -> list[str]:
    """`docker run -d` of a service container without its port, restart policy and stop
    timeout: a one-off publishes nothing and is never restarted."""
    out: list[str] = []
    skip = False
    for a in argv:
        if not skip and a not in ("-p", "--restart", "--stop-timeout"):
            out.append(a)
        skip = not skip and a in ("-p", "--restart", "--stop-timeout")
    return out


def _finish_leftover(host: Host, name: str, timeout: float, log: Callable[[str], None], what: str,
                     clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    """An earlier run's one-off (its CLI was killed): let it finish, then remove it, so
    two migrations never run at once."""
    start, said = clock(), False
    while clock() - start <= timeout:
        status, out, _ = host.run(["docker", "inspect", "-f", "{{.State.Status}}", name], check=False)
        if status != 0 or out.strip() not in ("running", "created", "restarting"):
            break
        if not said:
            log(f"an earlier {what} ({name}) still runs (its CLI was stopped?): waiting for it to finish")
            said = True
        sleep(POLL)
    host.run(["docker", "rm", "-f", name], check=False)
