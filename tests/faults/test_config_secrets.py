"""Config is not root, secrets stay secret, the policy pack guards production: through the
real CLI on the local test host."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import shutil
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pulumi import automation as auto

from canary.config_fields import names_key
from canary.spec import ReleaseSpec
from tests.e2e.harness import (REGISTRY, REGISTRY_CONFIG, ROOT, TESTHOST_DIR, Deployment, containers, link_lock_files,
                               reset_host, sh, ssh_commands)
from tests.e2e.test_ecosystem import Receiver

from .conftest import record

APP_DIR = "/var/lib/canary/odoo"


# -- config is not root ----------------------------------------------------------------------
HOSTILE = {
    "nginx_site": ["/etc/nginx/nginx.conf", "/etc/nginx/sites-enabled", "/etc/nginx/sites-enabled/",
                   "/etc/nginx/sites-enabled/../nginx.conf", "/etc/passwd", "/root/.bashrc"],
    "nginx_sites_dir": ["/etc", "/etc/cron.d", "/etc/nginx/../systemd/system"],
    "nginx_conf_dir": ["/etc/nginx", "/etc/profile.d"],
    "nginx_log_dir": ["/etc/nginx/conf.d", "/var/log/../lib/docker"],
    "volumes": [["/:/host"], ["/var/run/docker.sock:/var/run/docker.sock"], ["/run:/run"],
                ["/srv/../etc:/etc2:ro"], ["/root/.ssh:/keys"], ["/var:/var"],
                # What the deny-list let through (issue 34): the allow-list refuses them.
                ["/home:/home"], ["/usr:/usr"], ["/bin:/bin"], ["/run/containerd/containerd.sock:/c.sock"],
                ["/run/dbus/system_bus_socket:/dbus"], ["/run/podman/podman.sock:/p.sock"],
                ["/var/spool/cron:/cron"], ["/var/lib/canary:/state"], ["/srv/../var/lib/canary/odoo:/s"]],
    "canary_volumes": [["/home/odoo/.ssh:/keys"], ["/var/lib/canary:/state"], ["/usr/bin:/b"]],
    "host_mount_prefixes": [["/"], ["/var"], ["/var/lib/canary"], ["/run/containerd"]],
}


def test_paths_and_host_mounts_are_refused_at_preview(tmp_path):
    reset_host()
    d = Deployment(tmp_path, echo=False)
    base = dict(d.stack.get_all_config())
    tried = rejected = 0
    for key, values in HOSTILE.items():
        for value in values:
            d.stack.set_all_config({**base, f"canary:{key}": auto.ConfigValue(
                value=json.dumps(value) if isinstance(value, list) else value)})
            before = ssh_commands()
            message = d.preview_error()
            d.stack.remove_config(f"canary:{key}")
            tried += 1
            hint = {"volumes": "canary:allow_host_mounts", "canary_volumes": "canary:host_mount_prefixes",
                    "host_mount_prefixes": "not a parent of a system directory",
                    "nginx_log_dir": "/var/log/"}.get(key, "/etc/nginx/")
            if f"canary:{key}" in message and hint in message and ssh_commands() == before:
                rejected += 1
            else:
                print(f"NOT REJECTED: {key} = {value!r}")
    # The explicit (dangerous) opt-in lets the operator mount the Docker socket.
    d.stack.set_all_config({**base, "canary:volumes": auto.ConfigValue(
        value=json.dumps(["/var/run/docker.sock:/var/run/docker.sock"])),
        "canary:allow_host_mounts": auto.ConfigValue(value="true")})
    d.stack.preview()
    # A directory of the app under a configured prefix needs no opt-in.
    d.stack.remove_config("canary:allow_host_mounts")
    d.stack.set_all_config({**base, "canary:volumes": auto.ConfigValue(value=json.dumps(["/srv/odoo/addons:/a:ro"])),
                            "canary:canary_volumes": auto.ConfigValue(value=json.dumps(["/data/odoo:/d"])),
                            "canary:host_mount_prefixes": auto.ConfigValue(value=json.dumps(["/srv", "/data/odoo"]))})
    d.stack.preview()
    record("nginx paths and host mounts",
           {f"every hostile value refused at preview, naming key and allowed place, no host command "
            f"({tried - rejected} of {tried} not)": rejected == tried,
            "no container started": containers() == {}}, inputs=(tried, rejected))


# -- the registry login goes to registry_server only ------------------------------------------
class _Registry:
    """A registry on loopback that records every connection, and every plain-HTTP request
    with its Authorization header, and answers 401 asking for a login, as a private
    registry does. (A client that speaks TLS to it is counted as a connection only.)"""

    def __init__(self):
        seen = self.seen = []
        connections = self.connections = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="decoy"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request, client_address):
                connections.append(client_address)
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_registry_login_never_follows_the_image(tmp_path):
    """A pull request that changes `image` alone to another registry: refused at preview,
    and that registry never sees the login. Without a login, the image's registry is
    asked anonymously."""
    reset_host()
    decoy = _Registry()
    d = Deployment(tmp_path, config=REGISTRY_CONFIG, echo=False)
    password = (TESTHOST_DIR / "registry_password").read_text().strip()
    before = ssh_commands()
    tried = rejected = 0
    try:
        for image in (f"{decoy.address}/canary-demo", "registry.example.net/team/canary-demo", "canary-demo"):
            d.set(image=image)
            tried += 1
            message = d.preview_error()
            if (names_key(message, "image") and f"canary:registry_server '{REGISTRY}'" in message
                    and "canary:registry_username" in message and password not in message):
                rejected += 1
            else:
                print(f"NOT REJECTED: image = {image!r}: {message[-600:]}")
        # With a login, the registry is never taken from the image.
        d.set(image=REGISTRY_CONFIG["image"])
        d.stack.remove_config("canary:registry_server")
        tried += 1
        message = d.preview_error()
        if names_key(message, "registry_server") and "is required with a registry login" in message:
            rejected += 1
        login_untouched = decoy.connections == [] and ssh_commands() == before
        # No login at all: the image's own registry, asked without credentials.
        d.stack.remove_all_config(["canary:registry_username", "canary:registry_password_file"])
        d.set(image=f"{decoy.address}/canary-demo")
        with pytest.raises(auto.CommandError) as anonymous:
            d.stack.preview()
    finally:
        decoy.close()
    print({"decoy saw": decoy.seen, "connections": len(decoy.connections), "anonymous": str(anonymous.value)[-400:]})
    record("registry login only for canary:registry_server",
           {f"every image on another registry refused at preview, naming the keys ({tried - rejected} of "
            f"{tried} not)": rejected == tried,
            "the other registry got no request while a login was configured, no host command": login_untouched,
            "without a login, the image's registry is asked, anonymously": bool(decoy.connections) and all(
                r["authorization"] is None for r in decoy.seen),
            "that preview fails saying it cannot read the image": "cannot read" in str(anonymous.value),
            "no container started": containers() == {}}, inputs=(tried, rejected))


def test_secret_values_are_never_echoed_in_config_errors(tmp_path):
    """A secret metric command that is long and multi-line, and a registry user name (an
    API token) that is malformed: the preview's error names the keys, shows neither."""
    reset_host()
    d = Deployment(tmp_path)
    marker, token = "pw-marker-83kq", "dop_v1_tokenmarker"
    d.set(metric_max="80")
    d.set_secret("metric_command", f"psql postgresql://odoo:{marker}@db/odoo -Atc 'select 1'\n"
                                   f"echo {marker} " + "x" * 1200)
    d.set_secret("registry_username", f"{token} with spaces")
    before = ssh_commands()
    with pytest.raises(auto.CommandError) as refused:
        d.preview()
    shown = str(refused.value) + "\n".join(d.log)
    leaks = [f"{name} in the preview's output" for name, v in (("metric command", marker), ("token", token),
                                                                ("metric command's start", "psql postgresql"))
             if v in shown]
    record("secret-capable values never echoed in a config error",
           {"the error names canary:metric_command": names_key(str(refused.value), "metric_command"),
            "the error names canary:registry_username": names_key(str(refused.value), "registry_username"),
            "no command ran on the host": ssh_commands() == before}, leaks=leaks)


# -- the deploy key's copy in the checkout ---------------------------------------------------
def test_the_deploy_key_copy_stays_because_commands_without_the_program_need_it(tmp_path):
    """With the deploy key in the config (a secret), the program writes it to
    `.canary/ssh/<target>/id` for the docker provider's ssh client, and it stays there
    after the run (canary/docker_resources.py says why; issue 34 asked to keep it only
    as long as a run needs it, or say precisely why). Measured: without the files,
    `pulumi refresh`, `pulumi up --refresh` and `pulumi destroy` fail, since the engine
    starts the docker provider from the state, without the program; the same commands
    with --run-program, and `pulumi preview`, write them again and pass."""
    reset_host()
    d = Deployment(tmp_path, echo=False)
    key_text = (TESTHOST_DIR / "id_ed25519").read_text()
    d.set(ssh_private_key_file="")
    d.stack.set_config("canary:ssh_private_key", auto.ConfigValue(value=key_text, secret=True))
    d.up()
    # The program runs in ROOT (Deployment's Pulumi.yaml: main), so its files are there.
    target = ROOT / ".canary" / "ssh" / hashlib.sha256(b"e2e|root@127.0.0.1:2222").hexdigest()[:16]
    key = target / "id"
    modes = (oct(key.stat().st_mode & 0o777), oct(target.stat().st_mode & 0o777))

    def without_the_files(*args: str):
        shutil.rmtree(target, ignore_errors=True)
        r = d.cli(*args, "--yes", check=False)
        return r.returncode, "not accessible" in r.stdout + r.stderr

    refresh = without_the_files("refresh")
    refresh_program = without_the_files("refresh", "--run-program")
    up_refresh = without_the_files("up", "--refresh")
    up_refresh_program = without_the_files("up", "--refresh", "--run-program")
    shutil.rmtree(target, ignore_errors=True)
    d.preview()
    written_by_preview = key.exists()
    destroy = without_the_files("destroy")
    destroy_program = without_the_files("destroy", "--run-program")
    print({"refresh": refresh, "refresh --run-program": refresh_program, "up --refresh": up_refresh,
           "up --refresh --run-program": up_refresh_program, "destroy": destroy,
           "destroy --run-program": destroy_program})
    record("the deploy key's copy stays after a run: refresh, up --refresh and destroy need it",
           {"the copy is the key, mode 600 in a 700 directory": modes == ("0o600", "0o700"),
            "without it `pulumi refresh` fails (identity file not accessible)": refresh[0] != 0 and refresh[1],
            "without it `pulumi up --refresh` fails": up_refresh[0] != 0 and up_refresh[1],
            "without it `pulumi destroy` fails": destroy[0] != 0 and destroy[1],
            "`refresh --run-program` writes it again and passes": refresh_program[0] == 0,
            "`up --refresh --run-program` writes it again and passes": up_refresh_program[0] == 0,
            "`pulumi preview` writes it again": written_by_preview,
            "`destroy --run-program` finishes the destroy": destroy_program[0] == 0 and containers() == {}})
    reset_host()


# -- secrets ---------------------------------------------------------------------------------
ENV_SECRET = "hunter2-env-secret-77"
CANARY_SECRET = "canary-port-secret-9q7"
METRIC_SECRET = "metric-secret-5f2e"


def _release(export: str) -> dict:
    return next(r for r in json.loads(export)["deployment"]["resources"]
                if r["type"].endswith("canary:Release"))


def test_secrets_never_leak_from_a_failing_canary(tmp_path):
    """A canary that prints its env (the demo app logs the port it was told to listen on)
    fails to start, then one fails its analysis on a secret metric command that hangs."""
    reset_host()
    d = Deployment(tmp_path)
    key_text = (TESTHOST_DIR / "id_ed25519").read_text()
    # Without a restart policy the crashing canary exits for good (its log is quoted then).
    d.set(ssh_private_key_file="", metric_max="50", restart_policy="no")
    d.stack.set_config("canary:ssh_private_key", auto.ConfigValue(value=key_text, secret=True))
    receiver = Receiver()
    d.set(notify_allow_local="true")  # the receiver is on loopback
    d.set_secret("notify_webhook", receiver.url)
    d.set_secret("env.DB_PASSWORD", ENV_SECRET)
    # Trusted host command; `sleep` outlives the metric timeout, so no number: fail closed.
    d.set_secret("metric_command", f"sleep 600 # {METRIC_SECRET}")
    d.up()

    # 1. The canary logs its env value and exits: its log is quoted in the failure reason.
    d.set(image_tag="v2")
    d.set_secret("canary_env.PORT", CANARY_SECRET)
    with pytest.raises(auto.CommandError) as failed:
        d.up()
    first = d.outputs()
    checks = {"the reason says the canary exited before it became healthy":
              "exited before it became healthy" in first["failure_reason"],
              "the reason quotes the log with the secret masked": "[secret]" in first["failure_reason"]}

    # 2. Analysed again (retry): the metric command hangs, is killed, the gate fails closed.
    d.stack.remove_config("canary:canary_env")
    d.set(retry="true")
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as failed_again:
        d.up()
    took = time.monotonic() - started
    second = d.outputs()
    checks |= {"the hung metric rolls the canary back": second["phase"] == "rolled_back",
               "the reason says the metric gave no number": "no number" in second["failure_reason"],
               "the up with the hung metric ends within 90 s": took < 90,
               "the metric command is killed": not sh("pgrep -x -f 'sleep 600' || true").strip()}
    receiver.server.shutdown()

    export = d.export()
    reports = {p.name: p.read_text() for p in (tmp_path / "reports").glob("*")}
    places = {
        "exported state": export, "pulumi output": "\n".join(d.log) + str(failed.value) + str(failed_again.value),
        "stack outputs": d.cli("stack", "output", "--json", "--show-secrets").stdout,
        "analysis reports": "\n".join(reports.values()), "notifications": json.dumps(receiver.received),
    }
    secrets = {"env value": ENV_SECRET, "canary env value": CANARY_SECRET, "metric command": METRIC_SECRET,
               "webhook": "secret-token", "ssh key": key_text.splitlines()[1]}
    leaks = [f"{s} in {p}" for p, text in places.items() for s, v in secrets.items() if v in text]

    # The revision digest is keyed: the stack's key is a secret, the plain hash is nowhere.
    release = _release(export)
    outputs = release["outputs"]
    spec = ReleaseSpec.from_inputs({**outputs["spec"], "env": {"DB_PASSWORD": ENV_SECRET}, "canary_env": {}})
    checks |= {"at least 4 analysis reports written": len(reports) >= 4,
               "the revision key is a secret": "ciphertext" in json.dumps(outputs.get("revision_key")),
               "the production revision is a 16-digit keyed digest":
               len(outputs["production_revision"].split("#")[1]) == 16,
               "the plain hash of the spec is nowhere in the state": spec.legacy_digest not in export,
               "no secret in state, output, outputs, reports or notifications": not leaks}
    print({"took": took, "reports": sorted(reports)})
    record("secrets masked in reasons, reports, notifications; metric fails closed; keyed revision",
           checks, leaks=leaks)
    reset_host()


class _Inotify:
    """Stats every file the moment it is created, renamed into or chmod-ed in a directory."""

    IN_MODIFY, IN_ATTRIB, IN_CREATE, IN_MOVED_TO = 0x2, 0x4, 0x100, 0x80

    def __init__(self, directory: str):
        self.directory = directory
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        if libc.inotify_add_watch(self.fd, directory.encode(),
                                  self.IN_CREATE | self.IN_MOVED_TO | self.IN_ATTRIB | self.IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self.seen: list[tuple[str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if not select.select([self.fd], [], [], 0.1)[0]:
                continue
            data = os.read(self.fd, 65536)
            i = 0
            while i < len(data):
                _, _, _, length = struct.unpack_from("iIII", data, i)
                name = data[i + 16:i + 16 + length].rstrip(b"\0").decode()
                i += 16 + length
                try:
                    self.seen.append((name, os.lstat(os.path.join(self.directory, name)).st_mode & 0o777))
                except FileNotFoundError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.fd)


def test_env_files_are_never_readable_by_others(tmp_path):
    reset_host()
    # A state directory left with a loose mode, and a stale world-readable temporary file.
    Path(APP_DIR).mkdir(parents=True)
    os.chmod(APP_DIR, 0o755)
    stale = Path(APP_DIR) / "odoo.env.tmp-canary"
    stale.write_text("stale\n")
    os.chmod(stale, 0o644)
    watch = _Inotify(APP_DIR)
    try:
        d = Deployment(tmp_path)
        d.set_secret("env.DB_PASSWORD", ENV_SECRET)
        d.up()
        d.set(image_tag="v2")
        d.up()
    finally:
        watch.close()
    env_views = [(n, m) for n, m in watch.seen if ".env" in n]
    temp_views = [(n, m) for n, m in env_views if n.endswith(".tmp-canary")]
    loose = [(n, oct(m)) for n, m in watch.seen if m & 0o077]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in Path(APP_DIR).iterdir()}
    dir_mode = oct(os.stat(APP_DIR).st_mode & 0o777)
    print({"seen": len(watch.seen), "env": len(env_views), "temp": len(temp_views), "loose": loose,
           "files": modes, "dir": dir_mode})
    record("env files private from their creation (0600 in a 0700 directory)",
           {"no file ever seen readable by group or others": not loose,
            "at least 3 temporary env files seen": len(temp_views) >= 3,
            "the state directory is 0700": dir_mode == "0o700",
            "odoo.env is 0600": modes.get("odoo.env") == "0o600",
            "odoo.env holds the secret": ENV_SECRET in Path(APP_DIR, "odoo.env").read_text(),
            "every file in the state directory is 0600": all(m == "0o600" for m in modes.values())},
           leaks=[f"{n} was {m}" for n, m in loose])
    reset_host()


# -- policy ----------------------------------------------------------------------------------
def test_policy_refuses_promotion_without_analysis_on_production(tmp_path):
    reset_host()
    d = Deployment(tmp_path, name="production", config={"canary_percentage": "100",
                                                          "monitoring_duration": "15"})
    before = ssh_commands()
    with pytest.raises(auto.CommandError) as refused:
        d.stack.preview(policy_packs=[str(ROOT / "policy")], on_output=print)
    text = str(refused.value)
    # The same on a stack that is not production passes the pack.
    other = Deployment(tmp_path / "staging", name="staging", config={"canary_percentage": "100"})
    result = other.stack.preview(policy_packs=[str(ROOT / "policy")], on_output=print)
    record("policy: canary_percentage 100 on production refused",
           {"production's preview is refused by production-promotions-are-analysed":
            "production-promotions-are-analysed" in text,
            "the refusal says the promotion is without any analysis": "without any analysis" in text,
            "staging's preview passes the pack (8 creates)": result.change_summary.get("create") == 8,
            "no command ran on the host": ssh_commands() == before,
            "no container started": containers() == {}})


def _policy(d: Deployment) -> str:
    """The policy pack's verdict on a preview: "" when it passes, else the error."""
    return d.preview_error(policy_packs=[str(ROOT / "policy")])


def test_policy_refuses_every_unreviewed_or_unanalysed_path_to_100_and_plain_credentials(tmp_path):
    """[60, 100] with auto-promotion passed the pack before (its top step is 100, which the
    big-canary rule skipped); a registry user name in plain text (a DigitalOcean token)
    went unnoticed."""
    reset_host()
    d = Deployment(tmp_path, name="production", config={"monitoring_duration": "15"}, echo=False)
    before = ssh_commands()
    cases = {  # config -> the policy that must refuse it ("" : the pack passes)
        (("canary_steps", "[60, 100]"),): "big-canaries-need-review",
        (("canary_steps", "[10, 100]"),): "big-canaries-need-review",
        (("canary_steps", "[100]"),): "production-promotions-are-analysed",
        (("canary_percentage", "100"),): "production-promotions-are-analysed",
        (("canary_steps", "[60, 100]"), ("auto_promote", "false")): "",
        (("canary_steps", "[10, 50]"),): "",
    }
    results = {}
    for config in cases:
        d.set(**dict(config))
        results[config] = _policy(d)
        d.stack.remove_all_config([f"canary:{k}" for k, _ in config])
        d.set(auto_promote="true")
    untouched = ssh_commands() == before
    # The registry login: a plain user name is refused, a secret one passes.
    d.set(**REGISTRY_CONFIG)
    plain_login = _policy(d)
    d.set_secret("registry_username", "canary")
    secret_login = _policy(d)
    wrong = {" ".join(f"{k}={v}" for k, v in config): results[config][-300:] for config, policy in cases.items()
             if (policy and policy not in results[config]) or (not policy and results[config])}
    print({"wrong": wrong})
    record("policy: every path to 100 % analysed and reviewed, credentials secret on production",
           {f"each step list refused by its rule or passed as it should ({len(wrong)} of {len(cases)} not)": not wrong,
            "[60, 100] refused naming the 60 % step":
                "a canary step of 60 %" in results[(("canary_steps", "[60, 100]"),)],
            "a plain registry_username refused by credentials-are-secrets":
            "credentials-are-secrets" in plain_login and "canary:registry_username" in plain_login,
            "a secret registry_username passes": secret_login == "",
            "no command ran on the host for the step lists": untouched, "no container started": containers() == {}})


# -- a stack recorded before keyed revisions ----------------------------------------------------
# The last commit whose revisions were plain hashes of the container spec.
UNKEYED_COMMIT = "dc3b593"


def _program(d: Deployment, root: Path) -> None:
    """Points the stack at the program (and its dynamic providers) in `root`."""
    yaml = d.project / "Pulumi.yaml"
    yaml.write_text("\n".join(line if not line.startswith("main:") else f"main: {root}"
                              for line in yaml.read_text().splitlines()) + "\n")
    d.env["PYTHONPATH"] = str(root)


def test_a_stack_with_plain_hash_revisions_is_rekeyed_without_a_canary(tmp_path):
    old = tmp_path / "unkeyed"
    old.mkdir()
    if sh(f"git -C {ROOT} cat-file -t {UNKEYED_COMMIT} 2>/dev/null || true", check=False).strip() != "commit":
        pytest.skip(f"commit {UNKEYED_COMMIT} is not in this checkout")
    sh(f"git -C {ROOT} archive {UNKEYED_COMMIT} canary __main__.py | tar -x -C {old}")
    link_lock_files(old)  # today's toolchain and packages run it
    reset_host()
    d = Deployment(tmp_path / "stack")
    _program(d, old)
    d.set_secret("env.DB_PASSWORD", ENV_SECRET)
    d.up()
    before = _release(d.export())["outputs"]
    production = sh("docker inspect -f '{{.Id}}' odoo").strip()
    plain = before["production_revision"].split("#")[1]

    _program(d, ROOT)
    changes = d.preview().change_summary
    d.log.clear()
    d.up()
    after = _release(d.export())["outputs"]
    export = d.export()
    # (the verdict shows as an update in preview too: its inputs are outputs of the release)
    checks = {"preview shows the release updated": changes.get("update", 0) >= 1,
              "the production revision becomes a 16-digit keyed digest":
              len(after["production_revision"].split("#")[1]) == 16,
              "the revision key is a secret": "ciphertext" in json.dumps(after["revision_key"]),
              "the plain hash is gone from the state": plain not in export,
              "re-keying keeps the very production container":
              sh("docker inspect -f '{{.Id}}' odoo").strip() == production,
              "re-keying starts no canary": not any("starting canary container" in line for line in d.log),
              "only production v1 runs": containers() == {"odoo": "canary-demo:v1"}}
    # Clean afterwards, also after a refresh that reads the old container's label.
    d.stack.preview(expect_no_changes=True)
    d.refresh()
    # (a refresh records the label of a container started before the key: its plain hash)
    relabelled = plain in d.export()
    d.stack.preview(expect_no_changes=True)
    d.up()
    checks["refresh + up keep the very production container"] = (sh("docker inspect -f '{{.Id}}' odoo").strip()
                                                                 == production)
    # And a real change is still a canary.
    d.set(image_tag="v2")
    d.up()
    checks["a new image tag is still promoted"] = d.outputs()["production_image"] == "canary-demo:v2"
    checks["a new image tag still starts a canary"] = any("starting canary container" in line for line in d.log)
    print({"changes": changes, "plain hash back after refresh": relabelled})
    record("stack with plain-hash revisions re-keyed without a canary", checks)
    reset_host()
