"""Renders the nginx configuration and the site's remote scripts from templates/.

Pure functions of Settings: the same config always renders the same text, so
`pulumi preview --diff` shows exactly what would be written to the host.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .config import Settings
from .remote import STATE_DIR

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)

# A second deployment of the same app waits this long, then gets a clear refusal.
LOCK_WAIT_SECONDS = 10


def nginx_id(app: str) -> str:
    """The app's name as an nginx identifier (upstream and variable names)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", app)


def lock_file(app: str) -> str:
    return f"{STATE_DIR}/{app}.lock"


def generation(canary_image: str) -> str:
    """Short id of a canary release; cookies pinned to another canary don't match it."""
    return hashlib.sha256(canary_image.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SplitSpec:
    """What the split file depends on besides the weight and the canary image."""

    stack: str
    app: str
    stable_port: int
    canary_port: int
    split_path: str
    routing: str

    @classmethod
    def from_settings(cls, s: Settings) -> "SplitSpec":
        return cls(stack=s.stack, app=s.container_name, stable_port=s.stable_port,
                   canary_port=s.canary_port, split_path=s.split_path, routing=s.routing)

    def values(self) -> dict:
        return {"stack": self.stack, "app": self.app, "id": nginx_id(self.app),
                "stable_port": self.stable_port, "canary_port": self.canary_port,
                "split_path": self.split_path}


def site_config(s: Settings) -> str:
    return _env.get_template("site.conf.j2").render(
        **SplitSpec.from_settings(s).values(), listen_port=s.listen_port,
        server_name=s.server_name, access_log=s.access_log)


def split_config(spec: SplitSpec, weight: int, canary_image: str) -> str:
    """The split file sending `weight` percent of new clients to `canary_image`
    (100: every request, pinned or not, as during a promotion)."""
    if not 0 < weight <= 100:
        raise ValueError(f"a split needs a weight from 1 to 100, not {weight}")
    return _env.get_template("split.conf.j2").render(
        **spec.values(), weight=weight, canary_image=canary_image, routing=spec.routing,
        generation=generation(canary_image))


def _script(name: str, s: Settings, **values: str) -> str:
    quoted = {k: shlex.quote(v) for k, v in values.items()}
    return _env.get_template(name).render(
        app=s.container_name, state_dir=STATE_DIR, lock_file=shlex.quote(lock_file(s.container_name)),
        backup_dir=shlex.quote(f"{STATE_DIR}/{s.container_name}"),
        lock_wait=LOCK_WAIT_SECONDS, site_path=shlex.quote(s.site_path),
        split_path=shlex.quote(s.split_path), stack=shlex.quote(s.stack), **quoted)


def site_apply_script(s: Settings) -> str:
    return _script("site_apply.sh.j2", s, content=site_config(s))


def site_delete_script(s: Settings) -> str:
    return _script("site_delete.sh.j2", s)
