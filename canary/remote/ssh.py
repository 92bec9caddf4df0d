"""SSH to the host: the one place where remote commands are built and run.

Commands are argument lists joined with `shlex.join`, so no value is ever interpolated
into a shell line unquoted. File contents travel over SFTP (never on a command line,
so secrets stay out of the host's process list). The host key is pinned: it is checked
during the key exchange, before any credential is sent. Probes reach the app's ports
through SSH port forwarding, so only port 22 of the host needs to be reachable.
"""

from __future__ import annotations

import base64
import io
import shlex
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import paramiko


class RemoteError(Exception):
    """A remote command failed; carries its exit status and output."""

    def __init__(self, argv: Sequence[str], status: int, stdout: str, stderr: str):
        self.argv, self.status, self.stdout, self.stderr = list(argv), status, stdout, stderr
        detail = (stderr or stdout).strip().splitlines()
        super().__init__(f"`{shlex.join(argv)[:200]}` exited with {status}"
                         + (f": {detail[-1][:300]}" if detail else ""))


class ConnectionFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    host_key: str  # "ssh-ed25519 AAAA..."
    private_key: str

    def __repr__(self) -> str:  # never show the key
        return f"Target({self.user}@{self.host}:{self.port})"


def _load_key(text: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise ConnectionFailed("the SSH private key is not an unencrypted ed25519, ECDSA or RSA key")


class Host:
    """A connection to the host, re-established with backoff when it drops."""

    def __init__(self, target: Target, retries: int = 5, log: Callable[[str], None] = lambda m: None):
        self.target = target
        self.retries = retries
        self.log = log
        self._client: Optional[paramiko.SSHClient] = None
        self._lock = threading.Lock()
        self.connects = 0  # how many times a connection was (re-)established

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> paramiko.SSHClient:
        t = self.target
        client = paramiko.SSHClient()
        entry = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
        kind, b64 = t.host_key.split()[:2]
        key = paramiko.PKey.from_type_string(kind, base64.b64decode(b64))
        client.get_host_keys().add(entry, kind, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(t.host, port=t.port, username=t.user, pkey=_load_key(t.private_key),
                           timeout=15, banner_timeout=15, auth_timeout=15,
                           allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as err:
            raise ConnectionFailed(
                f"{t.host}:{t.port} offered host key {err.key.get_name()} {err.key.get_base64()[:24]}..., "
                "which is not the pinned canary:ssh_host_key: refusing to connect") from None
        except paramiko.AuthenticationException as err:
            raise ConnectionFailed(f"{t.user}@{t.host}:{t.port}: authentication failed ({err})") from None
        except paramiko.SSHException as err:
            if "not found in known_hosts" in str(err):
                raise ConnectionFailed(f"{t.host}:{t.port} offered no key of the pinned type") from None
            raise
        transport = client.get_transport()
        transport.set_keepalive(10)
        return client

    def client(self) -> paramiko.SSHClient:
        with self._lock:
            c = self._client
            if c is not None and c.get_transport() is not None and c.get_transport().is_active():
                return c
            delay = 1.0
            for attempt in range(1, self.retries + 1):
                try:
                    self._client = self._connect()
                    self.connects += 1
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

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- commands ---------------------------------------------------------------------
    def run(self, argv: Sequence[str], check: bool = True, stdin: Optional[str] = None,
            timeout: float = 300) -> tuple[int, str, str]:
        """Runs one command (an argument list) and returns (status, stdout, stderr).

        A dropped connection is retried once on a fresh connection: callers only run
        commands that are safe to repeat (inspections and idempotent changes).
        """
        command = shlex.join(argv)
        for attempt in (1, 2):
            try:
                chan = self.client().get_transport().open_session(timeout=30)
                chan.settimeout(timeout)
                chan.exec_command(command)
                if stdin is not None:
                    chan.sendall(stdin.encode())
                chan.shutdown_write()
                out, err = _drain(chan)
                status = chan.recv_exit_status()
                chan.close()
                break
            except (OSError, EOFError, paramiko.SSHException) as err:
                self.close()
                if attempt == 2:
                    raise ConnectionFailed(f"SSH connection lost while running `{command[:120]}`: {err}") from None
                self.log(f"SSH connection dropped ({err}); reconnecting")
        if check and status != 0:
            raise RemoteError(argv, status, out, err)
        return status, out, err

    def sh(self, script: str, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Runs a fixed shell `script` with `args` as its positional parameters ($1...)."""
        return self.run(["sh", "-c", script, "sh", *args], check=check, timeout=timeout)[1]

    def write_file(self, path: str, content: str, mode: int = 0o644) -> None:
        """Writes `content` to `path` atomically (temporary file, then rename). The
        temporary file is created with `mode` (never readable by others, not even for an
        instant, when `mode` says so)."""
        tmp = f"{path}.tmp-canary"
        sftp = self.client().open_sftp()
        try:
            try:
                sftp.remove(tmp)  # a leftover of an interrupted write, maybe with another mode
            except FileNotFoundError:
                pass
            with _create(sftp, tmp, mode) as f:
                f.write(content.encode())
            sftp.chmod(tmp, mode)  # the exact mode, whatever the server's umask took away
            sftp.posix_rename(tmp, path)
        finally:
            sftp.close()

    def read_file(self, path: str) -> Optional[str]:
        sftp = self.client().open_sftp()
        try:
            with sftp.file(path, "r") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        finally:
            sftp.close()

    # -- a session that holds something open ------------------------------------------
    def open_session(self, argv: Sequence[str]) -> paramiko.Channel:
        """Starts a long-running command; closing the channel (or losing the connection)
        ends it. Used for the host lock."""
        chan = self.client().get_transport().open_session(timeout=30)
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
                for s in (a, b):
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


def _drain(chan: paramiko.Channel) -> tuple[str, str]:
    out, err = [], []
    while True:
        if chan.recv_ready():
            out.append(chan.recv(65536))
        elif chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))
        elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        else:
            time.sleep(0.01)
    return b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")
