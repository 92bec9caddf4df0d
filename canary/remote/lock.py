"""The host lock: one change at a time to an app's nginx files and containers.

It is a `flock` on /var/lib/canary/APP.lock held by a command that lives as long as
our SSH session: if the deployment (or the machine running it) dies, sshd ends the
session and the kernel releases the lock. The nginx site script takes the same lock,
so two stacks aimed at the same host and app cannot interleave their changes.
"""

from __future__ import annotations

import time

from .ssh import Host

_HOLD = r'''
mkdir -p "$(dirname "$1")"
exec 9>>"$1"
if ! flock -w "$3" 9; then
    echo "BUSY $(cat "$1.holder" 2>/dev/null)"
    exit 75
fi
printf '%s\n' "$2" >"$1.holder"
echo LOCKED
exec cat >/dev/null
'''


class HostBusy(Exception):
    pass


class HostLock:
    def __init__(self, host: Host, path: str, holder: str, wait_seconds: int = 60):
        self.host, self.path, self.holder, self.wait = host, path, holder, wait_seconds
        self._chan = None

    def __enter__(self) -> "HostLock":
        chan = self.host.open_session(["sh", "-c", _HOLD, "sh", self.path, self.holder, str(self.wait)])
        buf = b""
        deadline = time.monotonic() + self.wait + 30
        while b"\n" not in buf and time.monotonic() < deadline:
            if chan.recv_ready():
                buf += chan.recv(4096)
            elif chan.exit_status_ready():
                buf += chan.recv(4096)
                break
            else:
                time.sleep(0.05)
        line = buf.decode(errors="replace").strip()
        if line != "LOCKED":
            chan.close()
            holder = line[len("BUSY"):].strip() if line.startswith("BUSY") else line
            raise HostBusy(f"another deployment holds the host lock {self.path} "
                           f"(holder: {holder or 'unknown'}); waited {self.wait}s")
        self._chan = chan
        return self

    def __exit__(self, *exc) -> None:
        if self._chan is not None:
            self._chan.shutdown_write()  # cat sees EOF, the lock is released
            self._chan.close()
            self._chan = None
