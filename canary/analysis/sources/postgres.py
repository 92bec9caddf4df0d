"""Database connections, the guide's "Database connections < 80 % of max": client
connections in percent of PostgreSQL's `max_connections`, asked each check with
psycopg through an SSH tunnel to the database as the droplet reaches it (only port 22
of the droplet needs to be reachable, as for the probes).

The connection string (`database_url`, stack config, secret) reaches the release's
process through its provider configuration, never a resource input. Our own connection
is not counted; a database that cannot be asked is no number: the gate fails closed.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..verdict import Evidence, Measurement
from . import Check, Source

if TYPE_CHECKING:
    from ...remote.ssh import Host

QUERY = ("SELECT 100.0 * count(*) / current_setting('max_connections')::int FROM pg_stat_activity "
         "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")


def connections_percent(conninfo: str, timeout: float) -> float:
    import psycopg  # when first asked, not at the release's start
    with psycopg.connect(conninfo, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
        return float(conn.execute(QUERY).fetchone()[0])


class DatabaseConnections(Source):
    name = "database connections %"

    def __init__(self, host: Host, url: str, limit: float, timeout: float = 5.0):
        self.host, self.url, self.limit, self.timeout = host, url, limit, timeout
        self._stack = ExitStack()

    def __enter__(self) -> "DatabaseConnections":
        from psycopg.conninfo import make_conninfo
        where = urlsplit(self.url)
        local = self._stack.enter_context(self.host.forward(where.port or 5432, where.hostname or "127.0.0.1"))
        self.conninfo = make_conninfo(self.url, host="127.0.0.1", port=str(local))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def collect(self, evidence: Evidence, check: Check) -> None:
        try:
            value, note = connections_percent(self.conninfo, self.timeout), ""
        except Exception as err:  # psycopg's errors name the host and user, never the password
            value, note = None, f"the database could not be asked: {type(err).__name__}: {str(err).strip()[:200]}"
        evidence.measure(Measurement(self.name, value, max=self.limit, note=note))
