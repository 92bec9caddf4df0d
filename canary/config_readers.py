"""Keys read by code of their own: maps, lists, value-or-file keys and secrets.

Each reader is `read(r, f, values)`: `r` the Reader (raw values, problems, files,
which keys are secret), `f` the key's Field, `values` the keys read before it (FIELDS
order). It returns the key's canonical value and appends a problem naming the key for
anything not allowed. A secret is never echoed in a problem.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Optional

from .config_values import (ENV_NAME_RE, FORCE_TOKEN_RE, WEBHOOK_RE, ConfigError, Reader, default_registry,
                            force_network, mount_source_allowed, parse_int, volume)

if TYPE_CHECKING:
    from .config_fields import Field

FORCE_TOKEN_ALLOWED = ("16 to 128 letters, digits, '_' or '-' (e.g. `openssl rand -hex 24`), set with "
                       "`pulumi config set --secret force_token ...`")
FORCE_ALLOW_MAX = 64


def canary_steps(r: Reader, f: Field, values: dict) -> tuple[int, ...]:
    raw = r.get(f.name)
    if raw in (None, "", []):
        return ()
    try:
        if not isinstance(raw, list):
            raise ValueError
        steps = tuple(parse_int(s) for s in raw)
        if not steps or any(not 1 <= s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise ValueError
        return steps
    except (ValueError, TypeError):
        r.problems.append(f"canary:{f.name} = {str(raw)[:60]!r} is not allowed: {f.allowed}")
        return ()


def env_map(r: Reader, f: Field, values: dict) -> dict[str, str]:
    key, value = f.name, r.get(f.name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        r.problems.append(f"canary:{key} must be {f.allowed}")
        return {}
    out = {}
    for name, val in value.items():
        if not ENV_NAME_RE.fullmatch(str(name)):
            r.problems.append(f"canary:{key}.{str(name)[:40]!r} is not a valid variable name: letters, digits, _")
            continue
        if isinstance(val, (dict, list)) or "\n" in str(val) or "\0" in str(val):
            r.problems.append(f"canary:{key}.{name} must be a single-line string")
            continue
        out[str(name)] = "" if val is None else str(val).lower() if isinstance(val, bool) else str(val)
    return out


def volumes(r: Reader, f: Field, values: dict) -> tuple[str, ...]:
    """Mounts; a host path no container may see only with allow_host_mounts (read before)."""
    key, raw = f.name, r.get(f.name) or []
    if not isinstance(raw, list):
        r.problems.append(f"canary:{key} must be {f.allowed}")
        return ()
    good = []
    for v in raw:
        try:
            good.append(volume(v))
        except ValueError:
            r.problems.append(f"canary:{key} entry {str(v)[:60]!r} is not allowed: "
                              "SOURCE:/container/path[:ro|rw], SOURCE a volume name or absolute path")
            continue
        if not values["allow_host_mounts"] and not mount_source_allowed(v.split(":")[0]):
            r.problems.append(
                f"canary:{key} entry {str(v)[:60]!r} is not allowed: it mounts a host path no "
                "container may see (/, /etc, /root, /proc, /sys, /dev, /boot, /var/lib/docker, the "
                "Docker socket or its parents /var, /run, /var/run, or below them); use a "
                "named volume or a directory of the app (e.g. /srv/odoo), or set "
                "canary:allow_host_mounts true (dangerous: the container can take over the host)")
    return tuple(good)


# -- a value, or a file that holds it (KEY and KEY_file) ----------------------------------------
def value_or_file(normalize: Callable[[str], str], check: Callable[[str], bool]) -> Callable[..., Optional[str]]:
    """A reader of a required `KEY` that holds the value itself, or `KEY_file` a path to a
    file that holds it (KEY_file's own Field reads nothing: see `file_of`)."""
    def read(r: Reader, f: Field, values: dict) -> Optional[str]:
        key = f.name
        value, path = r.get(key), r.get(key + "_file")
        if value in (None, "") and path in (None, ""):
            r.problems.append(f"canary:{key} is required: {f.allowed}")
            return None
        source = f"canary:{key}"
        if value in (None, ""):
            source = f"canary:{key}_file = {str(path)[:60]!r}"
            try:
                value = r.read_file(str(path))
            except OSError as err:
                r.problems.append(f"{source}: cannot read the file ({err.strerror})")
                return None
        text = normalize(str(value))
        if not check(text):
            # Never echo the value: it may be a secret.
            r.problems.append(f"{source} is not allowed: {f.allowed}")
            return None
        return text
    return read


def file_of(r: Reader, f: Field, values: dict) -> Optional[str]:
    """`KEY_file`, read with its KEY: the file's path (user expanded) when KEY is unset and
    the value came from it, else None."""
    path, value = r.get(f.name), r.get(f.name.removesuffix("_file"))
    return os.path.expanduser(str(path)) if path and value in (None, "") else None


# -- secrets ------------------------------------------------------------------------------------
def notify_webhook(r: Reader, f: Field, values: dict) -> None:
    """Checked only: the release provider reads it from the stack config itself."""
    webhook = r.get(f.name)
    if webhook not in (None, "") and not WEBHOOK_RE.fullmatch(str(webhook)):
        r.problems.append(f"canary:{f.name} is not allowed: {f.allowed}")


def force_allow(r: Reader, f: Field, values: dict) -> tuple[str, ...]:
    # Not a structured key: a list in JSON, or addresses separated by commas or spaces.
    raw = r.get(f.name)
    allow: list[str] = []
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            raw = json.loads(raw)
        except ValueError:
            pass
    if isinstance(raw, str):
        raw = [p for p in re.split(r"[\s,]+", raw) if p]
    if raw in (None, []):
        raw = []
    if not isinstance(raw, list) or len(raw) > FORCE_ALLOW_MAX:
        r.problems.append(f"canary:force_allow = {str(raw)[:60]!r} is not allowed: {f.allowed}")
        raw = []
    for v in raw:
        try:
            net = force_network(v)
            if net not in allow:
                allow.append(net)
        except ValueError:
            r.problems.append(f"canary:force_allow entry {str(v)[:60]!r} is not allowed: {f.allowed}")
    return tuple(allow)


def load_force_token(get: Callable[[str], Any]) -> str:
    """The token that lets a tester force a backend ("" when none); never echoed."""
    token = get("force_token")
    if token in (None, ""):
        return ""
    if not isinstance(token, str) or not FORCE_TOKEN_RE.fullmatch(token):
        raise ConfigError([f"canary:force_token is not allowed: {FORCE_TOKEN_ALLOWED}"])
    return token


def force_token(r: Reader, f: Field, values: dict) -> str:
    token = ""
    try:
        token = load_force_token(r.get)
    except ConfigError as err:
        r.problems.extend(err.problems)
    if token and "force_token" not in r.secret_keys:
        r.problems.append("canary:force_token must be a secret: set it with "
                          "`pulumi config set --secret force_token ...`")
    return token


def registry_server(r: Reader, f: Field, values: dict) -> str:
    """Default: the registry named in the image (read first)."""
    server = r.value(f.name, f.parse, f.allowed, f.default, f.check, f.required)
    image = values["image"]
    return server or (default_registry(image) if image else "")


def registry_password(r: Reader, f: Field, values: dict) -> str:
    """A secret, or registry_password_file, a file that holds it."""
    password, path = r.get("registry_password"), r.get("registry_password_file")
    if password not in (None, "") and "registry_password" not in r.secret_keys:
        r.problems.append("canary:registry_password must be a secret: set it with "
                          "`pulumi config set --secret registry_password ...` (or use registry_password_file)")
        password = None
    if password in (None, "") and path not in (None, ""):
        try:
            password = r.read_file(str(path)).strip()
        except OSError as err:
            r.problems.append(f"canary:registry_password_file = {str(path)[:60]!r}: cannot read the file "
                              f"({err.strerror})")
    password = "" if password is None else str(password)
    if password and ("\n" in password or len(password) > 4096):
        r.problems.append(f"canary:registry_password is not allowed: {f.allowed}")
    return password
