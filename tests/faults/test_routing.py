"""Forced routing through the real CLI on the local test host: only trusted testers can
steer a request to the canary, forced requests do not count in the analysis, and the
force token stays out of the state, the preview and the CLI output.

The canary holds at 10 % (auto_promote false). Trusted: the secret canary:force_token,
and canary:force_allow = 127.0.0.8/29 (the test client speaks from 127.0.0.9 for it;
127.0.0.1 is not in the list).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest

from canary.render import generation
from tests.e2e.harness import Deployment, Load, containers, reset_host, sh

from .conftest import record

TOKEN = "fault-suite-force-token-7c41e9b2"
PLACEHOLDER = "<secret:force_token>"
ALLOWED_NET, ALLOWED, OUTSIDE = "127.0.0.8/29", "127.0.0.9", "127.0.0.1"
SPLIT = "/etc/nginx/conf.d/odoo-canary.conf"
ACCESS_LOG = "/var/log/nginx/odoo-canary-access.log"


def get(source: str = OUTSIDE, headers=None, cookie=None) -> str:
    """One request of a new client (no cookie jar): the version that answered."""
    conn = http.client.HTTPConnection("127.0.0.1", 8088, timeout=10, source_address=(source, 0))
    try:
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        conn.request("GET", "/", headers=h)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        return body.split(":")[0] if r.status == 200 else str(r.status)
    finally:
        conn.close()


def canary_share(n: int = 100, **kw) -> int:
    """How many of n new clients the canary (v2) served."""
    return Counter(get(**kw) for _ in range(n))["canary-demo v2"]


class Forcer:
    """A trusted tester hitting the canary through the force path while users come and go."""

    def __init__(self, rate: float = 40.0):
        self.rate = rate
        self.seen: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.seen[get(headers={"X-Canary": "always", "X-Canary-Token": TOKEN})] += 1
            except OSError as err:
                self.seen[type(err).__name__] += 1
            time.sleep(1 / self.rate)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture
def held(tmp_path):
    """v1 in production, then v2 analysed at 10 % with users and a trusted tester, held."""
    reset_host()
    d = Deployment(tmp_path)
    d.up()
    d.set(image_tag="v2", auto_promote="false", canary_percentage="10",
          force_allow=json.dumps([ALLOWED_NET]))
    d.set_secret("force_token", TOKEN)
    d.preview_diff = d.cli("preview", "--diff").stdout
    log_before = int(sh(f"wc -l < {ACCESS_LOG} 2>/dev/null || echo 0").strip() or 0)
    with Load() as load, Forcer() as forcer:
        d.up()
    d.load, d.forcer = load, forcer
    d.forced_logged = sum('"forced":"canary"' in line for line in
                          sh(f"tail -n +{log_before + 1} {ACCESS_LOG}").splitlines())
    yield d
    reset_host()


def test_forced_routing_only_for_trusted_testers(held):
    d = held
    out = d.outputs()
    assert out["phase"] == "holding" and out["canary_weight"] == 10, out["message"]
    assert containers() == {"odoo": "canary-demo:v1", "odoo-canary": "canary-demo:v2"}

    # (1) untrusted clients: their force header or cookie is ignored, the split decides.
    untrusted = {
        "X-Canary: always": canary_share(headers={"X-Canary": "always"}),
        "cookie force": canary_share(cookie="canary_odoo=force"),
        "cookie force.<wrong token>": canary_share(cookie="canary_odoo=force.not-the-token-0123456789"),
        "wrong X-Canary-Token": canary_share(headers={"X-Canary": "always", "X-Canary-Token": TOKEN[:-1]}),
        "spoofed X-Forwarded-For": canary_share(headers={"X-Canary": "always", "X-Forwarded-For": ALLOWED,
                                                         "X-Real-IP": ALLOWED}),
        "address outside the allow-list": canary_share(source="127.0.0.16", headers={"X-Canary": "always"}),
    }
    print("untrusted force attempts, canary share of 100 new clients:", untrusted)
    record("untrusted X-Canary header / force cookie land on the canary only at the split's "
           f"10 % ({min(untrusted.values())}-{max(untrusted.values())} of 100)",
           {f"{attempt}: {n} of 100 on the canary, within the split's 3-20": 3 <= n <= 20
            for attempt, n in untrusted.items()})

    # (2) the token: every request to the canary.
    by_token = {"header": canary_share(headers={"X-Canary": "always", "X-Canary-Token": TOKEN}),
                "cookie": canary_share(cookie=f"canary_odoo=force.{TOKEN}")}
    record(f"trusted tester with the force token: {by_token['header']}/100 and "
           f"{by_token['cookie']}/100 on the canary",
           {f"token in the {way}: all 100 on the canary": n == 100 for way, n in by_token.items()})

    # (3) an allow-listed address, without the token.
    by_address = {"header": canary_share(source=ALLOWED, headers={"X-Canary": "always"}),
                  "cookie": canary_share(source=ALLOWED, cookie="canary_odoo=force")}
    record(f"trusted tester from an allow-listed address: {by_address['header']}/100 and "
           f"{by_address['cookie']}/100 on the canary",
           {f"force {way} from {ALLOWED}: all 100 on the canary": n == 100 for way, n in by_address.items()})

    # (4) the analysis counted the users, not the tester's forced requests.
    a = out["analysis"]
    users_on_canary = d.load.backends["localhost:8070"]
    forced = d.forcer.seen["canary-demo v2"]
    print(f"analysis canary requests {a['canary']['requests']}, users on the canary during the "
          f"update {users_on_canary}, forced requests {forced} (logged forced: {d.forced_logged})")
    record(f"forced requests left out of the analysis ({a['canary']['requests']} canary requests "
           f"counted, {forced} forced ones not)",
           {"the analysis passed": a["decision"] == "pass",
            "the analysis counted canary requests": a["canary"]["requests"] > 0,
            "it counted no more than the users sent to the canary": a["canary"]["requests"] <= users_on_canary,
            "forced requests outnumber the users' on the canary 3 to 1": forced >= 3 * users_on_canary,
            "every forced request is logged as forced": d.forced_logged == forced,
            # before the split file exists, nothing can be forced: production answers
            "every forced request answered, by v1 or v2": set(d.forcer.seen) <= {"canary-demo v1", "canary-demo v2"}},
           lost=d.load.failures)

    # (5) the token is nowhere but in the split file on the host (mode 600).
    split_file = sh(f"cat {SPLIT}")
    mode = sh(f"stat -c %a {SPLIT}").strip()
    places = {"stack export": d.export(), "preview --diff": d.preview_diff,
              "CLI output": "\n".join(d.log), "stack outputs": json.dumps(d.outputs()),
              "access log": sh(f"cat {ACCESS_LOG}")}
    leaks = [p for p, text in places.items() if TOKEN in text]
    record("force token kept out of state, preview diff, CLI output and outputs",
           {"the token is in none of them, nor in the access log": not leaks,
            "the preview diff shows the placeholder": PLACEHOLDER in d.preview_diff,
            "the exported state shows the placeholder": PLACEHOLDER in places["stack export"],
            "the split file holds the token": TOKEN in split_file,
            "the split file is mode 600": mode == "600"}, leaks=leaks)


def issued_pin(backend: str) -> str:
    """The pin cookie nginx hands a new client it assigned to `backend` ("canary-demo v2")."""
    for _ in range(300):
        conn = http.client.HTTPConnection("127.0.0.1", 8088, timeout=10, source_address=(OUTSIDE, 0))
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            name = r.read().decode(errors="replace").split(":")[0]
            if name == backend:
                return (r.getheader("Set-Cookie") or "").split(";")[0]
        finally:
            conn.close()
    raise AssertionError(f"no new client was assigned to {backend}")


def test_only_pins_nginx_issued_keep_a_client_on_the_canary(held):
    """A client that writes itself a pin cookie (before: `canary.` and the canary image's
    plain hash, which anyone can compute) is assigned like a new client, not pinned to
    the canary and counted as its real traffic; a pin nginx issued still keeps its client."""
    d = held
    image = d.outputs()["canary_image"]
    made_up = {"the old pin, the image's plain hash": f"canary_odoo=canary.{generation(image)}",
               "a guessed pin": "canary_odoo=canary." + "0" * 24,
               "a stable pin turned canary": issued_pin("canary-demo v1").replace("=stable.", "=canary.")}
    shares = {what: canary_share(cookie=cookie) for what, cookie in made_up.items()}
    issued = issued_pin("canary-demo v2")
    pinned = canary_share(cookie=issued)
    pin = issued.rsplit(".", 1)[1]
    print({"canary share of 100 requests": shares, "issued pin": pinned})
    record(f"made-up pin cookies land on the canary only at the split's 10 % ({min(shares.values())}-"
           f"{max(shares.values())} of 100); an issued pin keeps its client ({pinned}/100)",
           {**{f"{what}: {n} of 100 on the canary, within the split's 3-20": 3 <= n <= 20
               for what, n in shares.items()},
            "an issued canary pin: all 100 on the canary": pinned == 100,
            "the pin is keyed, not the image's hash": generation(image) not in pin and len(pin) == 24,
            "the pin is in neither the state nor the preview diff": pin not in d.export() + d.preview_diff})
