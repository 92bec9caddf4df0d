"""The real ERP (Tryton on PostgreSQL, testhost/erp.sh) on the test host, and its users.

`ErpDatabase` runs the canary-erp-db:15 container the app's containers share (outside the
stack: the team's database, as on a droplet), published on the Docker bridge's address.
`ErpUsers` are people logging in through nginx and reading and writing while a release
runs: every write they were told succeeded is remembered, to be found afterwards.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from typing import Optional

import requests
from pulumi import automation as auto

from tests.erp_client import RpcError, login

from .harness import SITE_URL, TESTHOST, Deployment, sh

DB_PORT = 5434
DB_NAME = "erp"
ADMIN_PASSWORD = os.environ.get("ERP_ADMIN_PASSWORD") or "admin-e2e-pw"


def bridge_address() -> str:
    return sh("ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1").strip() or "172.17.0.1"


def ensure_images() -> None:
    sh(f"bash {TESTHOST.parent / 'erp.sh'} build")


class ErpDatabase:
    """PostgreSQL for the ERP: an empty database `erp` the first deploy's migration fills."""

    def __init__(self, name: str = "erpdb-e2e"):
        self.name, self.password = name, secrets.token_hex(12)
        self.address = bridge_address()

    def url(self, host: Optional[str] = None) -> str:
        return f"postgresql://erp:{self.password}@{host or self.address}:{DB_PORT}/{DB_NAME}"

    def __enter__(self) -> "ErpDatabase":
        self.remove()
        sh(f"docker run -d --name {self.name} -e POSTGRES_USER=erp -e POSTGRES_PASSWORD={self.password} "
           f"-e POSTGRES_DB={DB_NAME} -e POSTGRES_MAX_CONNECTIONS=100 -p {self.address}:{DB_PORT}:5432 "
           f"-v {self.name}:/var/lib/postgresql/data canary-erp-db:15")
        for _ in range(120):
            if sh(f"docker exec {self.name} pg_isready -U erp -d {DB_NAME} -h 127.0.0.1", check=False).find(
                    "accepting") >= 0:
                return self
            time.sleep(0.5)
        raise AssertionError(sh(f"docker logs {self.name} 2>&1 | tail -20", check=False))

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        sh(f"docker rm -f {self.name} >/dev/null 2>&1; docker volume rm {self.name} >/dev/null 2>&1", check=False)

    def psql(self, sql: str) -> str:
        return sh(f"docker exec {self.name} psql -U erp -d {DB_NAME} -At -c {sql!r}")

    def table_exists(self, table: str) -> bool:
        return self.psql(f"SELECT to_regclass('public.{table}') IS NOT NULL") .strip() == "t"


class ErpUsers:
    """`users` people who log in through nginx and write (create a party) and read (search
    the parties) in turns. Each request is a new client (no cookie), so the split sends
    its share to the canary."""

    def __init__(self, users: int = 4, pause: float = 0.05, base_url: str = SITE_URL):
        self.users, self.pause, self.base_url = users, pause, base_url
        self.written: list[str] = []  # parties whose creation was answered with an id
        self.outcomes: Counter = Counter()  # ok / rpc_error / http_<status> / <exception>
        self.rpc_errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(users)]

    def _count(self, what: str, name: Optional[str] = None) -> None:
        with self._lock:
            self.outcomes[what] += 1
            if name:
                self.written.append(name)

    def _run(self, user: int) -> None:
        session = None
        i = 0
        while not self._stop.is_set():
            try:
                if session is None:
                    session = login(self.base_url, DB_NAME, "admin", ADMIN_PASSWORD, timeout=30)
                    session.http.headers["Connection"] = "close"
                session.http.cookies.clear()
                i += 1
                if i % 2:
                    name = f"user{user}-{i}-{time.monotonic_ns()}"
                    session.create_party(name)
                    self._count("ok", name)
                else:
                    session.call("model.party.party.search_count", [], {})
                    self._count("ok")
            except RpcError as err:
                kind = "rpc_error" if err.error is not None else f"http_{err.status}"
                self._count(kind)
                with self._lock:
                    self.rpc_errors.append(str(err)[:200])
                if err.status in (401, 403):  # as Tryton's client does: log in again
                    session = None
            except requests.RequestException as err:
                self._count(type(err).__name__)
            time.sleep(self.pause)

    def __enter__(self) -> "ErpUsers":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    @property
    def failures(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k != "ok")


def all_party_names(base_url: str = SITE_URL) -> set[str]:
    return set(login(base_url, DB_NAME, "admin", ADMIN_PASSWORD).party_names())


def erp_deployment(workdir, db: ErpDatabase, **config: str) -> Deployment:
    """A stack of the ERP on `db`: v1 first; each release backs up, then runs the image's
    migration (erp-migrate); the scheduler runs in production only."""
    d = Deployment(workdir, config={
        "image": "canary-erp", "image_tag": "v1", "container_port": "8069",
        "migrate_command": "erp-migrate", "backup_image": "canary-erp-db:15", "backup_keep": "3",
        "startup_timeout": "120s", "monitoring_duration": "16s", "check_interval": "4s",
        "min_requests": "20", "max_response_time": "5s", **config})
    d.set_secret("database_url", db.url())
    d.set_secret("env.TRYTOND_DATABASE__URI", f"postgresql://erp:{db.password}@{db.address}:{DB_PORT}/")
    d.set_secret("env.ERP_ADMIN_PASSWORD", ADMIN_PASSWORD)
    for key, value in (("env.ERP_ADMIN_EMAIL", "admin@example.com"), ("env.ERP_CRON", "1"),
                       ("canary_env.ERP_CRON", "0")):  # the scheduler in production only
        d.stack.set_config(f"canary:{key}", auto.ConfigValue(value=value), path=True)
    return d


def backups(app: str = "odoo") -> list[str]:
    """The backup files on the test host (partial ones included)."""
    return sh(f"ls -1 /var/lib/canary/{app}/backups/ 2>/dev/null || true").split()


def main(argv: list[str]) -> None:
    """`python -m tests.e2e.erp users URL STOPFILE`: ERP users on the site at URL until
    STOPFILE exists; then what they saw, and whether every write is still there."""
    import sys
    _, url, stop = argv
    with ErpUsers(users=4, base_url=url) as users:
        while not os.path.exists(stop):
            time.sleep(0.2)
    lost = set(users.written) - all_party_names(url)
    failed = ", ".join(f"{n} {k}" for k, n in users.outcomes.items() if k != "ok") or "none"
    print(f"ERP users: {sum(users.outcomes.values())} calls, failed: {failed}; "
          f"{len(users.written)} writes acknowledged, {len(lost)} lost")
    sys.exit(1 if lost or users.failures else 0)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
