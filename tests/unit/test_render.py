"""Rendered nginx files pass the real `nginx -t`, with and without the split file; forced
routing is honoured only for trusted testers (a real nginx on scratch ports)."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from canary import render
from canary.analysis import traffic
from canary.config import ConfigError, load

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"


def settings(**over):
    values = {"image": "odoo-erp", "image_tag": "v2", "host": "h", "ssh_private_key": KEY,
              "ssh_host_key": HOST_KEY, "listen_port": "18088", **over}
    return load(values.get, "test", frozenset({"force_token"}))


def nginx_test(tmp_path, site: str, split: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "site.conf").write_text(site.replace("/var/log/nginx", str(tmp_path / "logs")))
    if split is not None:
        (tmp_path / "split.conf").write_text(split)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
                    "events {}\nhttp {\n"
                    + (f"include {tmp_path}/split.conf;\n" if split is not None else "")
                    + f"include {tmp_path}/site.conf;\n}}\n")
    return subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)],
                          capture_output=True, text=True)


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")


@needs_nginx
@pytest.mark.parametrize("routing", ["cookie", "ip_hash", "hash"])
@pytest.mark.parametrize("weight", [None, 1, 10, 50, 99, 100])
def test_site_is_valid_with_and_without_split(tmp_path, routing, weight):
    s = settings(routing=routing)
    split = None if weight is None else render.split_config(
        render.SplitSpec.from_settings(s), weight, s.full_image)
    r = nginx_test(tmp_path, render.site_config(s), split)
    assert r.returncode == 0, r.stderr


def test_split_weights_and_header():
    s = settings()
    text = render.split_config(render.SplitSpec.from_settings(s), 25, "odoo-erp:v2")
    assert "weight=75;" in text and "weight=25;" in text
    assert "# 25 % canary (odoo-erp:v2 on :8070)" in text
    with pytest.raises(ValueError):
        render.split_config(render.SplitSpec.from_settings(s), 0, "x")


def test_site_script_quotes_the_content():
    s = settings(server_name="erp.example.com")
    script = render.site_apply_script(s)
    assert "printf '%s' '" in script  # one single-quoted argument
    assert "nginx -t" in script and "flock" in script


# -- forced routing ---------------------------------------------------------------------------
TOKEN = "t0ken-for-testers_0123456789"
FORCE = {"none": {}, "token": {"force_token": TOKEN},
         "allow": {"force_allow": '["127.0.0.8/29", "10.0.0.0/8", "192.0.2.7"]'},
         "both": {"force_token": TOKEN, "force_allow": "127.0.0.8/29, 192.0.2.7"}}


def split_of(s, weight=10, token=None):
    return render.split_config(render.SplitSpec.from_settings(s), weight, s.full_image,
                               s.force_token if token is None else token)


@needs_nginx
@pytest.mark.parametrize("routing", ["cookie", "ip_hash"])
@pytest.mark.parametrize("weight", [10, 100])
@pytest.mark.parametrize("force", sorted(FORCE))
def test_split_with_forced_routing_is_valid(tmp_path, routing, weight, force):
    s = settings(routing=routing, **FORCE[force])
    r = nginx_test(tmp_path, render.site_config(s), split_of(s, weight))
    assert r.returncode == 0, r.stderr
    # The preview (a placeholder instead of the token) is valid nginx too.
    r = nginx_test(tmp_path, render.site_config(s), render.split_preview(s, weight))
    assert r.returncode == 0, r.stderr


def test_without_token_or_allow_list_nothing_can_force():
    text = split_of(settings())
    assert "always\\|" not in text and "never\\|" not in text and "\\|force" not in text
    assert "trusted" not in text and "geo " not in text and "http_x_canary_token" not in text
    assert "$canary_odoo_forced" in text  # the access log's field stays defined


def test_the_preview_shows_a_placeholder_never_the_token():
    s = settings(**FORCE["both"])
    assert TOKEN in split_of(s)
    preview = render.split_preview(s, 10)
    assert TOKEN not in preview and render.FORCE_TOKEN_PLACEHOLDER in preview
    assert "127.0.0.8/29 1;" in preview and "192.0.2.7 1;" in preview
    assert TOKEN not in repr(s) and TOKEN not in json.dumps(render.SplitSpec.from_settings(s).__dict__)
    # The placeholder never matches a real token.
    assert not __import__("canary.config", fromlist=["x"]).FORCE_TOKEN_RE.fullmatch(
        render.FORCE_TOKEN_PLACEHOLDER)
    with pytest.raises(ValueError) as err:
        split_of(s, token="bad token\"; }")
    assert "bad token" not in str(err.value)


def test_force_token_and_allow_list_are_validated():
    ok = settings(force_token="a" * 16, force_allow="10.0.0.0/8 203.0.113.7/32")
    assert ok.force_allow == ("10.0.0.0/8", "203.0.113.7") and ok.force_token == "a" * 16
    for bad in ["short", "a" * 129, "a" * 15 + "$", "a" * 16 + "\n", "x" * 16 + " y", "a" * 16 + "|"]:
        with pytest.raises(ConfigError) as err:
            settings(force_token=bad)
        assert "canary:force_token is not allowed" in str(err.value)
        assert bad not in str(err.value)  # a secret is never echoed
    for bad in ["10.0.0.1/8", "10.0.0.0/7", "10.0.0.0/0", "10.0.0.0/33", "256.1.1.1", "010.0.0.1",
                "10.0.0.0/08", "::1", "example.com", "1.2.3.4; }", "1.2.3.4/", '["1.2.3.4", 5]',
                "1.2.3.4, x", "1.2.3.4\x00"]:
        with pytest.raises(ConfigError) as err:
            settings(force_allow=bad)
        assert "canary:force_allow" in str(err.value), bad
    with pytest.raises(ConfigError):
        settings(force_allow=json.dumps(["10.0.%d.0/24" % i for i in range(65)]))
    # A token set in plain text is refused: it must be a secret.
    values = {"image": "odoo-erp", "image_tag": "v2", "host": "h", "ssh_private_key": KEY,
              "ssh_host_key": HOST_KEY, "force_token": "a" * 16}
    with pytest.raises(ConfigError) as err:
        load(values.get, "test")
    assert "canary:force_token must be a secret" in str(err.value)


# A real nginx on scratch ports in front of two tiny backends that name themselves.
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend(name: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{name}:{self.headers.get('X-Canary-Token', '')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def site(tmp_path):
    """Starts nginx with the site and a split file rendered for the given settings."""
    started = []

    def start(force: str, routing: str = "cookie", weight: int = 10):
        stable, canary, listen = free_port(), free_port(), free_port()
        started.extend([backend("stable", stable), backend("canary", canary)])
        s = settings(routing=routing, stable_port=str(stable), canary_port=str(canary),
                     listen_port=str(listen), **FORCE[force])
        site_conf = render.site_config(s).replace(f"listen {listen};", f"listen 127.0.0.1:{listen};")
        r = nginx_test(tmp_path, site_conf, None if weight is None else split_of(s, weight))
        assert r.returncode == 0, r.stderr
        conf = tmp_path / "nginx.conf"
        conf.write_text("user root;\nworker_processes 1;\n" + conf.read_text())
        subprocess.run(["nginx", "-c", str(conf), "-p", str(tmp_path)], check=True)
        started.append(tmp_path)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        served.ports = [stable, canary]
        return listen, s

    yield start
    for thing in started:
        if isinstance(thing, ThreadingHTTPServer):
            thing.shutdown()
    if (tmp_path / "nginx.pid").exists():
        pid = int((tmp_path / "nginx.pid").read_text())
        os.kill(pid, 15)
        for _ in range(50):
            try:
                os.kill(pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break


def served(port: int, n: int = 100, source: str = "127.0.0.1", headers=None, cookie=None):
    """n requests, each a new client: which backend answered, and the pins handed out."""
    seen, pins, backends = Counter(), Counter(), Counter()
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        conn.request("GET", "/", headers=h)
        r = conn.getresponse()
        body = r.read().decode()
        name, _, passed_token = body.partition(":")
        assert passed_token == "", "the force token must not reach the app"
        seen[name] += 1
        backends[r.getheader("X-Canary-Backend")] += 1
        pins[bool(r.getheader("Set-Cookie"))] += 1
        conn.close()
    # X-Canary-Backend keeps the guide's localhost:PORT form.
    assert set(backends) <= {f"localhost:{p}" for p in served.ports}, backends
    return seen, pins


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nginx needs root for user/listen here")


@needs_nginx
@needs_root
def test_untrusted_force_attempts_are_split_like_everyone(site, tmp_path):
    port, s = site("both")
    attempts = [{"headers": {"X-Canary": "always"}}, {"cookie": "canary_odoo=force"},
                {"cookie": "canary_odoo=force.wrong-token-0123456789"},
                {"headers": {"X-Canary": "always", "X-Canary-Token": TOKEN.upper()}},
                {"headers": {"X-Canary": "always", "X-Canary-Token": TOKEN + "x"}},
                {"headers": {"X-Canary": "always", "X-Forwarded-For": "127.0.0.9", "X-Real-IP": "127.0.0.9"}},
                {"headers": {"X-Canary": "1|always|", "X-Canary-Token": "|force." + TOKEN[:-1]}},
                {"headers": {"X-Canary": "always"}, "source": "127.0.0.16"}]
    for attempt in attempts:
        seen, pins = served(port, 100, **attempt)
        assert seen["canary"] == 10, (attempt, seen)  # the weighted split: exactly 10 in 100
        assert pins[True] == 100  # treated as normal clients: pinned
    # Nothing of this is marked forced in the access log.
    log = (tmp_path / "logs" / "odoo-canary-access.log").read_text()
    assert '"forced":"canary"' not in log and '"forced":"stable"' not in log


@needs_nginx
@needs_root
def test_trusted_testers_force_a_backend_and_are_marked(site, tmp_path):
    port, s = site("both")
    for attempt in [{"headers": {"X-Canary": "always", "X-Canary-Token": TOKEN}},
                    {"headers": {"x-canary": "ALWAYS", "x-canary-token": TOKEN}},
                    {"cookie": f"canary_odoo=force.{TOKEN}"},
                    {"cookie": f"other=1; canary_odoo=force.{TOKEN}"},
                    {"headers": {"X-Canary": "always"}, "source": "127.0.0.9"},
                    {"cookie": "canary_odoo=force", "source": "127.0.0.15"}]:
        seen, pins = served(port, 30, **attempt)
        assert seen == {"canary": 30}, (attempt, seen)
        assert pins == {False: 30}, "a forced request gets no pin (the force cookie stays)"
    seen, _ = served(port, 30, headers={"X-Canary": "never", "X-Canary-Token": TOKEN})
    assert seen == {"stable": 30}
    # The access log marks them, and the analysis leaves them out.
    time.sleep(0.2)
    lines = (tmp_path / "logs" / "odoo-canary-access.log").read_text()
    stats = traffic.parse(lines, s.stable_port, s.canary_port)
    assert stats["forced"].requests == 6 * 30 + 30
    assert stats["canary"].requests == 0 and stats["stable"].requests == 0
    assert all(json.loads(line)["forced"] in ("canary", "stable") for line in lines.splitlines())


@needs_nginx
@needs_root
@pytest.mark.parametrize("force", ["none", "token", "allow"])
def test_each_trust_alone(site, force):
    port, _ = site(force, routing="ip_hash" if force == "allow" else "cookie")
    by_token, _ = served(port, 20, headers={"X-Canary": "always", "X-Canary-Token": TOKEN})
    by_address, _ = served(port, 20, source="127.0.0.9", headers={"X-Canary": "always"})
    assert (by_token["canary"] == 20) == (force == "token"), by_token
    assert (by_address["canary"] == 20) == (force == "allow"), by_address


@needs_nginx
@needs_root
def test_without_a_split_file_everything_is_stable_and_logged_unforced(site, tmp_path):
    port, s = site("none", weight=None)
    seen, pins = served(port, 20, headers={"X-Canary": "always", "X-Canary-Token": TOKEN},
                        cookie="canary_odoo=force")
    assert seen == {"stable": 20} and pins == {False: 20}
    time.sleep(0.2)
    lines = (tmp_path / "logs" / "odoo-canary-access.log").read_text().splitlines()
    assert len(lines) == 20 and all(json.loads(x)["forced"] == "" for x in lines)
    assert traffic.parse("\n".join(lines), s.stable_port, s.canary_port)["stable"].requests == 20


def test_the_site_serves_an_erp_uploads_long_answers_and_websockets():
    from canary.config import load
    from canary.render import site_config
    base = {"image": "odoo", "image_tag": "v1", "host": "10.0.0.5", "ssh_private_key": "-----BEGIN OPENSSH "
            "PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
            "ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"}
    text = site_config(load(base.get, "t"))
    assert "client_max_body_size 200m;" in text and "proxy_read_timeout 720s;" in text
    for path in ("/websocket", "/longpolling"):
        block = text.split(f"location {path} {{", 1)[1].split("}", 1)[0]
        # The same route as the pages (the split's variable), and the connection upgraded.
        assert "proxy_pass http://$canary_odoo_upstream;" in block
        assert "proxy_set_header Upgrade $http_upgrade;" in block and "X-Canary-Token \"\"" in block
    # Every location repeats the headers (its own proxy_set_header hides the server's).
    assert text.count('proxy_set_header X-Canary-Token "";') == 3
    custom = site_config(load({**base, "max_body_size": "1g", "proxy_timeout": "30s",
                               "websocket_paths": []}.get, "t"))
    assert "client_max_body_size 1g;" in custom and "proxy_read_timeout 30s;" in custom
    assert "Upgrade" not in custom


def test_pins_are_keyed_and_never_in_the_preview_or_the_inputs():
    from canary.spec import ReleaseSpec
    s = settings()
    spec = ReleaseSpec.from_settings(s).keyed("k" * 64)
    assert spec.split.pin_key == "k" * 64  # the stack's revision key
    assert "pin_key" not in spec.to_inputs()["split"] and "k" * 64 not in json.dumps(spec.to_inputs())
    assert ReleaseSpec.from_inputs({**spec.to_inputs(), "revision_key": "k" * 64}).split.pin_key == "k" * 64
    text = render.split_config(spec.split, 10, s.full_image)
    canary, stable = (render.pin("k" * 64, "odoo", role, s.full_image) for role in ("canary", "stable"))
    assert f"canary_odoo=canary.{canary};" in text and f"canary_odoo=stable.{stable};" in text
    assert render.generation(s.full_image) not in text.split("map ")[-2]  # the plain hash pins nothing
    # Another key, backend or canary: another pin.
    assert len({canary, stable, render.pin("j" * 64, "odoo", "canary", s.full_image),
                render.pin("k" * 64, "odoo", "canary", "odoo-erp:v3")}) == 4
    preview = render.split_preview(s, 10)
    assert f"canary.{render.PIN_PLACEHOLDER}" in preview and canary not in preview
    # Without a key (none known) the pins are random: never a value a client could know.
    assert render.split_config(render.SplitSpec.from_settings(s), 10, s.full_image) != \
        render.split_config(render.SplitSpec.from_settings(s), 10, s.full_image)


def issued_pin(port: int, backend: str) -> str:
    """The pin cookie nginx hands a new client it assigned to `backend`."""
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        r = conn.getresponse()
        name = r.read().decode().partition(":")[0]
        cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
        conn.close()
        if name == backend:
            return cookie
    raise AssertionError(f"no client was assigned to {backend}")


@needs_nginx
@needs_root
def test_only_pins_nginx_issued_keep_a_client_on_the_canary(site):
    port, s = site("none")
    made_up = [f"canary_odoo=canary.{render.generation(s.full_image)}",  # the old pin: the image's plain hash
               "canary_odoo=canary." + "0" * 24, "canary_odoo=canary.", "canary_odoo=canary",
               f"canary_odoo=canary.{render.pin('', 'odoo', 'canary', s.full_image)}"]  # keyed with no key
    for cookie in made_up:
        seen, pins = served(port, 100, cookie=cookie)
        assert seen["canary"] == 10, (cookie, seen)  # assigned like a new client: the split's share
        assert pins[True] == 100
    canary, stable = issued_pin(port, "canary"), issued_pin(port, "stable")
    assert canary.startswith("canary_odoo=canary.") and stable.startswith("canary_odoo=stable.")
    assert served(port, 50, cookie=canary)[0] == {"canary": 50}
    assert served(port, 50, cookie=stable)[0] == {"stable": 50}


def test_the_site_includes_what_an_adopted_site_kept_and_the_script_extracts_it(tmp_path):
    import subprocess

    from canary.config import load
    from canary.render import site_apply_script, site_config
    base = {"image": "odoo", "image_tag": "v1", "host": "10.0.0.5", "ssh_private_key": "-----BEGIN OPENSSH "
            "PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
            "ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"}
    s = load(base.get, "t")
    # A pattern: with no file (no adopted site) nginx includes nothing.
    assert "include /var/lib/canary/odoo/site.kept*.conf;" in site_config(s)
    script = site_apply_script(s)
    awk = script[script.index("awk -v"):script.index(" /var/lib/canary/odoo/site.pre-canary >")]
    adopted = tmp_path / "site"
    adopted.write_text("server {\n  listen 80;\n  return 301 https://$host$request_uri;\n}\n"
                       "server {\n  listen 443 ssl http2; # managed by Certbot\n"
                       "  ssl_certificate /etc/letsencrypt/live/erp/fullchain.pem;\n"
                       "  include /etc/letsencrypt/options-ssl-nginx.conf;\n  include /etc/nginx/other.conf;\n"
                       "  client_max_body_size 100m;\n  gzip on;\n"
                       "  location / { proxy_pass http://127.0.0.1:8069; gzip_types text/css; }\n"
                       "  location /x {\n    ssl_verify_depth 2;\n  }\n}\n")
    kept = subprocess.run(["sh", "-c", f"{awk} {adopted}"], capture_output=True, text=True, check=True).stdout
    assert kept.splitlines() == [
        "    listen 443 ssl http2;", "    ssl_certificate /etc/letsencrypt/live/erp/fullchain.pem;",
        "    include /etc/letsencrypt/options-ssl-nginx.conf;", "    gzip on;",
        "# not kept, the config sets them: client_max_body_size 100m;"]
