"""The framing of commands sent to one long-lived shell (canary/remote/shell.py), against
a local `sh -s` (the same script text the host's shell reads), and the pool of idle
sessions."""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import threading
import time

import pytest

from canary.remote.shell import Deadline, Pool, Shell, Stale, frame, new_marker, parse_stderr, parse_stdout


class LocalShell:
    """`sh -s` reading framed commands, as the host's shell does over its channel."""

    def __init__(self):
        self.p = subprocess.Popen(["sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)

    def run(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        marker = new_marker()
        self.p.stdin.write(frame(shlex.join(argv), marker))
        self.p.stdin.flush()
        out, err, got_out, got_err = b"", b"", None, None
        deadline = time.monotonic() + 10
        while got_out is None or got_err is None:
            assert time.monotonic() < deadline, (out, err)
            ready, _, _ = select.select([self.p.stdout, self.p.stderr], [], [], 1)
            for f in ready:
                data = os.read(f.fileno(), 65536)
                if f is self.p.stdout:
                    out += data
                    got_out = got_out or parse_stdout(out, marker)
                else:
                    err += data
                    got_err = got_err or parse_stderr(err, marker)
        assert got_out[2] == got_err[1] == b"", "nothing after the markers"
        return got_out[1], got_out[0], got_err[0]

    def close(self):
        self.p.stdin.close()
        self.p.wait(5)


@pytest.fixture
def shell():
    s = LocalShell()
    yield s
    s.close()


def test_output_status_and_streams_are_kept_apart(shell):
    assert shell.run(["printf", "no final newline"]) == (0, b"no final newline", b"")
    assert shell.run(["sh", "-c", "echo out; printf err >&2; exit 3"]) == (3, b"out\n", b"err")
    assert shell.run(["printf", "two\n\n"]) == (0, b"two\n\n", b"")
    assert shell.run(["true"]) == (0, b"", b"")
    assert shell.run(["false"])[0] == 1


def test_hostile_arguments_are_passed_literally(shell, tmp_path):
    flag = tmp_path / "executed"
    hostile = [f"$(touch {flag})", f"`touch {flag}`", f"; touch {flag}", "'", '"', "a\nb\n)\n",
               f")\ntouch {flag}\n(", "#", "\\", "*", "${HOME}", "canary-end-0 0"]
    status, out, err = shell.run(["printf", "%s\\0", *hostile])
    assert (status, err) == (0, b"")
    assert out.split(b"\0")[:-1] == [h.encode() for h in hostile]
    assert not flag.exists()


def test_commands_never_read_the_shells_stdin(shell):
    # `cat` would otherwise swallow the commands that follow it.
    assert shell.run(["cat"]) == (0, b"", b"")
    assert shell.run(["sh", "-c", "read line; echo \"read $?\""]) == (0, b"read 1\n", b"")
    assert shell.run(["echo", "still reading commands"]) == (0, b"still reading commands\n", b"")


def test_a_command_cannot_change_the_next_ones_environment(shell):
    shell.run(["sh", "-c", "true"])
    assert shell.run(["cd", "/"])[0] == 0
    assert shell.run(["exit", "4"])[0] == 4  # a subshell's exit, not the shell's
    assert shell.run(["pwd"])[1] == os.getcwd().encode() + b"\n"


def test_parse_waits_for_the_whole_marker_line():
    m = new_marker()
    whole = b"out\n" + f"\n{m} 0\n".encode()
    assert parse_stdout(whole[:-1], m) is None  # the status may have more digits to come
    assert parse_stdout(whole, m) == (b"out\n", 0, b"")
    assert parse_stdout(whole + b"late", m) == (b"out\n", 0, b"late")
    assert parse_stdout(f"\n{new_marker()} 0\n".encode(), m) is None  # another command's marker
    assert parse_stderr(f"e\n{m}".encode(), m) is None
    assert parse_stderr(f"e\n{m}\n".encode(), m) == (b"e", b"")


def test_frame_refuses_nul():
    with pytest.raises(ValueError):
        frame(shlex.join(["echo", "a\0b"]), new_marker())


class Item:
    def __init__(self, transport, ok=True):
        self.transport, self.ok, self.closed = transport, ok, False

    def usable(self):
        return self.ok and not self.closed

    def close(self):
        self.closed = True


def test_pool_lends_each_session_to_one_caller_and_drops_stale_ones():
    pool: Pool[Item] = Pool(max_idle=2)
    old, new = object(), object()
    a, b, c = Item(new), Item(new), Item(new)
    assert pool.take(new) is None
    for s in (a, b, c):
        pool.give(s)
    assert c.closed and len(pool) == 2  # beyond max_idle: closed
    first, second = pool.take(new), pool.take(new)
    assert {first, second} == {a, b} and pool.take(new) is None  # never the same one twice
    pool.give(first)
    first.ok = False  # ended while idle
    assert pool.take(new) is None and first.closed
    stale = Item(old)
    pool.give(stale)
    assert pool.take(new) is None and stale.closed  # of an older connection
    pool.give(second)
    pool.clear()
    assert second.closed and len(pool) == 0


class PipeChannel:
    """The few methods of a paramiko Channel that Shell uses, over a local process:
    the shell's start-up files are played by `banner` (printed before `sh -s` reads)."""

    def __init__(self, banner: str = ""):
        self.p = subprocess.Popen(["sh", "-c", f"{banner}exec sh -s"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.closed = False
        self.eof_received = False
        self.status_event = threading.Event()
        self.transport = self

    def is_active(self):
        return True

    def get_transport(self):
        return self

    def settimeout(self, t):
        pass

    def sendall(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def _ready(self, f):
        return bool(select.select([f], [], [], 0)[0])

    def recv_ready(self):
        return self._ready(self.p.stdout)

    def recv_stderr_ready(self):
        return self._ready(self.p.stderr)

    def recv(self, n):
        return os.read(self.p.stdout.fileno(), n)

    def recv_stderr(self, n):
        return os.read(self.p.stderr.fileno(), n)

    def exit_status_ready(self):
        return self.p.poll() is not None

    def close(self):
        self.closed = True
        self.p.kill()
        self.p.wait()


def test_start_up_output_is_dropped_and_pipelined_output_kept():
    chan = PipeChannel(banner="echo welcome; echo motd >&2; ")
    s = Shell(chan)
    s._pending = new_marker()
    chan.sendall(frame("true", s._pending))  # as Shell.open does
    time.sleep(0.2)  # the start-up marker and the command's output arrive in one read
    assert s.run(shlex.join(["printf", "first"]), time.monotonic() + 5) == (0, "first", "")
    assert s.run(shlex.join(["sh", "-c", "echo e >&2; exit 2"]), time.monotonic() + 5) == (2, "", "e\n")
    assert s.usable() and s.commands == 2
    chan.close()


def test_a_shell_whose_command_leaves_a_writer_behind_is_closed():
    chan = PipeChannel()
    s = Shell(chan)
    result = s.run(shlex.join(["sh", "-c", "(sleep 0.3; echo late) & echo now"]), time.monotonic() + 5)
    time.sleep(0.5)
    assert result == (0, "now\n", "")
    # The late line came after the marker of its command: never the next command's output.
    assert not s.usable() and chan.closed
    with pytest.raises(Stale):
        s.run(shlex.join(["echo", "next"]), time.monotonic() + 5)


def test_a_command_past_its_deadline_raises():
    chan = PipeChannel()
    s = Shell(chan)
    with pytest.raises(Deadline):
        s.run(shlex.join(["sleep", "5"]), time.monotonic() + 0.3)
    chan.close()
