"""The host lock: one change at a time to an app's nginx files and containers.

It is a `flock` on /var/lib/canary/APP.lock held by a command that lives as long as
our SSH session and our heartbeats: the deployment sends a line every few seconds, and
the holder releases the lock when none came for `expire_seconds` (a deployer gone
behind a network partition, whose session sshd keeps open) or the session ends (the
deployment or its machine died). A deployment that finds the lock busy says who holds
it, since when, and when that holder last gave a sign of life.

When our SSH connection drops, the lock goes with it: the Host takes it again before
it runs any further command, and stops the run (ssh.LockLost) when somebody else held
the lock meanwhile. The nginx site script takes the same lock, so two stacks aimed at
the same host and app cannot interleave their changes.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Optional

import paramiko

from ..errors import CanaryError
from .ssh import OPEN_TIMEOUT, Host

# $1 lock file, $2 holder line, $3 seconds to wait for the lock, $4 seconds without a
# heartbeat after which the lock is released. bash: `read -t`. Taking a free lock forks
# flock alone (builtins for the rest): on a busy droplet every fork costs. A busy lock
# is said at once (WAITING: who holds it, since when), then waited for.
_HOLD = r'''
[ -d "${1%/*}" ] || mkdir -p "${1%/*}"
exec 9>>"$1"
held() {
    now=$(date +%s)
    since=$(stat -c %Y "$1.holder" 2>/dev/null || echo "$now")
    beat=$(stat -c %Y "$1.beat" 2>/dev/null || echo "$since")
    echo "$2 $((now - since)) $((now - beat)) $(head -c 300 "$1.holder" 2>/dev/null)"
}
if ! flock -n 9; then
    held "$1" WAITING
    flock -w "$3" 9 || { held "$1" BUSY; exit 75; }
fi
prev=
IFS= read -r prev 2>/dev/null <"$1.holder"
prev=${prev:0:300}
printf '%s\n' "$2" >"$1.holder"
: >"$1.beat"
echo "LOCKED $prev"
while IFS= read -r -t "$4" _; do : >"$1.beat"; done
'''

HEARTBEAT_SECONDS = 5
EXPIRE_SECONDS = 30


class HostBusy(CanaryError):
    """Another deployment holds the host lock (the message says who, since when)."""


def busy_message(path: str, line: str, waited: float) -> str:
    """The waiter's message from the holder script's `BUSY <held s> <beat s> <holder>`."""
    parts = line.split(" ", 3)
    if len(parts) >= 3 and parts[0] == "BUSY" and parts[1].isdigit() and parts[2].isdigit():
        holder = parts[3].strip() if len(parts) == 4 else ""
        return (f"another deployment holds the host lock {path} (holder: {holder or 'unknown'}; "
                f"held for {parts[1]}s, last heartbeat {parts[2]}s ago); waited {waited:g}s")
    return f"could not take the host lock {path}: {line or 'no answer'}"


def waiting_message(path: str, buf: bytes, wait: float) -> Optional[str]:
    """What a deployer says while it waits, from the holder script's `WAITING <held s>
    <beat s> <holder>` line (None before it came)."""
    for raw in buf.split(b"\n")[:-1]:
        parts = raw.decode(errors="replace").strip().split(" ", 3)
        if len(parts) >= 3 and parts[0] == "WAITING" and parts[1].isdigit() and parts[2].isdigit():
            holder = parts[3].strip() if len(parts) == 4 else "unknown"
            return (f"waiting up to {wait:g}s for the host lock {path}: held by {holder} for {parts[1]}s "
                    f"(last heartbeat {parts[2]}s ago)")
    return None


def answer_line(buf: bytes) -> Optional[str]:
    """The holder script's LOCKED/BUSY line in what the session printed so far, or None.
    Lines before it (a login shell's rc files, a motd printer) are not ours: skipped."""
    for raw in buf.split(b"\n")[:-1]:  # complete lines only
        line = raw.decode(errors="replace").strip()
        if line == "LOCKED" or line.startswith(("LOCKED ", "BUSY")):
            return line
    return None


class HostLock:
    def __init__(self, host: Host, path: str, holder: str, wait_seconds: int = 60,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, expire_seconds: int = EXPIRE_SECONDS):
        self.host, self.path, self.wait = host, path, wait_seconds
        # Unique, so that taking the lock back after a reconnect can tell whether
        # somebody else held it meanwhile.
        self.holder = f"{holder} [{uuid.uuid4().hex[:8]}]"
        self.heartbeat, self.expire = heartbeat_seconds, int(expire_seconds)
        self._chan: Optional[paramiko.Channel] = None
        self._stop = threading.Event()
        self._beats: Optional[threading.Thread] = None

    # -- taking it ------------------------------------------------------------------------
    def _take(self, wait: float, client: Optional[paramiko.SSHClient] = None) -> tuple[paramiko.Channel, str]:
        """Runs the holder; returns its channel and the previous holder line."""
        # --norc --noprofile: bash run under sshd reads ~/.bashrc, which on many hosts
        # starts tools (pyenv, nvm) that cost more than the lock itself.
        chan = self.host.open_session(["bash", "--norc", "--noprofile", "-c", _HOLD, "bash", self.path,
                                       self.holder, str(int(wait)), str(self.expire)], client=client)
        buf = b""
        said = False
        deadline = time.monotonic() + wait + 30
        while answer_line(buf) is None and (left := deadline - time.monotonic()) > 0:
            if not said and (waiting := waiting_message(self.path, buf, wait)):
                self.host.log(waiting)  # a deployer never waits silently
                said = True
            chan.settimeout(left)
            try:
                data = chan.recv(4096)
            except socket.timeout:
                break
            if not data:  # the holder exited (busy) and said why, or the session ended
                break
            buf += data
        chan.settimeout(OPEN_TIMEOUT)  # (heartbeats must not block forever either)
        line = answer_line(buf)
        if line is None:  # no answer: say what came instead (the session's own words)
            line = buf.decode(errors="replace").strip()[-300:]
        if line != "LOCKED" and not line.startswith("LOCKED "):
            chan.close()
            raise HostBusy(busy_message(self.path, line, wait))
        return chan, line[len("LOCKED"):].strip()

    def __enter__(self) -> "HostLock":
        self._chan, _ = self._take(self.wait)
        self.host.holding = self
        self._stop.clear()
        self._beats = threading.Thread(target=self._beat, daemon=True)
        self._beats.start()
        return self

    def alive(self) -> bool:
        """Whether our holder still runs (the lock is ours)."""
        chan = self._chan
        return chan is not None and not chan.closed and not chan.exit_status_ready()

    def retake(self, client: paramiko.SSHClient) -> None:
        """Takes the lock again on a new connection (our old holder, if sshd still keeps
        it, expires meanwhile). Refuses when another deployment held it in between."""
        old = self._chan
        if old is not None:
            old.close()
        self._chan = None
        chan, previous = self._take(self.expire + 10, client=client)
        if previous != self.holder:
            chan.close()  # give it back: somebody else changed the host meanwhile
            raise HostBusy(f"another deployment held it meanwhile ({previous or 'unknown'})")
        self._chan = chan

    # -- keeping it -----------------------------------------------------------------------
    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            chan = self._chan
            if chan is None:
                continue
            try:
                chan.send(b".\n")
            except Exception:
                pass  # a dropped connection: the next command reconnects and retakes the lock

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.host.release_lock(self)
        chan, self._chan = self._chan, None
        if chan is not None:
            try:
                chan.shutdown_write()  # the holder sees EOF, the lock is released
            except Exception:
                pass
            chan.close()
