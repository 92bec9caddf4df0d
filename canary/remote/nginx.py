"""The traffic split file, changed with nginx's own discipline: `nginx -t` before every
graceful reload, and the previous file restored when the test or the reload fails."""

from __future__ import annotations

import re
from typing import Optional

from ..host import Split
from . import STATE_DIR
from .ssh import Host, RemoteError

# $1 = target file, $2 = new content staged outside nginx's directories (or "" to
# delete), $3 = where to keep the previous file meanwhile.
_INSTALL = r'''
f=$1; new=$2; prev=$3
mkdir -p "$(dirname "$prev")" || exit 1
rm -f "$prev"
[ -f "$f" ] && cp -p "$f" "$prev"
if [ -n "$new" ]; then mv "$new" "$f"; else rm -f "$f"; fi
if out=$(nginx -t 2>&1); then
    master=$(cat /run/nginx.pid 2>/dev/null || true)
    case $master in ''|*[!0-9]*) parent= ;; *) parent="-P $master" ;; esac
    old=  # this nginx's workers (when its pid is known: other nginx may run, in containers)
    # shellcheck disable=SC2086
    [ -n "$parent" ] && old=$(pgrep $parent -x -f "nginx: worker process" || true)
    # The graceful reload `nginx -s reload` sends, to a master whose nginx workers were
    # just seen, without a second nginx parsing the configuration to find its pid file.
    if [ -n "$old" ]; then reload="kill -HUP $master"; else reload="nginx -s reload"; fi
    if ! out=$($reload 2>&1); then
        # nginx still runs the previous configuration: put its file back.
        if [ -f "$prev" ]; then mv "$prev" "$f"; else rm -f "$f"; fi
        echo "$reload failed after the change to $f; previous file restored:" >&2
        echo "$out" >&2
        exit 1
    fi
    # Its workers before the reload, for a drain wait (wait_drained) that follows.
    echo "$old"
    rm -f "$prev"
else
    if [ -f "$prev" ]; then mv "$prev" "$f"; else rm -f "$f"; fi
    echo "nginx -t rejected the change to $f; previous file restored:" >&2
    echo "$out" >&2
    exit 1
fi
'''

# Old workers finish their in-flight requests after a graceful reload; wait for them.
# $1 seconds, $2 the workers before the reload (what _INSTALL printed). `nginx -s
# reload` only signals the master: until it has told those workers to shut down (some
# 0.1 s), they still accept requests with the previous file and none shows as shutting
# down yet, so that comes first (at most 10 s). Prints how many are still at it when the
# time is up (0: drained).
_WAIT_DRAINED = r'''
told=$2
master=$(cat /run/nginx.pid 2>/dev/null || true)
case $master in ''|*[!0-9]*) parent= ;; *) parent="-P $master" ;; esac
settle=$(( $(date +%s) + 10 ))
while [ -n "$told" ] && [ "$(date +%s)" -lt "$settle" ]; do
    # shellcheck disable=SC2086 # $parent: this nginx's workers only (when its pid is known)
    plain=" $(pgrep $parent -x -f "nginx: worker process" | tr '\n' ' ') "
    left=
    for pid in $told; do case $plain in *" $pid "*) left="$left $pid" ;; esac; done
    told=$left
    [ -n "$told" ] && sleep 0.01
done
end=$(( $(date +%s) + $1 ))
polls=0
# shellcheck disable=SC2086
while n=$(pgrep -c $parent -f "nginx: worker process is shutting down"); do
    if [ "$(date +%s)" -ge "$end" ]; then echo "$n"; exit 0; fi
    # Often at first: told workers with nothing in flight are gone within milliseconds.
    polls=$((polls + 1))
    if [ "$polls" -le 50 ]; then sleep 0.01; else sleep 0.1; fi
done
echo 0
'''

_HEADER = re.compile(r"^# (\d+) % canary \((\S+) on :\d+\)", re.M)


STAGING = f"{STATE_DIR}/staging"


def _staging(path: str) -> str:
    return f"{STAGING}/{path.strip('/').replace('/', '_')}"


# install and remove return nginx's workers before the reload (pids, space-separated; ""
# when unknown or nothing changed): a drain wait after the change takes them.
def install(host: Host, path: str, content: str, mode: int = 0o644, make_staging: bool = True) -> str:
    staged = _staging(path)
    if make_staging:
        host.run(["mkdir", "-p", STAGING])
    host.write_file(staged, content, mode)
    return _swap(host, path, staged)


def remove(host: Host, path: str) -> str:
    if read(host, path) is not None:
        return _swap(host, path, "")
    return ""


def _swap(host: Host, path: str, staged: str) -> str:
    # The script makes the staging directory, which holds the previous file meanwhile.
    try:
        return " ".join(host.sh(_INSTALL, path, staged, _staging(path) + ".prev").split())
    except RemoteError as err:
        raise RuntimeError(err.stderr.strip() or str(err)) from None


def read(host: Host, path: str) -> Optional[Split]:
    content = host.read_file(path)
    return None if content is None else parse(content)


def parse(content: str) -> Split:
    """The split a file holds, from the header our template writes."""
    m = _HEADER.search(content)
    # Not ours (e.g. the guide's hand-written file): the weight is unknown.
    return Split(weight=int(m.group(1)) if m else -1)


def wait_drained(host: Host, timeout: float, reloaded: str = "") -> bool:
    """Waits up to `timeout` s for nginx's old workers to finish their requests
    (`reloaded`: the workers before the last reload, as install/remove returned them).
    Whether they did; when not, the log says how many were still busy and after how long."""
    seconds = int(max(timeout, 0))
    out = host.sh(_WAIT_DRAINED, str(seconds), reloaded, timeout=timeout + 40).strip()
    busy = int(out) if out.isdigit() else -1
    if busy == 0:
        return True
    host.log(f"nginx did not drain within drain_timeout {seconds}s: "
             f"{busy if busy > 0 else 'some'} old worker process(es) still shutting down with "
             "requests in flight; going on (those requests may fail)")
    return False
