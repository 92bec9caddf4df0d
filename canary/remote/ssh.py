"""SSH to the host: the one place where remote commands are built and run.

Commands are argument lists joined with `shlex.join`, so no value is ever interpolated
into a shell line unquoted. They run in long-lived shells of the connection (shell.py;
a command with stdin gets an SSH session of its own), and SFTP sessions are reused too:
opening one costs a round trip. File contents travel over SFTP (never on a command
line, so secrets stay out of the host's process list). The host key is pinned: it is
checked during the key exchange, before any credential is sent. Probes reach the app's ports
through SSH port forwarding, so only port 22 of the host needs to be reachable.

Every command and SFTP operation has a time limit (CommandTimeout, never retried). A
dropped connection is retried once on a new connection, is never read as an exit
status or an empty result, and takes the host lock back first (see lock.py).
"""

from __future__ import annotations

import base64
import io
import logging
import shlex
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import paramiko

from ..errors import CanaryError
from ..target import Target  # noqa: F401  (the type it connects with; importable from here)
from .shell import Deadline, Pool, Shell, Stale


def _not_a_refused_forward(record: logging.LogRecord) -> bool:
    """paramiko logs every port-forward channel the host refuses ("Secsh channel N open
    FAILED: Connection refused"): a health probe of an app that does not listen yet, every
    0.02 s. The probe already says what it got; one line a step is enough."""
    message = record.getMessage()
    return not ("Secsh channel" in message and "open FAILED" in message)


logging.getLogger("paramiko.transport").addFilter(_not_a_refused_forward)


class RemoteError(CanaryError):
    """A remote command failed; carries its exit status and output."""

    def __init__(self, argv: Sequence[str], status: int, stdout: str, stderr: str):
        self.argv, self.status, self.stdout, self.stderr = list(argv), status, stdout, stderr
        detail = (stderr or stdout).strip().splitlines()
        super().__init__(f"`{shlex.join(argv)[:200]}` exited with {status}"
                         + (f": {detail[-1][:300]}" if detail else ""))


class ConnectionFailed(CanaryError):
    """The host cannot be reached or refused us (after the retries)."""


class CommandTimeout(CanaryError):
    """A remote command (or SFTP operation) did not finish in time. Never retried: the
    command may have taken effect, or may still be running."""

    def __init__(self, what: str, seconds: float):
        self.what, self.seconds = what, seconds
        super().__init__(f"{what} did not finish within {seconds:g}s on the host (hung command or "
                         "dead connection); stopped waiting for it")


class LockLost(CanaryError):
    """The host lock went away with a dropped connection and could not be taken back
    safely: nothing more may change on the host in this run."""


# Default time limits (seconds).
COMMAND_TIMEOUT = 300
SFTP_TIMEOUT = 60
OPEN_TIMEOUT = 30   # opening a channel
ALIVE_TIMEOUT = 10  # the liveness check after a timeout


def _load_key(text: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise ConnectionFailed("the SSH private key is not an unencrypted ed25519, ECDSA or RSA key")


def _refused(t: Target, err: BaseException) -> Optional[ConnectionFailed]:
    """The error that says why the host refused us (host key, authentication), or None
    for a failure worth retrying."""
    if isinstance(err, paramiko.BadHostKeyException):
        return ConnectionFailed(
            f"{t.host}:{t.port} offered host key {err.key.get_name()} {err.key.get_base64()[:24]}..., "
            "which is not the pinned canary:ssh_host_key: refusing to connect")
    if isinstance(err, paramiko.AuthenticationException):
        return ConnectionFailed(f"{t.user}@{t.host}:{t.port}: authentication failed ({err})")
    if isinstance(err, paramiko.SSHException) and "not found in known_hosts" in str(err):
        return ConnectionFailed(f"{t.host}:{t.port} offered no key of the pinned type")
    return None


class Host:
    """A connection to the host, re-established with backoff when it drops."""

    def __init__(self, target: Target, retries: int = 5, log: Callable[[str], None] = lambda m: None):
        self.target = target
        self.retries = retries
        self.log = log
        self._client: Optional[paramiko.SSHClient] = None
        self._lock = threading.Lock()
        self.connects = 0  # how many times a connection was (re-)established
        # The host lock held through this connection (lock.HostLock), if any: when the
        # connection is re-established, or the lock's session ended, it is taken again
        # before any further command runs (or the run stops with LockLost).
        self.holding = None
        self._lost: Optional[LockLost] = None
        # Idle shells and SFTP sessions of the current connection, reused rather than
        # opened again for every command (each opening is a round trip, and a fork of
        # the user's shell on the host).
        self._shells: Pool[Shell] = Pool()
        self._sftps: Pool[_Sftp] = Pool(max_idle=2)

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> paramiko.SSHClient:
        t = self.target
        client = paramiko.SSHClient()
        entry = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
        kind, b64 = t.host_key.split()[:2]
        key = paramiko.PKey.from_type_string(kind, base64.b64decode(b64))
        client.get_host_keys().add(entry, kind, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        # Each SSH packet goes out at once. With Nagle's algorithm, one written right
        # after another waits for the host's delayed ACK (40 ms): in the key exchange, and
        # in commands and SFTP operations while port-forwarded probes share the connection.
        sock = socket.create_connection((t.host, t.port), timeout=15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            client.connect(t.host, port=t.port, username=t.user, pkey=_load_key(t.private_key), sock=sock,
                           timeout=15, banner_timeout=15, auth_timeout=15,
                           allow_agent=False, look_for_keys=False)
        except BaseException as err:
            client.close()
            sock.close()
            refused = _refused(t, err)
            if refused is None:
                raise
            raise refused from None
        transport = client.get_transport()
        transport.set_keepalive(10)
        return client

    def client(self) -> paramiko.SSHClient:
        with self._lock:
            if self._lost is not None:
                raise self._lost
            c = self._client
            if c is not None and c.get_transport() is not None and c.get_transport().is_active():
                self._keep_lock(c)
                return c
            delay = 1.0
            for attempt in range(1, self.retries + 1):
                try:
                    self._client = self._connect()
                    self.connects += 1
                    self._keep_lock(self._client)
                    return self._client
                except ConnectionFailed:
                    raise
                except (OSError, paramiko.SSHException, EOFError) as err:
                    if attempt == self.retries:
                        raise ConnectionFailed(f"cannot reach {self.target.host}:{self.target.port} over SSH "
                                               f"after {attempt} attempts: {err}") from None
                    self.log(f"SSH connection to {self.target.host} failed ({err}); retrying in {delay:.0f}s")
                    time.sleep(delay)
                    delay = min(delay * 2, 15)
            raise AssertionError("unreachable")

    def _keep_lock(self, client: paramiko.SSHClient) -> None:
        """Takes the host lock again when its session is gone (a new connection, or the
        holder expired); stops everything for good when that is not safe."""
        held = self.holding
        if held is None or held.alive():
            return
        try:
            held.retake(client)
            self.log(f"SSH connection to {self.target.host} re-established; host lock {held.path} taken again")
        except Exception as err:
            self._lost = LockLost(
                f"the host lock {held.path} was lost with the SSH connection to {self.target.host} "
                f"and could not be taken back ({err}); stopping before any further change to the host. "
                "Run `pulumi refresh`, then `pulumi up`")
            raise self._lost from None

    def release_lock(self, lock) -> None:
        """The lock was released on purpose: stop keeping it (and forget a loss)."""
        with self._lock:
            if self.holding is lock:
                self.holding = None
                self._lost = None

    def close(self) -> None:
        self._shells.clear()
        self._sftps.clear()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- commands ---------------------------------------------------------------------
    def run(self, argv: Sequence[str], check: bool = True, stdin: Optional[str] = None,
            timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, str]:
        """Runs one command (an argument list) and returns (status, stdout, stderr).

        Commands without stdin run in one of the connection's shells (shell.py), one
        command per shell at a time; a command with stdin gets an SSH session of its own.
        A dropped connection is retried once on a fresh connection: callers only run
        commands that are safe to repeat (inspections and idempotent changes). A command
        that does not finish within `timeout` seconds raises CommandTimeout (not retried).
        """
        command = shlex.join(argv)
        shown = f"`{command[:120]}`"
        for attempt in (1, 2):
            deadline = time.monotonic() + timeout
            transport = self.client().get_transport()
            try:
                if stdin is None:
                    status, out, err = self._in_shell(transport, command, deadline, timeout)
                else:
                    status, out, err = _exec(transport, command, stdin, deadline, timeout)
                break
            except (socket.timeout, _Deadline):
                self._check_alive()
                raise CommandTimeout(shown, timeout) from None
            except (OSError, EOFError, paramiko.SSHException) as err:
                self.close()
                if attempt == 2:
                    raise ConnectionFailed(f"SSH connection lost while running {shown}: {err}") from None
                self.log(f"SSH connection dropped ({err or type(err).__name__}); reconnecting")
        if check and status != 0:
            raise RemoteError(argv, status, out, err)
        return status, out, err

    def _in_shell(self, transport: paramiko.Transport, command: str, deadline: float,
                  timeout: float) -> tuple[int, str, str]:
        """Runs `command` in an idle shell of this connection (a new one when all are
        busy); the shell goes back to the pool only when the command ended normally."""
        sh = self._shells.take(transport) or Shell.open(transport, min(OPEN_TIMEOUT, timeout))
        try:
            try:
                result = sh.run(command, deadline)
            except Stale:
                sh = Shell.open(transport, min(OPEN_TIMEOUT, timeout))
                result = sh.run(command, deadline)
        except BaseException:
            sh.close()  # timed out or broken: whatever it still does stays out of the next command
            raise
        self._shells.give(sh)
        return result

    def _check_alive(self) -> None:
        """After a timeout: a connection that cannot run `true` quickly is dead (a silent
        network failure); drop it so that the next command reconnects."""
        try:
            chan = self.client().get_transport().open_session(timeout=ALIVE_TIMEOUT)
            chan.settimeout(ALIVE_TIMEOUT)
            chan.exec_command("true")
            _drain(chan, time.monotonic() + ALIVE_TIMEOUT)
            chan.close()
        except (LockLost, ConnectionFailed):
            raise
        except Exception:
            self.log(f"SSH connection to {self.target.host} does not answer; dropping it")
            self.close()

    def sh(self, script: str, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> str:
        """Runs a fixed shell `script` with `args` as its positional parameters ($1...)."""
        return self.run(["sh", "-c", script, "sh", *args], check=check, timeout=timeout)[1]

    def write_file(self, path: str, content: str, mode: int = 0o644, timeout: float = SFTP_TIMEOUT) -> None:
        """Writes `content` to `path` atomically (temporary file, then rename). The
        temporary file is created with `mode` (never readable by others, not even for an
        instant, when `mode` says so)."""
        tmp = f"{path}.tmp-canary"

        def write(sftp: paramiko.SFTPClient) -> None:
            try:
                sftp.remove(tmp)  # a leftover of an interrupted write, maybe with another mode
            except FileNotFoundError:
                pass
            with _create(sftp, tmp, mode) as f:
                f.write(content.encode())
            sftp.chmod(tmp, mode)  # the exact mode, whatever the server's umask took away
            sftp.posix_rename(tmp, path)
        self._sftp(f"SFTP write of {path}", write, timeout)

    def read_file(self, path: str, timeout: float = SFTP_TIMEOUT) -> Optional[str]:
        """The file's text, or None when it does not exist (any other failure raises)."""
        def read(sftp: paramiko.SFTPClient) -> Optional[str]:
            try:
                with sftp.file(path, "r") as f:
                    return f.read().decode(errors="replace")
            except FileNotFoundError:
                return None
        return self._sftp(f"SFTP read of {path}", read, timeout)

    def _sftp(self, what: str, operation: Callable[[paramiko.SFTPClient], object], timeout: float):
        """Runs `operation` on an SFTP session of this connection whose every wait is
        bounded by `timeout`. A dropped connection is retried once (the operations are
        idempotent); an error of the operation itself (permission denied, no such
        directory) raises, and leaves the session usable."""
        for attempt in (1, 2):
            transport = self.client().get_transport()
            session = None
            try:
                session = self._sftps.take(transport) or _Sftp.open(transport, min(OPEN_TIMEOUT, timeout))
                session.sftp.get_channel().settimeout(timeout)
                result = operation(session.sftp)
            except socket.timeout:
                if session is not None:
                    session.close()  # its answer may still come: never reused
                self._check_alive()
                raise CommandTimeout(what, timeout) from None
            except (OSError, EOFError, paramiko.SSHException) as err:
                if isinstance(err, OSError) and transport.is_active() and session is not None:
                    self._sftps.give(session)
                    raise  # the operation failed, not the connection
                if session is not None:
                    session.close()
                self.close()
                if attempt == 2:
                    raise ConnectionFailed(f"SSH connection lost during the {what}: {err}") from None
                self.log(f"SSH connection dropped ({err or type(err).__name__}); reconnecting")
            except BaseException:
                if session is not None:
                    session.close()
                raise
            else:
                self._sftps.give(session)
                return result

    # -- a session that holds something open ------------------------------------------
    def open_session(self, argv: Sequence[str], client: Optional[paramiko.SSHClient] = None) -> paramiko.Channel:
        """Starts a long-running command; closing the channel (or losing the connection)
        ends it. Used for the host lock (on `client` while it is being re-established)."""
        chan = (client or self.client()).get_transport().open_session(timeout=OPEN_TIMEOUT)
        chan.settimeout(OPEN_TIMEOUT)
        chan.exec_command(shlex.join(argv))
        return chan

    # -- port forwarding --------------------------------------------------------------
    @contextmanager
    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        """Listens on a local port that tunnels to remote_host:remote_port on the host."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        stop = threading.Event()

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except Exception:
                pass
            finally:
                # shutdown first: close() alone leaves the socket open while the other
                # direction's thread is blocked reading it, so a backend that closed (an
                # app not listening yet) made the client wait for its whole timeout.
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except Exception:
                        pass
                    try:
                        s.close()
                    except Exception:
                        pass

        def accept():
            while not stop.is_set():
                try:
                    sock, peer = server.accept()
                except OSError:
                    return
                try:
                    chan = self.client().get_transport().open_channel(
                        "direct-tcpip", (remote_host, remote_port), peer, timeout=10)
                except Exception:
                    sock.close()
                    continue
                threading.Thread(target=pipe, args=(sock, chan), daemon=True).start()
                threading.Thread(target=pipe, args=(chan, sock), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        try:
            yield server.getsockname()[1]
        finally:
            stop.set()
            server.close()


def _create(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """Creates a new file with `mode` set by the SFTP OPEN request itself (O_CREAT|O_EXCL
    with the permissions), as `open(path, O_CREAT | O_EXCL, mode)` would: paramiko's
    `open` sends no permissions, so the file would exist with the server's default mode
    until a chmod."""
    from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = mode
    kind, msg = sftp._request(CMD_OPEN, sftp._adjust_cwd(path),
                              SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, attrs)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    return paramiko.SFTPFile(sftp, msg.get_binary(), "w")


_Deadline = Deadline


class _Sftp:
    """An SFTP session kept for the connection's next operations (see shell.Pool)."""

    def __init__(self, sftp: paramiko.SFTPClient, transport: paramiko.Transport):
        self.sftp, self.transport = sftp, transport

    @classmethod
    def open(cls, transport: paramiko.Transport, open_timeout: float) -> "_Sftp":
        chan = transport.open_session(timeout=open_timeout)
        try:
            chan.invoke_subsystem("sftp")
            return cls(paramiko.SFTPClient(chan), transport)
        except BaseException:
            chan.close()
            raise

    def usable(self) -> bool:
        chan = self.sftp.get_channel()
        return not chan.closed and not chan.eof_received and self.transport.is_active()

    def close(self) -> None:
        try:
            self.sftp.close()
        except Exception:
            pass


def _exec(transport: paramiko.Transport, command: str, stdin: str, deadline: float,
          timeout: float) -> tuple[int, str, str]:
    """Runs `command` in an SSH session of its own, `stdin` sent to it."""
    chan = transport.open_session(timeout=min(OPEN_TIMEOUT, timeout))
    try:
        chan.settimeout(max(timeout, 0.1))
        chan.exec_command(command)
        chan.sendall(stdin.encode())
        chan.shutdown_write()
        out, err = _drain(chan, deadline)
        return chan.recv_exit_status(), out, err
    finally:
        chan.close()


def _drain(chan: paramiko.Channel, deadline: float) -> tuple[str, str]:
    """Reads stdout and stderr until the command exits; _Deadline after `deadline`,
    EOFError when the connection went away first."""
    out, err = [], []
    while True:
        if chan.recv_ready():
            out.append(chan.recv(65536))
        elif chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))
        elif chan.status_event.is_set() and chan.exit_status != -1:  # the exit status arrived
            break
        elif chan.closed or chan.status_event.is_set() or not chan.get_transport().is_active():
            # Closed without an exit status: the connection went away (not a status to
            # act on: paramiko reports -1), or the command was killed by a signal (-1, a
            # failure of the command).
            transport = chan.get_transport()
            settle = time.monotonic() + 1
            while transport.is_active() and time.monotonic() < settle:
                time.sleep(0.05)
            if not transport.is_active():
                raise EOFError("the SSH connection closed before the command exited")
            break
        elif time.monotonic() > deadline:
            raise _Deadline()
        else:
            time.sleep(0.01)
    return b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")
