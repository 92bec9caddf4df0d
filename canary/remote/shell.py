"""Commands through one long-lived `sh -s` on the host instead of an SSH session each.

Opening a session costs a round trip, and sshd forks the user's shell (with its start-up
files) for every command. A shell started once reads commands on its stdin instead:
each command is the same `shlex.join`ed argument list ssh.Host would have exec'd, run
in a subshell with its stdin from /dev/null (so it can never read the commands that
follow), and followed by a random end marker on stdout (with the exit status) and on
stderr. The channel's two streams keep stdout and stderr apart; the newline written
before each marker keeps output that has no final newline of its own intact.

A shell is used by one command at a time (Pool hands idle shells out). One whose command
timed out, whose channel broke or that wrote after its marker or while idle is closed, never
reused: whatever it was still doing would run into the next command's output.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import Generic, Optional, Protocol, TypeVar

import paramiko

# What the channel runs: a POSIX shell reading its commands from stdin.
SHELL_COMMAND = "exec sh -s"


class Deadline(Exception):
    """The command did not finish before its deadline."""


class Stale(EOFError):
    """The shell ended or wrote something while idle: the command was not sent, and can
    go to another shell (an EOFError: when that fails too, the connection is suspect)."""


# -- the framing (pure) ---------------------------------------------------------------------
def new_marker() -> str:
    """An end marker no command output can contain by chance or guess."""
    return "canary-end-" + secrets.token_hex(16)


def frame(command: str, marker: str) -> bytes:
    """The script text that runs `command` (a shlex.join'ed argument list) once.

    The command stands on lines of its own inside the parentheses, so that nothing it
    contains can end the subshell or reach the lines after it except as quoted text.
    """
    if "\0" in command:
        raise ValueError("a remote command cannot contain a NUL byte")
    return (f"(\n{command}\n) </dev/null\n"
            f"printf '\\n%s %d\\n' {marker} \"$?\"\n"
            f"printf '\\n%s\\n' {marker} >&2\n").encode()


def parse_stdout(buf: bytes, marker: str) -> Optional[tuple[bytes, int, bytes]]:
    """(the command's stdout, its status, what followed the marker line) once `buf`
    holds the marker line; None while more is to come."""
    m = re.search(b"\n" + marker.encode() + rb" (\d+)\n", buf)
    if m is None:
        return None
    return buf[:m.start()], int(m.group(1)), buf[m.end():]


def parse_stderr(buf: bytes, marker: str) -> Optional[tuple[bytes, bytes]]:
    """(the command's stderr, what followed the marker line) once `buf` holds the
    marker line; None while more is to come."""
    tag = f"\n{marker}\n".encode()
    at = buf.find(tag)
    if at < 0:
        return None
    return buf[:at], buf[at + len(tag):]


# -- one shell ------------------------------------------------------------------------------
class Shell:
    """A `sh -s` on one channel of one SSH connection."""

    def __init__(self, chan: paramiko.Channel):
        self.chan = chan
        self.transport = chan.get_transport()
        self.commands = 0  # how many commands it ran (tests, diagnostics)

    @classmethod
    def open(cls, transport: paramiko.Transport, open_timeout: float) -> "Shell":
        chan = transport.open_session(timeout=open_timeout)
        try:
            chan.exec_command(SHELL_COMMAND)
        except BaseException:
            chan.close()
            raise
        shell = cls(chan)
        # Whatever the user's start-up files print goes to this marker, not to the
        # first command's output. Not waited for: it arrives before that output.
        shell._pending = new_marker()
        chan.sendall(frame("true", shell._pending))
        return shell

    _pending: Optional[str] = None

    def usable(self) -> bool:
        c = self.chan
        if c.closed or c.exit_status_ready() or c.eof_received or not self.transport.is_active():
            return False
        if self._pending is None and (c.recv_ready() or c.recv_stderr_ready()):
            self.close()  # output while idle: something a command left running writes
            return False
        return True

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:
            pass

    def run(self, command: str, deadline: float) -> tuple[int, str, str]:
        """Runs one command; (status, stdout, stderr). Deadline past `deadline`; EOFError
        when the connection went away; (-1, ...) when the shell itself was killed with
        the connection still up (a failure of the command, as a signal would be)."""
        if not self.usable():
            raise Stale()
        marker = new_marker()
        self.chan.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            self.chan.sendall(frame(command, marker))
        except OSError:
            if self.transport.is_active():
                self.close()
                raise Stale() from None
            raise
        pending, self._pending = self._pending, None
        out, err = b"", b""
        if pending is not None:  # the start-up output, dropped; what follows is the command's
            _, _, _, out, err = self._read(pending, deadline, out, err)
        status, out, err, rest_out, rest_err = self._read(marker, deadline, out, err)
        if rest_out or rest_err or self.chan.recv_ready() or self.chan.recv_stderr_ready():
            # Something the command left running still writes: the result is whole
            # (the marker came after the command's own output), the shell is not.
            self.close()
        self.commands += 1
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def _read(self, marker: str, deadline: float, out: bytes, err: bytes):
        """(status, stdout, stderr, stdout and stderr after the markers), reading on from
        what was already received (`out`, `err`)."""
        chan = self.chan
        got_out, got_err = parse_stdout(out, marker), parse_stderr(err, marker)
        while got_out is None or got_err is None:
            if chan.recv_ready():
                out += chan.recv(65536)
                got_out = parse_stdout(out, marker)
            elif chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                got_err = parse_stderr(err, marker)
            elif chan.closed or chan.exit_status_ready() or chan.eof_received \
                    or not self.transport.is_active():
                # The shell ended before the marker: the connection went away (then
                # EOFError, to be retried), or the shell was killed under the command.
                settle = time.monotonic() + 1
                while self.transport.is_active() and time.monotonic() < settle:
                    time.sleep(0.05)
                if not self.transport.is_active():
                    raise EOFError("the SSH connection closed before the command exited")
                self.close()
                return -1, out, err, b"", b""
            elif time.monotonic() > deadline:
                raise Deadline()
            else:
                chan.status_event.wait(0.005)  # wakes early when the shell exits
        return got_out[1], got_out[0], got_err[0], got_out[2], got_err[1]


# -- idle sessions per connection -----------------------------------------------------------
class Session(Protocol):
    transport: object

    def usable(self) -> bool: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Session)


class Pool(Generic[S]):
    """Idle sessions (shells, SFTP clients) of a connection, each lent to one caller at
    a time: concurrent callers get sessions of their own. Sessions of an older
    connection, or that ended while idle, are closed instead of handed out."""

    def __init__(self, max_idle: int = 4):
        self.max_idle = max_idle
        self._idle: list[S] = []
        self._lock = threading.Lock()

    def take(self, transport) -> Optional[S]:
        with self._lock:
            while self._idle:
                s = self._idle.pop()
                if s.transport is transport and s.usable():
                    return s
                s.close()
        return None

    def give(self, session: S) -> None:
        with self._lock:
            if session.usable() and len(self._idle) < self.max_idle:
                self._idle.append(session)
                return
        session.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for s in idle:
            s.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle)
