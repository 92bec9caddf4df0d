"""Renders the nginx configuration and the site's remote scripts from templates/.

Pure functions of Settings: the same config always renders the same text, so
`pulumi preview --diff` shows exactly what would be written to the host.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .config import FORCE_TOKEN_ALLOWED, FORCE_TOKEN_RE, Settings
from .remote import STATE_DIR


@functools.cache
def _templates():
    """The templates (jinja2 loads on first use: a provider process's first check and
    diff, which the engine makes one droplet at a time, need none)."""
    import jinja2
    return jinja2.Environment(
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
    """Short id of a canary release (shown in the split file's comments)."""
    return hashlib.sha256(canary_image.encode()).hexdigest()[:10]


# Stands for the pin cookies' values wherever the split file is shown rather than
# installed (`split_preview`, so the preview and the state): they are keyed secrets.
PIN_PLACEHOLDER = "<secret:pin>"


def pin(key: str, app: str, role: str, canary_image: str) -> str:
    """The value after `canary.` / `stable.` in a pin cookie: keyed with the stack's secret
    revision key, per app, backend and canary, so nginx honours only pins it issued. (A
    pin that was the canary's plain hash could be written by any client: it put itself on
    the canary and counted as the canary's real traffic.)"""
    return hmac.new(key.encode(), f"pin|{app}|{role}|{canary_image}".encode(), hashlib.sha256).hexdigest()[:24]


@dataclass(frozen=True)
class SplitSpec:
    """What the split file depends on besides the weight and the canary image."""

    stack: str
    app: str
    stable_port: int
    canary_port: int
    split_path: str
    routing: str
    # Addresses/networks whose requests may force a backend (canary:force_allow).
    force_allow: tuple[str, ...] = ()
    # The stack's revision key (ReleaseSpec sets it; never an input): keys the pin cookies.
    pin_key: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lists come back from the engine: keep the spec hashable and comparable.
        object.__setattr__(self, "force_allow", tuple(self.force_allow or ()))

    @classmethod
    def from_settings(cls, s: Settings) -> "SplitSpec":
        return cls(stack=s.stack, app=s.container_name, stable_port=s.stable_port,
                   canary_port=s.canary_port, split_path=s.split_path, routing=s.routing,
                   force_allow=tuple(s.force_allow))

    def values(self) -> dict:
        return {"stack": self.stack, "app": self.app, "id": nginx_id(self.app),
                "stable_port": self.stable_port, "canary_port": self.canary_port,
                "split_path": self.split_path}


def site_config(s: Settings) -> str:
    return _templates().get_template("site.conf.j2").render(
        **SplitSpec.from_settings(s).values(), listen_port=s.listen_port,
        server_name=s.server_name, access_log=s.access_log, max_body_size=s.max_body_size,
        proxy_timeout=f"{s.proxy_timeout:g}s", websocket_paths=s.websocket_paths,
        kept=f"{STATE_DIR}/{s.container_name}/site.kept*.conf")  # a pattern: none matched is fine


# Stands for canary:force_token wherever the split file is shown rather than installed
# (the release's `split_preview` input, so `pulumi preview --diff` and the state). It is
# outside the token's character set, so it never matches a real token.
FORCE_TOKEN_PLACEHOLDER = "<secret:force_token>"


def split_config(spec: SplitSpec, weight: int, canary_image: str,
                 force_token: Optional[str] = None, preview: bool = False) -> str:
    """The split file sending `weight` percent of new clients to `canary_image`
    (100: every request, pinned or not, as during a promotion). `preview`: pins shown
    as a placeholder; a split without the stack's key (none known) gets a random one
    (its clients are assigned afresh by the next split).

    Testers may force a backend only when trusted: `force_token` (canary:force_token,
    given only when the file is written to the host) or an address in
    `spec.force_allow`. Without either, force headers and cookies are ignored."""
    if not 0 < weight <= 100:
        raise ValueError(f"a split needs a weight from 1 to 100, not {weight}")
    if force_token and force_token != FORCE_TOKEN_PLACEHOLDER and not FORCE_TOKEN_RE.fullmatch(force_token):
        raise ValueError("canary:force_token is not allowed: " + FORCE_TOKEN_ALLOWED)  # never echoed
    key = spec.pin_key or secrets.token_hex(32)
    pins = {role: PIN_PLACEHOLDER if preview else pin(key, spec.app, role, canary_image)
            for role in ("canary", "stable")}
    return _templates().get_template("split.conf.j2").render(
        **spec.values(), weight=weight, canary_image=canary_image, routing=spec.routing,
        generation=generation(canary_image), pins=pins, token=force_token or "",
        allow=spec.force_allow)


def split_preview(s: Settings, weight: int) -> str:
    """The split file as shown in `pulumi preview --diff`: the token and the pins are
    placeholders."""
    return split_config(SplitSpec.from_settings(s), weight, s.full_image,
                        FORCE_TOKEN_PLACEHOLDER if s.force_token else None, preview=True)


def _script(name: str, s: Settings, **values: str) -> str:
    quoted = {k: shlex.quote(v) for k, v in values.items()}
    return _templates().get_template(name).render(
        app=s.container_name, state_dir=STATE_DIR, lock_file=shlex.quote(lock_file(s.container_name)),
        backup_dir=shlex.quote(f"{STATE_DIR}/{s.container_name}"),
        lock_wait=LOCK_WAIT_SECONDS, site_path=shlex.quote(s.site_path), listen_port=s.listen_port,
        split_path=shlex.quote(s.split_path), stack=shlex.quote(s.stack), **quoted)


def site_apply_script(s: Settings) -> str:
    return _script("site_apply.sh.j2", s, content=site_config(s))


def site_delete_script(s: Settings) -> str:
    return _script("site_delete.sh.j2", s)
