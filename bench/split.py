"""Split accuracy: the share of requests the canary gets, and whether clients stay put.

Runs on the local test host: two demo containers (stable v1, canary v2) behind two nginx
servers, this project's site + split file and the guide's `ip_hash` upstream, both at
the same weights. Clients are real TCP clients with their own source addresses on the
loopback /8 (127.A.B.C): 1 000 clients on distinct /24s, and 250 clients on one /24.
Each client sends 10 requests and keeps the cookies it is given.
"""

from __future__ import annotations

import http.client
import subprocess
from collections import Counter
from pathlib import Path

from canary import render
from canary.config import load

STABLE, CANARY, OURS, GUIDE, HASH = 18069, 18070, 18090, 18091, 18092
SITE = Path("/etc/nginx/sites-enabled/bench.conf")
SPLIT = Path("/etc/nginx/conf.d/bench-canary.conf")
GUIDE_SITE = Path("/etc/nginx/sites-enabled/bench-guide.conf")
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIItacbEdtqXT2Ea9U7i3NjqphXIndLeHps5lhqc6CTA1"

GUIDE_CONF = """# The guide's traffic split, verbatim but for names and ports.
upstream bench_guide_backend {{
    server 127.0.0.1:{stable} weight={sw};
    server 127.0.0.1:{canary} weight={cw};
    ip_hash;
}}
server {{
    listen {port};
    location / {{
        proxy_pass http://bench_guide_backend;
        add_header X-Canary-Backend $upstream_addr always;
    }}
}}
"""


def sh(cmd: str) -> None:
    subprocess.run(["bash", "-c", cmd], check=True, capture_output=True)


def settings(port: int, routing: str = "cookie"):
    values = {"image": "canary-demo", "image_tag": "v2", "host": "127.0.0.1",
              "ssh_private_key": KEY, "ssh_host_key": HOST_KEY, "container_name": "bench",
              "stable_port": str(STABLE), "canary_port": str(CANARY), "listen_port": str(port),
              "routing": routing}
    return load(values.get, "bench")


def configure(weight: int, routing: str) -> None:
    s = settings(OURS, routing)
    SITE.write_text(render.site_config(s))
    SPLIT.write_text(render.split_config(render.SplitSpec.from_settings(s), weight, s.full_image))
    GUIDE_SITE.write_text(GUIDE_CONF.format(stable=STABLE, canary=CANARY, sw=100 - weight,
                                            cw=weight, port=GUIDE))
    sh("nginx -t && nginx -s reload && sleep 0.5")


def client_requests(source: str, port: int, n: int) -> list[str]:
    """n requests from one client (own source address, own cookie jar): backends seen."""
    cookies: dict[str, str] = {}
    seen = []
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
        conn.request("GET", "/", headers=headers)
        r = conn.getresponse()
        r.read()
        backend = r.getheader("X-Canary-Backend", "")
        for value in r.headers.get_all("Set-Cookie") or []:
            k, _, rest = value.partition("=")
            cookies[k] = rest.split(";")[0]
        conn.close()
        seen.append("canary" if backend.endswith(str(CANARY)) else "stable")
    return seen


def measure(port: int, sources: list[str], per_client: int = 10) -> tuple[float, float]:
    """(canary share of requests %, clients that saw both backends %)."""
    total, switched = Counter(), 0
    for src in sources:
        seen = client_requests(src, port, per_client)
        total.update(seen)
        switched += len(set(seen)) > 1
    return 100.0 * total["canary"] / sum(total.values()), 100.0 * switched / len(sources)


def main() -> None:
    sh(f"docker rm -f bench-stable bench-canary >/dev/null 2>&1 || true; "
       f"docker run -d --name bench-stable -p 127.0.0.1:{STABLE}:8069 canary-demo:v1 && "
       f"docker run -d --name bench-canary -p 127.0.0.1:{CANARY}:8069 canary-demo:v2 && sleep 1")
    distinct = [f"127.{1 + i // 250}.{i % 250}.7" for i in range(1000)]
    one_net = [f"127.200.1.{2 + i}" for i in range(250)]
    try:
        print("Split accuracy: canary share of all requests (10 per client; target = weight); "
              "'switched' = clients that saw both versions")
        print(f"{'routing':34} {'weight':>6} {'1000 clients, distinct /24s':>30} {'250 clients, one /24':>26}")
        for weight in (10, 25, 50):
            for name, routing, port in (("project: cookie + weighted RR", "cookie", OURS),
                                        ("project: hash (no cookie)", "hash", OURS),
                                        ("guide: ip_hash", None, GUIDE)):
                configure(weight, routing or "cookie")
                a, sa = measure(port, distinct)
                b, sb = measure(port, one_net)
                print(f"{name:34} {weight:>5}% {a:>14.1f}% switched {sa:4.1f}% {b:>10.1f}% switched {sb:4.1f}%")
    finally:
        for f in (SITE, SPLIT, GUIDE_SITE):
            f.unlink(missing_ok=True)
        sh("nginx -s reload; docker rm -f bench-stable bench-canary >/dev/null 2>&1 || true")


if __name__ == "__main__":
    main()
