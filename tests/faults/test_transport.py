"""Transport faults: hung commands, dropped connections, a stopped Docker daemon, a lost
or stale host lock, failing nginx reloads, undrained workers, failing webhooks and a
proxy in the environment. The remote layer is driven directly against the real sshd,
Docker and nginx of the test host; webhooks and proxies through the real CLI.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from pulumi import automation as auto

from canary.remote import STATE_DIR, docker, nginx
from canary.remote.lock import HostBusy, HostLock
from canary.remote.ssh import CommandTimeout, ConnectionFailed, Host, LockLost, RemoteError, Target
from tests.e2e.harness import (TESTHOST, TESTHOST_DIR, Deployment, Load, containers, reset_host,
                               served_versions, sh, ssh_target)

from .conftest import record

LOCK = f"{STATE_DIR}/transport-test.lock"
MUST_NOT_EXIST = f"{STATE_DIR}/transport-test-must-not-exist"
SITE = "/etc/nginx/sites-enabled/odoo.conf"


def host(logs: list | None = None) -> Host:
    return Host(ssh_target(), retries=3, log=(logs.append if logs is not None else lambda m: None))


def drop_connections(*hosts: Host) -> None:
    """The hosts' SSH connections die on the host's side (their sshd processes are
    killed; the listener stays): a network blip."""
    pids = []
    for h in hosts:
        client = h._client
        if client is None or client.get_transport() is None or not client.get_transport().is_active():
            continue
        port = client.get_transport().sock.getsockname()[1]
        out = sh(f"ss -Htnp state established '( sport = :2222 and dport = :{port} )'")
        pids += re.findall(r"pid=(\d+)", out)
    assert pids, "no connection to drop"
    sh(f"kill {' '.join(sorted(set(pids)))}")
    time.sleep(0.5)


# -- 1. every command and SFTP call has a time limit -------------------------------------
def test_hung_command_times_out():
    h = host()
    try:
        start = time.monotonic()
        with pytest.raises(CommandTimeout) as hung:
            h.run(["sleep", "30"], timeout=2)
        took = time.monotonic() - start
        named = "`sleep 30`" in str(hung.value) and "2s" in str(hung.value)
        usable = h.run(["echo", "still here"])[1].strip() == "still here"
    finally:
        h.close()
    print(f"timed out after {took:.1f}s: {hung.value}")
    record("hung remote command times out (not retried)",
           {"it fails within 8 s (2 s limit, not retried)": took < 8,
            "the error names `sleep 30` and 2s": named,
            "the connection still works after": usable})


def test_hung_sftp_read_times_out():
    fifo = f"{STATE_DIR}/transport-test.fifo"  # a reader of a FIFO without writer blocks
    sh(f"mkdir -p {STATE_DIR} && rm -f {fifo} && mkfifo {fifo}")
    h = host()
    try:
        start = time.monotonic()
        with pytest.raises(CommandTimeout) as hung:
            h.read_file(fifo, timeout=2)
        took = time.monotonic() - start
        usable = h.read_file("/etc/hostname") is not None
    finally:
        h.close()
        sh(f"timeout 2 sh -c 'echo > {fifo}' || true; rm -f {fifo}")
    print(f"timed out after {took:.1f}s: {hung.value}")
    record("hung SFTP read times out",
           {"it fails within 8 s (2 s limit)": took < 8,
            "the error names the SFTP read": "SFTP read" in str(hung.value),
            "the connection still works after": usable})


def test_connection_killed_during_a_command():
    """A connection that dies under a running command neither hangs nor passes for an
    empty result: the command runs again on a new connection (callers only run
    repeatable commands), or the run fails."""
    logs: list[str] = []
    h = host(logs)
    result: dict = {}

    def run():
        try:
            result["out"] = h.run(["sh", "-c", "sleep 3; echo done"], timeout=60)
        except Exception as err:  # noqa: BLE001
            result["error"] = err

    try:
        h.run(["true"])
        t = threading.Thread(target=run, daemon=True)
        start = time.monotonic()
        t.start()
        time.sleep(1)
        drop_connections(h)
        t.join(40)
        took = time.monotonic() - start
        finished = not t.is_alive()
    finally:
        h.close()
    print(f"after {took:.1f}s: {result}; {logs}")
    rerun = result.get("out", (1, ""))[1].strip() == "done" and h.connects == 2
    record("SSH connection killed under a running command",
           {"the call returns within 40 s": finished,
            "it ran again on a second connection or raised ConnectionFailed":
            rerun or isinstance(result.get("error"), ConnectionFailed)})


def test_connection_sends_at_once_and_refusals_say_why():
    """The connection's socket has Nagle's algorithm off (a packet written right after
    another would wait for the host's delayed ACK); the socket it opens itself still
    fails with the reason when the port is closed, the key is another or the user is
    refused, and leaves no socket open behind."""
    h = host()
    try:
        h.run(["true"])
        nodelay = h._client.get_transport().sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        h.close()
    t = ssh_target()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    other_key = " ".join((TESTHOST_DIR / "id_ed25519.pub").read_text().split()[:2])
    errors = {}
    fds_before = len(list(Path("/proc/self/fd").iterdir()))
    for name, bad in (("closed port", Target(t.host, port, t.user, t.host_key, t.private_key)),
                      ("another host key", Target(t.host, t.port, t.user, other_key, t.private_key)),
                      ("unknown user", Target(t.host, t.port, "nobody-here", t.host_key, t.private_key))):
        with pytest.raises(ConnectionFailed) as failed:
            Host(bad, retries=1).run(["true"])
        errors[name] = str(failed.value)
    fds_after = len(list(Path("/proc/self/fd").iterdir()))
    print(errors, fds_before, fds_after)
    record("SSH connection: packets sent at once, refusals explained",
           {"TCP_NODELAY is set on the connection": nodelay == 1,
            "a closed port: cannot reach": "cannot reach 127.0.0.1" in errors["closed port"],
            "another host key: not the pinned key": "not the pinned" in errors["another host key"],
            "an unknown user: authentication failed": "authentication failed" in errors["unknown user"],
            "no socket left open": fds_after <= fds_before})


def test_read_file_none_only_when_missing():
    h = host()
    try:
        missing = h.read_file("/nonexistent/canary-file")
        with pytest.raises(OSError) as unreadable:
            h.read_file("/etc")  # a directory: an error, not "no file"
    finally:
        h.close()
    record("unreadable file is an error, not a missing file",
           {"a missing file reads as None": missing is None,
            "a directory raises, not FileNotFoundError": not isinstance(unreadable.value, FileNotFoundError)})


def sessions_of(h: Host) -> int:
    """SSH sessions (channels with a command, shell or subsystem) the test host's sshd
    started for `h`'s current connection, by its sshd log."""
    port = h._client.get_transport().sock.getsockname()[1]
    log = (TESTHOST_DIR / "sshd.log").read_text(errors="replace")
    return len(re.findall(rf"Starting session: .* from 127\.0\.0\.1 port {port}\b", log))


def test_commands_in_one_shell_keep_their_own_output_and_status():
    """Commands share one long-lived shell per connection: each still gets its own
    stdout, stderr and status, arguments stay literal, no command reads the others from
    stdin, and 20 commands in a row open no SSH session."""
    executed = f"{STATE_DIR}/transport-test-executed"
    sh(f"mkdir -p {STATE_DIR} && rm -f {executed}")
    hostile = [f"$(touch {executed})", f"`touch {executed}`", f"; touch {executed}", f"&& touch {executed}",
               "'", '"', "a\nb\n)\n", f")\ntouch {executed}\n(", "#", "\\", "*", "${HOME}", "-n",
               "canary-end-0 0"]
    h = host()
    try:
        h.run(["true"])  # the connection and its first shell
        before = sessions_of(h)
        no_newline = h.run(["printf", "no final newline"])
        apart = h.run(["sh", "-c", "echo out; printf err >&2; exit 3"], check=False)
        with pytest.raises(RemoteError) as failed:
            h.run(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 5"])
        literal = h.run(["printf", "%s\\0", *hostile])
        no_stdin = h.run(["cat"], timeout=5)  # would swallow the commands after it
        read_fails = h.run(["sh", "-c", "read line; echo \"read $?\""], timeout=5)
        empty = h.run(["true"])
        echoes = [h.run(["echo", f"command {i}"])[1] for i in range(13)]
        after = sessions_of(h)
        with_stdin = h.run(["cat"], stdin="given on stdin")  # a session of its own
        after_stdin = sessions_of(h)

        # Concurrent callers each get a shell of their own, and their own output.
        answers: dict = {}

        def caller(n):
            answers[n] = [h.run(["sh", "-c", "sleep 0.2; echo \"$1\"", "sh", f"{n}-{i}"])[1] for i in range(4)]
        threads = [threading.Thread(target=caller, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        concurrent = sessions_of(h) - after_stdin
    finally:
        h.close()
    print(f"sessions for the 20 commands: {after - before}; with stdin: {after_stdin - after}; "
          f"3 concurrent callers: {concurrent}")
    record("commands in one shared shell: own output, status, literal arguments, no new sessions",
           {"output without a final newline is kept whole": no_newline == (0, "no final newline", ""),
            "stdout, stderr and status are kept apart": apart == (3, "out\n", "err"),
            "a failure raises RemoteError with its status, stdout and stderr":
            (failed.value.status, failed.value.stdout, failed.value.stderr) == (5, "to-stdout\n", "to-stderr\n"),
            "hostile arguments arrive literally": literal[1].split("\0")[:-1] == hostile,
            "hostile arguments are never executed": not Path(executed).exists(),
            "a command reads no stdin (cat gets EOF at once)": no_stdin == (0, "", ""),
            "`read` finds no input": read_fails == (0, "read 1\n", ""),
            "an empty result is empty": empty == (0, "", ""),
            "each of 13 more commands got its own output": echoes == [f"command {i}\n" for i in range(13)],
            "the 20 commands opened no SSH session": after == before,
            "a command with stdin still gets it (its own session)": with_stdin == (0, "given on stdin", "")
            and after_stdin == after + 1,
            "3 concurrent callers each got their own answers":
            answers == {n: [f"{n}-{i}\n" for i in range(4)] for n in range(3)},
            "concurrent callers got shells of their own, not a session per command (12)": 1 <= concurrent <= 3})


def test_a_timed_out_shell_is_never_reused():
    """A command that timed out may still write: its shell is closed, and the next
    command's output is its own."""
    h = host()
    try:
        h.run(["true"])
        with pytest.raises(CommandTimeout):
            h.run(["sh", "-c", "sleep 3; echo late output"], timeout=1)
        time.sleep(3)
        next_out = h.run(["echo", "next"])
        idle = len(h._shells)
    finally:
        h.close()
    record("a shell whose command timed out is closed, not reused",
           {"the next command gets only its own output": next_out == (0, "next\n", ""),
            "one idle shell after (the new one)": idle == 1})


# -- 2. a failing Docker is not "no container" ----------------------------------------------
def test_docker_daemon_down_is_not_absence():
    reset_host()
    h = host()
    raised = {}
    try:
        absent_when_up = docker.inspect(h, "odoo-no-such-container") is None
        both_absent_when_up = docker.inspect_all(h, ["odoo-no-such", "odoo-no-such-canary"]) == {
            "odoo-no-such": None, "odoo-no-such-canary": None}
        sh("pkill -TERM -x dockerd; while pgrep -x dockerd >/dev/null; do sleep 0.2; done")
        for name, call in {
            "inspect": lambda: docker.inspect(h, "odoo"),
            "inspect_all": lambda: docker.inspect_all(h, ["odoo", "odoo-canary"]),
            "image_exists": lambda: docker.image_exists(h, "canary-demo:v1"),
            "count_log_lines": lambda: docker.count_log_lines(h, "odoo-canary", "2020-01-01T00:00:00Z"),
        }.items():
            try:
                raised[name] = f"returned {call()!r}"
            except (RemoteError, docker.LogsUnavailable) as err:
                raised[name] = str(err)
    finally:
        sh(f"bash {TESTHOST} start >/dev/null 2>&1")
        h.close()
    print(raised)
    record("Docker daemon down: inspect/logs raise, not 'no container' or '0 errors'",
           {"with the daemon up a missing container inspects as None": absent_when_up,
            "with the daemon up two missing containers inspect as None in one call": both_absent_when_up,
            **{f"with the daemon down {name} raises 'Cannot connect to the Docker daemon'":
               "Cannot connect to the Docker daemon" in v for name, v in raised.items()}})


def test_log_count_of_a_missing_container_is_unknown():
    h = host()
    try:
        with pytest.raises(docker.LogsUnavailable) as unknown:
            docker.count_log_lines(h, "odoo-no-such-container", "2020-01-01T00:00:00Z")
    finally:
        h.close()
    record("container log unreadable: ERROR count unknown, not 0",
           {"LogsUnavailable says No such container": "No such container" in str(unknown.value)})


# -- 3. the host lock across reconnects -----------------------------------------------------
def test_lock_is_taken_again_after_a_reconnect():
    logs: list[str] = []
    a, b = host(logs), host()
    try:
        with HostLock(a, LOCK, "deployer A", wait_seconds=2, heartbeat_seconds=1, expire_seconds=3):
            a.run(["true"])
            drop_connections(a)
            a.run(["true"])  # reconnects, and takes the lock again first
            checks = {"A reconnected once": a.connects == 2,
                      "A logged the lock taken again": any("taken again" in m for m in logs)}
            with pytest.raises(HostBusy) as busy:
                with HostLock(b, LOCK, "deployer B", wait_seconds=1):
                    pass
            checks |= {"B is refused naming deployer A": "deployer A" in str(busy.value),
                       "B's refusal says how long it was held": "held for" in str(busy.value)}
    finally:
        a.close()
        b.close()
    print(logs, busy.value)
    record("host lock taken again after a reconnect", checks)


def test_lock_taken_by_another_deployer_meanwhile_stops_the_run():
    a, b = host(), host()
    try:
        with HostLock(a, LOCK, "deployer A", wait_seconds=2, heartbeat_seconds=1, expire_seconds=3):
            a.run(["true"])
            drop_connections(a)
            # B gets the lock while A is disconnected, changes things and leaves.
            with HostLock(b, LOCK, "deployer B", wait_seconds=10):
                pass
            with pytest.raises(LockLost) as lost:
                a.run(["true"])
            with pytest.raises(LockLost):
                a.run(["touch", MUST_NOT_EXIST])  # nothing more runs
        # B holds it now: A cannot take it back either.
        with HostLock(a, LOCK, "deployer A", wait_seconds=2, heartbeat_seconds=1, expire_seconds=3):
            a.run(["true"])
            drop_connections(a)
            with HostLock(b, LOCK, "deployer B", wait_seconds=10):
                start = time.monotonic()
                with pytest.raises(LockLost) as still_held:
                    a.run(["true"])
                waited = time.monotonic() - start
        after = a.run(["true"])[0] == 0  # outside the lock the host is usable again
    finally:
        a.close()
        b.close()
        untouched = not Path(MUST_NOT_EXIST).exists()
    print(lost.value, still_held.value, f"{waited:.1f}s")
    record("host lock lost with the connection: the run stops, nothing more changes",
           {"LockLost names deployer B": "deployer B" in str(lost.value),
            "LockLost says the run stops before any further change":
            "stopping before any further change" in str(lost.value),
            "A cannot take it back while B holds it": "deployer B" in str(still_held.value),
            "the command after LockLost never ran": untouched,
            "the host is usable outside the lock": after,
            "A found the lock taken within 30 s": waited < 30})


# -- 4. a stale lock expires and says whose it was ---------------------------------------------
def test_stale_lock_expires_and_names_its_holder():
    b_said: list[str] = []
    a, b = host(), host(b_said)
    try:
        held = HostLock(a, LOCK, "deployer A", wait_seconds=2, heartbeat_seconds=1, expire_seconds=3)
        with held:
            time.sleep(5)  # heartbeats keep it beyond its expiry time
            with pytest.raises(HostBusy) as busy:
                with HostLock(b, LOCK, "deployer B", wait_seconds=1):
                    pass
            alive_with_beats = held.alive()
            held._stop.set()  # the deployer goes silent (its session stays open)
            start = time.monotonic()
            with HostLock(b, LOCK, "deployer B", wait_seconds=20):
                expired_after = time.monotonic() - start
                # A, back to life, finds its lock gone and cannot take it back.
                with pytest.raises(LockLost):
                    a.run(["true"])
    finally:
        a.close()
        b.close()
    text = str(busy.value)
    print(text, f"expired after {expired_after:.1f}s")
    record("stale host lock expires without heartbeats and names its holder",
           {"with heartbeats the lock outlives its expiry time": alive_with_beats,
            "B's refusal names deployer A": "deployer A" in text,
            "B's refusal says how long it was held": "held for" in text,
            "B's refusal gives the last heartbeat": "last heartbeat" in text,
            "B said at once whose lock it waited for": any(
                m.startswith("waiting up to") and "deployer A" in m for m in b_said),
            "without heartbeats B gets it within 10 s": expired_after < 10})


# -- 6. nginx reloads ---------------------------------------------------------------------------
@pytest.fixture
def no_nginx_pid():
    """`nginx -s reload` fails while the pid file is gone (nginx -t still passes)."""
    sh("mv /run/nginx.pid /run/nginx.pid.canary-test")
    yield
    sh("mv /run/nginx.pid.canary-test /run/nginx.pid")


@pytest.fixture
def stale_nginx_pid():
    """The pid file names a process that is gone: no signal may go to that pid."""
    sh("mv /run/nginx.pid /run/nginx.pid.canary-test && sh -c 'echo $$' >/run/nginx.pid")
    yield
    sh("mv /run/nginx.pid.canary-test /run/nginx.pid")


@pytest.mark.parametrize("pid_file", ["no_nginx_pid", "stale_nginx_pid"])
def test_nginx_reload_failure_restores_the_file(pid_file, request):
    request.getfixturevalue(pid_file)
    path = "/etc/nginx/conf.d/zz-transport-test.conf"
    sh(f"rm -f {path}")
    h = host()
    try:
        with pytest.raises(RuntimeError) as failed:
            nginx.install(h, path, "# canary transport test\n")
    finally:
        h.close()
    record(f"nginx reload fails ({pid_file.replace('_', ' ')}): split change restored and failed",
           {"the new file is removed again": not Path(path).exists(),
            "the install fails naming nginx -s reload": "nginx -s reload failed" in str(failed.value)})


def test_site_reload_failure_fails_the_update(tmp_path):
    reset_host()
    d = Deployment(tmp_path)
    try:
        d.up()
        before = Path(SITE).read_text()
        d.set(server_name="reload-fails.example")
        sh("mv /run/nginx.pid /run/nginx.pid.canary-test")
        try:
            with pytest.raises(auto.CommandError) as failed:
                d.up()
        finally:
            sh("mv /run/nginx.pid.canary-test /run/nginx.pid")
        restored = Path(SITE).read_text() == before
        serving = served_versions(10) == {"canary-demo v1": 10}
        d.up()  # with nginx reachable again the change goes through
        applied = "reload-fails.example" in Path(SITE).read_text()
    finally:
        reset_host()
    record("nginx -s reload fails on the site: file restored, update fails",
           {"the update fails naming nginx -s reload": "nginx -s reload failed" in str(failed.value),
            "the site file is restored": restored,
            "v1 answers all of 10 requests after": serving,
            "with nginx reachable the next up applies the change": applied})


def test_undrained_workers_are_reported():
    """An old nginx worker still serving a slow request when drain_timeout is up."""
    conf = "/etc/nginx/conf.d/zz-transport-drain.conf"

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(6)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"slow")

        def log_message(self, *a):
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    port = app.server_address[1]
    sh(f"echo 'server {{ listen 127.0.0.1:8097; location / {{ proxy_pass http://127.0.0.1:{port}; }} }}' > {conf}"
       " && nginx -t -q && nginx -s reload")
    time.sleep(1)
    logs: list[str] = []
    h = host(logs)
    try:
        slow = threading.Thread(target=lambda: requests.get("http://127.0.0.1:8097/", timeout=20), daemon=True)
        slow.start()
        time.sleep(0.5)
        sh("nginx -s reload")  # the worker serving the slow request now shuts down
        time.sleep(0.5)
        drained = nginx.wait_drained(h, 1)
        slow.join(20)
        drained_later = nginx.wait_drained(h, 5)
    finally:
        h.close()
        sh(f"rm -f {conf} && nginx -s reload")
        app.shutdown()
    print(logs)
    reported = any("did not drain within drain_timeout 1s" in m and "still shutting down" in m for m in logs)
    record("nginx drain timeout reported (what and how long)",
           {"the busy worker is not drained within 1 s": not drained,
            "the log names the timeout and the worker still shutting down": reported,
            "it drains once the slow request ends": drained_later})


# -- 5. webhooks that fail never fail or hold up a deployment ---------------------------------
class _Webhook:
    """A local webhook: `answer` 500, or accept and never answer ("hang")."""

    def __init__(self, mode: str):
        self.mode, self.requests = mode, 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/webhook-secret-path"

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.requests += 1
            if self.mode == "hang":
                self.held.append(conn)  # never answered
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_failing_webhooks_never_block_a_deployment(tmp_path):
    reset_host()
    d = Deployment(tmp_path)
    erroring, hanging = _Webhook("500"), _Webhook("hang")
    try:
        d.up()
        d.set(notify_allow_local="true")  # the webhooks are on loopback
        d.set_secret("notify_webhook", erroring.url)
        d.set(image_tag="v2")
        start = time.monotonic()
        d.up()
        with_500 = time.monotonic() - start
        promoted_500 = d.outputs()["phase"] == "promoted"
        d.set_secret("notify_webhook", hanging.url)
        d.set(image_tag="v1")
        start = time.monotonic()
        with Load() as load:
            d.up()
        with_hang = time.monotonic() - start
        # The update finished while the webhook still had not answered a single request.
        checks = {"the hanging webhook got at least 2 requests": len(hanging.held) >= 2,
                  "its connections were still unanswered when the update ended":
                  all(c.fileno() != -1 for c in hanging.held),
                  "promoted despite the hanging webhook": d.outputs()["phase"] == "promoted",
                  "v1 the only container after": containers() == {"odoo": "canary-demo:v1"}}
    finally:
        erroring.close()
        hanging.close()
        reset_host()
    log = "\n".join(d.log)
    print(f"up with a 500 webhook {with_500:.1f}s, with a hanging one {with_hang:.1f}s")
    record("webhook answering 500 / never answering: deployment promoted promptly",
           {"promoted despite the webhook answering 500": promoted_500, **checks,
            "the erroring webhook was called at least twice": erroring.requests >= 2,
            "the hanging webhook was called at least twice": hanging.requests >= 2,
            "the output reports the HTTP 500": "HTTP 500" in log,
            "the output reports the webhook not answered within its timeout": "not answered within" in log,
            "the output keeps the webhook's secret path out": "webhook-secret-path" not in log,
            "the update with the hanging webhook ends within 60 s": with_hang < 60},
           lost=load.failures)


# -- 7. probes ignore proxies from the environment ------------------------------------------
def test_dead_proxy_in_the_environment_does_not_stop_probes(tmp_path):
    """A CI runner with a proxy for the internet: HTTP(S)_PROXY set (here: dead), loopback
    in NO_PROXY (Pulumi's own gRPC on 127.0.0.1 needs that). The canary is probed at a
    direct `probe_url` outside NO_PROXY, as a canary on another address would be."""
    reset_host()
    d = Deployment(tmp_path, config={"bind_address": "0.0.0.0"})
    dead = "http://127.0.0.1:9"
    try:
        d.up()
        proxies = {"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
                   "NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}
        d.env.update(proxies)  # every later CLI run (and so the providers) sees them
        # The proxy bites whoever trusts the environment:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in proxies.items():
                mp.setenv(k, v)
            with pytest.raises(requests.exceptions.ProxyError):
                requests.get("http://127.0.0.2:8069/web/health", timeout=5)
        d.set(image_tag="v2", probe_url="http://127.0.0.2:8070")
        d.up()
        out = d.outputs()
    finally:
        reset_host()
    print(out["analysis"].get("reason"))
    record("dead HTTP(S)_PROXY in the environment: probes ignore it, canary promoted",
           {"the canary is promoted": out["phase"] == "promoted",
            "v2 is production": out["production_image"] == "canary-demo:v2",
            "the canary was probed": out["analysis"]["probes"] > 0,
            "no probe failed": out["analysis"]["probe_failures"] == 0})


def test_a_rotated_deploy_key_updates_the_site_in_place(tmp_path):
    """Hypothesis (issue 34): a change of the SSH connection (a rotated deploy key)
    replaces the site command create-before-delete, and the old command's delete script
    removes the live site and the split file. It does not: pulumi-command 1.2.1 (the
    default diff of pulumi-go-provider 1.3.0) replaces a command only when `triggers`
    change; any other input change, the connection included, is an update that reruns
    the (idempotent) apply script with the new connection. The delete script never runs.

    The new key here is the deploy key written out again (`ssh-keygen -p`: other bytes,
    the same key pair): to the engine a changed `connection.privateKey` like any new key,
    while the test host's authorized_keys, which every `testhost.sh start` rewrites, stays
    as it is."""
    reset_host()
    d = Deployment(tmp_path)
    d.up()
    d.set(image_tag="v2", auto_promote="false")
    d.up()  # a held canary: the site and a split file in place
    split = "/etc/nginx/conf.d/odoo-canary.conf"
    site_before, split_before = Path(SITE).read_text(), Path(split).read_text()
    new_key = tmp_path / "rotated_key"
    new_key.write_bytes((TESTHOST_DIR / "id_ed25519").read_bytes())
    new_key.chmod(0o600)
    sh(f"ssh-keygen -q -p -P '' -N '' -f {new_key}")
    rotated = new_key.read_text() != (TESTHOST_DIR / "id_ed25519").read_text()
    d.set(ssh_private_key_file=str(new_key))
    steps = d.stack.preview().change_summary
    d.log.clear()
    with Load() as load:
        d.up()
    rotated_log = "\n".join(d.log)
    site_after, split_after = Path(SITE).read_text(), Path(split).read_text()
    held = d.outputs()
    d.stack.preview(expect_no_changes=True)
    print({"preview": steps, "log": rotated_log[-1500:]})
    record("a rotated deploy key updates the site in place (no replacement, no delete)",
           {"the stack's key changed": rotated,
            "the preview updates the site and replaces or deletes nothing": steps.get("update", 0) >= 1 and not any(
                k in steps for k in ("replace", "create-replacement", "delete-replaced", "delete")),
            "the site's apply script reran with the new key and changed nothing": "site unchanged" in rotated_log,
            "the site's delete script never ran": "site removed" not in rotated_log,
            "the site file is as it was": site_after == site_before,
            "the split file is as it was": split_after == split_before,
            "the canary still holds at 10 %": held["phase"] == "holding" and held["canary_weight"] == 10,
            "v1 and the v2 canary still run": containers() == {"odoo": "canary-demo:v1",
                                                                "odoo-canary": "canary-demo:v2"}},
           lost=load.failures)
    reset_host()
