"""A small JSON-RPC client for Tryton, the ERP of the canary-erp images (testhost/erp.sh).

    session = login("http://127.0.0.1:8069", "erp", "admin", "secret")
    session.create_party("Acme")
    session.party_names()            # ["Acme", ...]
    session.call("model.party.party.search_read", [], 0, None, None, ["name"], {})

Tryton's JSON-RPC: POST /DB/rpc/ with {"id", "method", "params"} (those three keys, no
others). `common.db.login` with [login, {"password": ...}, language] answers [user id,
session key, ...]; later calls carry `Authorization: Session base64(login:id:key)`.
Model methods take the context as their last parameter. A failing call is answered
with **HTTP 200** and an `error` member instead of `result` (Tryton's own errors: [name,
args]; an unexpected exception: [message, traceback], and the server logs an ERROR
line): `call` raises RpcError for it, as for any non-200 answer (401: wrong password,
403/404: no such database or not logged in).

`ensure_database` creates (or migrates) the database with the image's own migration,
`erp-migrate`, in a one-off container.
"""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
from typing import Any, Optional, Sequence

import requests


class RpcError(Exception):
    """A call that Tryton refused or that failed: `error` is Tryton's `error` member
    (None when the HTTP status already says it), `status` the HTTP status."""

    def __init__(self, method: str, status: int, error: Any = None, reason: str = ""):
        self.method, self.status, self.error = method, status, error
        if error is not None:
            what = error[0] if isinstance(error, (list, tuple)) and error else error
            super().__init__(f"{method}: error {what!r} (HTTP {status})")
        else:
            super().__init__(f"{method}: HTTP {status} {reason}".rstrip())


_ids = itertools.count(1)


def _post(http: requests.Session, url: str, method: str, params: Sequence[Any],
          timeout: float) -> Any:
    payload = {"id": next(_ids), "method": method, "params": list(params)}
    response = http.post(url, json=payload, timeout=timeout)
    if response.status_code != 200:
        raise RpcError(method, response.status_code, reason=response.reason)
    data = response.json()
    if "error" in data:
        raise RpcError(method, response.status_code, error=data["error"])
    return data["result"]


class Session:
    """A logged-in user of one database."""

    def __init__(self, base_url: str, db: str, user: str, user_id: int, key: str,
                 http: Optional[requests.Session] = None, timeout: float = 30):
        self.base_url, self.db, self.user, self.user_id = base_url.rstrip("/"), db, user, user_id
        self.url = f"{self.base_url}/{db}/rpc/"
        self.timeout = timeout
        self.http = http or requests.Session()
        token = base64.b64encode(f"{user}:{user_id}:{key}".encode()).decode()
        self.http.headers["Authorization"] = f"Session {token}"

    def call(self, method: str, *params: Any) -> Any:
        """The method's result; RpcError when Tryton answers with an error."""
        return _post(self.http, self.url, method, params, self.timeout)

    def create_party(self, name: str) -> int:
        """The new party's id."""
        ids = self.call("model.party.party.create", [{"name": name}], {})
        return ids[0]

    def party_names(self) -> list[str]:
        """Every party's name, in the order of their ids."""
        rows = self.call("model.party.party.search_read", [], 0, None, [["id", "ASC"]], ["name"], {})
        return [row["name"] for row in rows]


def login(base_url: str, db: str, user: str, password: str, timeout: float = 30) -> Session:
    """A session for `user` (RpcError with status 401 for a wrong password)."""
    http = requests.Session()
    url = f"{base_url.rstrip('/')}/{db}/rpc/"
    result = _post(http, url, "common.db.login", [user, {"password": password}, "en"], timeout)
    user_id, key = result[0], result[1]
    return Session(base_url, db, user, user_id, key, http=http, timeout=timeout)


def migrate_argv(image: str, db: str = "erp", admin_email: str = "admin@example.com",
                 docker: Sequence[str] = ("docker",), extra_args: Sequence[str] = ()) -> list[str]:
    """The one-off container that runs the image's migration (`erp-migrate`): it creates
    the database `db` (UTF8) when it does not exist, with an admin user (this email, the
    password in ERP_ADMIN_PASSWORD), then activates and updates the image's modules
    (ERP_MODULES: v1 `party`, v2 `party company`). The database's URI
    (TRYTOND_DATABASE__URI=postgresql://USER:PW@HOST:PORT/, as the container reaches it)
    and ERP_ADMIN_PASSWORD come from the caller's environment (`-e NAME`): no secret on
    the command line."""
    return [*docker, "run", "--rm", "-e", "TRYTOND_DATABASE__URI", "-e", "ERP_ADMIN_PASSWORD",
            "-e", f"ERP_DB={db}", "-e", f"ERP_ADMIN_EMAIL={admin_email}", *extra_args,
            image, "erp-migrate"]


def ensure_database(image: str, database_uri: str, db: str = "erp", admin_password: str = "admin",
                    admin_email: str = "admin@example.com", docker: Sequence[str] = ("docker",),
                    extra_args: Sequence[str] = (), timeout: float = 300) -> subprocess.CompletedProcess:
    """Creates the database with the image's migration (see migrate_argv; a new one takes
    about 12 s); a database that exists is migrated to the image's modules. Raises
    subprocess.CalledProcessError, with trytond-admin's output, when it fails."""
    env = dict(os.environ, TRYTOND_DATABASE__URI=database_uri, ERP_ADMIN_PASSWORD=admin_password)
    argv = migrate_argv(image, db, admin_email, docker, extra_args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=True)
