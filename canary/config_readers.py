"""Keys read by code of their own: maps, lists, value-or-file keys and secrets.

Each reader is `read(r, f, values)`: `r` the Reader (raw values, problems, files,
which keys are secret), `f` the key's Field, `values` the keys read before it (FIELDS
order). It returns the key's canonical value and appends a problem naming the key for
anything not allowed. A secret is never echoed in a problem.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urlsplit

from .analysis.sources.prometheus import PLACEHOLDERS, PromMetric, unknown_placeholders
from .config_values import (ENV_NAME_RE, FORCE_TOKEN_RE, HOST_KEY_RE, URL_PATH_RE, USER_RE, WEBHOOK_RE, ConfigError,
                            Reader, default_mount_prefixes, default_registry, is_host, is_port, force_network,
                            local_address_kind, mount_prefix, mount_source_allowed, parse_float, parse_int, volume)
from .target import Target

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


def websocket_paths(r: Reader, f: Field, values: dict) -> tuple[str, ...]:
    raw = r.get(f.name)
    if raw is None:
        raw = ["/websocket", "/longpolling"]
    if raw in ("", []):
        return ()
    if not isinstance(raw, list) or len(raw) > 16 or not all(
            isinstance(p, str) and URL_PATH_RE.fullmatch(p) and p != "/" for p in raw):
        r.problems.append(f"canary:{f.name} = {str(raw)[:60]!r} is not allowed: {f.allowed}")
        return ()
    return tuple(dict.fromkeys(raw))


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


def host_mount_prefixes(r: Reader, f: Field, values: dict) -> tuple[str, ...]:
    """The directories whose host paths containers may mount (default: /srv, /opt/APP)."""
    raw = r.get(f.name)
    if raw in (None, "", []):
        return default_mount_prefixes(values["container_name"] or "app")
    if not isinstance(raw, list) or len(raw) > 32:
        r.problems.append(f"canary:{f.name} = {str(raw)[:60]!r} is not allowed: {f.allowed}")
        return ()
    prefixes = []
    for v in raw:
        try:
            prefixes.append(mount_prefix(v))
        except ValueError:
            r.problems.append(f"canary:{f.name} entry {str(v)[:60]!r} is not allowed: {f.allowed}")
    return tuple(prefixes)


def volumes(r: Reader, f: Field, values: dict) -> tuple[str, ...]:
    """Mounts: named volumes, and host paths under host_mount_prefixes unless
    allow_host_mounts (both read before)."""
    key, raw = f.name, r.get(f.name) or []
    if not isinstance(raw, list):
        r.problems.append(f"canary:{key} must be {f.allowed}")
        return ()
    prefixes = values["host_mount_prefixes"] or ()
    good = []
    for v in raw:
        try:
            good.append(volume(v))
        except ValueError:
            r.problems.append(f"canary:{key} entry {str(v)[:60]!r} is not allowed: "
                              "SOURCE:/container/path[:ro|rw], SOURCE a volume name or absolute path")
            continue
        if not values["allow_host_mounts"] and not mount_source_allowed(v.split(":")[0], prefixes):
            r.problems.append(
                f"canary:{key} entry {str(v)[:60]!r} is not allowed: it mounts a host path outside "
                f"canary:host_mount_prefixes ({', '.join(prefixes) or 'none'}). Allowed: a named volume "
                "(e.g. odoo-data:/var/lib/odoo), or a host directory under one of those prefixes (e.g. "
                f"{(prefixes or ('/srv',))[0]}/data:/data); add the app's directory to canary:host_mount_prefixes, "
                "or set canary:allow_host_mounts true (dangerous: the container can take over the host)")
    return tuple(good)


# -- a value, or a file that holds it (KEY and KEY_file) ----------------------------------------
def value_or_file(normalize: Callable[[str], str], check: Callable[[str], bool],
                  optional_with: str = "") -> Callable[..., Optional[str]]:
    """A reader of a required `KEY` that holds the value itself, or `KEY_file` a path to a
    file that holds it (KEY_file's own Field reads nothing: see `file_of`). With
    `optional_with` set, KEY is optional (a shared default) when that key is set."""
    def read(r: Reader, f: Field, values: dict) -> Optional[str]:
        key = f.name
        value, path = r.get(key), r.get(key + "_file")
        if value in (None, "") and path in (None, ""):
            if not (optional_with and r.get(optional_with) not in (None, "", [])):
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


def read_key_text(r: Reader, source: str, value: Any, path: Any) -> Optional[str]:
    """A host key line from a value or a file ("source" names it in problems)."""
    if value in (None, ""):
        try:
            value = r.read_file(os.path.expanduser(str(path)))
        except OSError as err:
            r.problems.append(f"{source}_file = {str(path)[:60]!r}: cannot read the file ({err.strerror})")
            return None
    return " ".join(str(value).split()[:2])


def file_of(r: Reader, f: Field, values: dict) -> Optional[str]:
    """`KEY_file`, read with its KEY: the file's path (user expanded) when KEY is unset and
    the value came from it, else None."""
    path, value = r.get(f.name), r.get(f.name.removesuffix("_file"))
    return os.path.expanduser(str(path)) if path and value in (None, "") else None


# -- secrets ------------------------------------------------------------------------------------
def notify_webhook(r: Reader, f: Field, values: dict) -> None:
    """Checked only: the release provider reads it from the stack config itself (and
    checks the address it connects to: notify.py). Never echoed: it is a secret."""
    webhook = r.get(f.name)
    if webhook in (None, ""):
        return
    if not WEBHOOK_RE.fullmatch(str(webhook)):
        r.problems.append(f"canary:{f.name} is not allowed: {f.allowed}")
        return
    try:
        host = urlsplit(str(webhook)).hostname or ""
    except ValueError:
        host = ""
    kind = "a loopback address" if host == "localhost" or host.endswith(".localhost") else local_address_kind(host)
    if kind and not values["notify_allow_local"]:
        r.problems.append(f"canary:{f.name} (secret, not shown) is not allowed: its host is {kind}; "
                          "set canary:notify_allow_local true for a receiver on this machine")


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


# -- the droplets ----------------------------------------------------------------------------
HOST_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
HOST_ENTRY_KEYS = ("name", "host", "ssh_port", "ssh_user", "ssh_host_key", "ssh_host_key_file")
MAX_HOSTS = 64


def host(r: Reader, f: Field, values: dict) -> Optional[str]:
    """The one droplet: required unless canary:hosts lists them (never both)."""
    raw, fleet = r.get(f.name), r.get("hosts")
    if fleet not in (None, "", []):
        if raw not in (None, ""):
            r.problems.append("canary:host and canary:hosts are both set: set canary:host for one droplet, "
                              "or list every droplet in canary:hosts")
        return None
    if raw in (None, "") or not is_host(str(raw)):
        shown = str(raw or "")[:60]
        r.problems.append(f"canary:host = {shown!r} is not allowed: {f.allowed}" if shown
                          else f"canary:host is required: {f.allowed} (or canary:hosts, a list of droplets)")
        return None
    return str(raw)


def hosts(r: Reader, f: Field, values: dict) -> tuple[Target, ...]:
    """Every droplet as an SSH target: canary:host alone is a fleet of one (named ""); the
    entries of canary:hosts take what they leave out from the top-level keys."""
    raw = r.get(f.name)
    if raw in (None, "", []):
        if None in (values["host"], values["ssh_port"], values["ssh_user"], values["ssh_host_key"]):
            return ()
        return (Target(values["host"], values["ssh_port"], values["ssh_user"], values["ssh_host_key"],
                       values["ssh_private_key"] or ""),)
    if not isinstance(raw, list) or len(raw) > MAX_HOSTS:
        r.problems.append(f"canary:hosts must be {f.allowed}")
        return ()
    targets, seen, addresses = [], set(), set()
    for i, entry in enumerate(raw):
        key = f"canary:hosts[{i}]"
        entry = {"host": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict):
            r.problems.append(f"{key} must be an address or a map with {', '.join(HOST_ENTRY_KEYS)}")
            continue
        unknown = sorted(str(k)[:30] for k in entry if k not in HOST_ENTRY_KEYS)
        if unknown:
            r.problems.append(f"{key} has unknown keys {unknown}: allowed are {', '.join(HOST_ENTRY_KEYS)}")
        before = len(r.problems)
        name = str(entry.get("name") or f"host-{i + 1}")
        if not HOST_NAME_RE.fullmatch(name):
            r.problems.append(f"{key}.name = {name[:60]!r} is not allowed: 1 to 32 lower-case letters, digits "
                              "or '-' (it names the droplet's resources)")
        elif name in seen:
            r.problems.append(f"{key}.name = {name!r} is not allowed: another droplet has that name")
        seen.add(name)
        address = str(entry.get("host") or "")
        if not is_host(address):
            r.problems.append(f"{key}.host = {address[:60]!r} is not allowed: the droplet's host name or IPv4 address")
        port = values["ssh_port"] if entry.get("ssh_port") in (None, "") else entry["ssh_port"]
        try:
            port = parse_int(port)
            if not is_port(port):
                raise ValueError
        except (ValueError, TypeError):
            r.problems.append(f"{key}.ssh_port = {str(port)[:60]!r} is not allowed: a TCP port from 1 to 65535")
        user = str(entry.get("ssh_user") or values["ssh_user"] or "")
        if not USER_RE.fullmatch(user):
            r.problems.append(f"{key}.ssh_user = {user[:60]!r} is not allowed: a Unix user name such as root or deploy")
        if entry.get("ssh_host_key") or entry.get("ssh_host_key_file"):
            host_key = read_key_text(r, f"{key}.ssh_host_key", entry.get("ssh_host_key"),
                                     entry.get("ssh_host_key_file"))
        else:
            host_key = values["ssh_host_key"]
            if not host_key:
                r.problems.append(f"{key}.ssh_host_key is required (or canary:ssh_host_key shared by all): "
                                  "the host's public key line, e.g. 'ssh-ed25519 AAAA...' (ssh-keyscan -t "
                                  "ed25519 HOST), or ssh_host_key_file, a path to it")
        if host_key and not HOST_KEY_RE.fullmatch(host_key):
            r.problems.append(f"{key}.ssh_host_key is not allowed: the host's public key line, e.g. "
                              "'ssh-ed25519 AAAA...'")
        if len(r.problems) > before:
            continue
        if (address, port) in addresses:
            r.problems.append(f"{key}.host = {address!r} (port {port}) is not allowed: another entry is that droplet")
            continue
        addresses.add((address, port))
        targets.append(Target(address, port, user, host_key, values["ssh_private_key"] or "", name=name))
    return tuple(targets)


# -- the app's database ------------------------------------------------------------------------
DATABASE_URL_RE = re.compile(r"^postgres(?:ql)?://[^\s/@]+(?::[^\s/@]*)?@[A-Za-z0-9.-]+(?::\d{1,5})?/[A-Za-z0-9_.-]+"
                             r"(?:\?[A-Za-z0-9_=&.-]*)?$")
DATABASE_URL_ALLOWED = ("a PostgreSQL URL as the droplet reaches the database, "
                        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, set with --secret")


def database_url(r: Reader, f: Field, values: dict) -> Optional[str]:
    """The app's PostgreSQL database (a password inside): a secret, never echoed."""
    url = r.get("database_url")
    if url in (None, ""):
        return None
    if "database_url" not in r.secret_keys:
        r.problems.append("canary:database_url must be a secret: set it with "
                          "`pulumi config set --secret database_url postgresql://...`")
        return None
    if not isinstance(url, str) or not DATABASE_URL_RE.fullmatch(url):
        r.problems.append(f"canary:database_url (secret, not shown) is not allowed: {DATABASE_URL_ALLOWED}")
        return None
    return url


def migrate_command(r: Reader, f: Field, values: dict) -> Optional[tuple[str, ...]]:
    """The migration's argv: split as a shell would, and passed to `docker run` word by
    word (no shell on the host ever sees it). A bad one is not echoed (long, multi-line)."""
    text = r.get("migrate_command")
    if text in (None, ""):
        return None
    try:
        if not isinstance(text, str) or "\n" in text or len(text) >= 1000:
            raise ValueError
        argv = tuple(shlex.split(text))
        if not argv:
            raise ValueError
        return argv
    except ValueError:
        r.problems.append(f"canary:migrate_command (not shown) is not allowed: {f.allowed}")
        return None


# -- Prometheus metrics ----------------------------------------------------------------------------
PROMETHEUS_METRIC_KEYS = ("name", "query", "max", "min")
PROMETHEUS_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MAX_PROMETHEUS_METRICS = 20
PROMETHEUS_QUERY_ALLOWED = ("a PromQL query that answers one number, at most 2000 characters; it may name the "
                            "release with " + ", ".join(f"${p}" for p in PLACEHOLDERS) + " (nothing else after a '$')")


def prometheus_metrics(r: Reader, f: Field, values: dict) -> tuple[PromMetric, ...]:
    """Each metric: a unique short name, a query and at least one limit (min <= max)."""
    raw = r.get(f.name)
    if raw in (None, "", []):
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_PROMETHEUS_METRICS:
        r.problems.append(f"canary:{f.name} = {str(raw)[:60]!r} is not allowed: {f.allowed}")
        return ()
    metrics, seen = [], set()
    for i, entry in enumerate(raw):
        key = f"canary:{f.name}[{i}]"
        if not isinstance(entry, dict):
            r.problems.append(f"{key} must be a map with {', '.join(PROMETHEUS_METRIC_KEYS)}: {f.allowed}")
            continue
        before = len(r.problems)
        unknown = sorted(str(k)[:30] for k in entry if k not in PROMETHEUS_METRIC_KEYS)
        if unknown:
            r.problems.append(f"{key} has unknown keys {unknown}: allowed are {', '.join(PROMETHEUS_METRIC_KEYS)}")
        name = entry.get("name")
        if not isinstance(name, str) or not PROMETHEUS_NAME_RE.fullmatch(name):
            r.problems.append(f"{key}.name = {str(name)[:60]!r} is not allowed: 1 to 40 letters, digits, '_', '.' "
                              "or '-' (it names the metric in progress lines and reasons)")
        elif name in seen:
            r.problems.append(f"{key}.name = {name!r} is not allowed: another metric has that name")
        seen.add(name)
        query = entry.get("query")
        if not isinstance(query, str) or not query.strip() or len(query) > 2000 or "\0" in query:
            r.problems.append(f"{key}.query is not allowed: {PROMETHEUS_QUERY_ALLOWED}")
        elif unknown_placeholders(query):
            r.problems.append(f"{key}.query names {', '.join(unknown_placeholders(query))}: not allowed: "
                              f"{PROMETHEUS_QUERY_ALLOWED}")
        limits: dict[str, Optional[float]] = {}
        for bound in ("max", "min"):
            v = entry.get(bound)
            try:
                limits[bound] = None if v in (None, "") else parse_float(v)
                if limits[bound] is not None and not (math.isfinite(limits[bound]) and abs(limits[bound]) < 1e12):
                    raise ValueError
            except (ValueError, TypeError):
                r.problems.append(f"{key}.{bound} = {str(v)[:60]!r} is not allowed: a number such as 1 or 0.5")
                limits[bound] = None
        if len(r.problems) > before:
            continue
        if limits["max"] is None and limits["min"] is None:
            r.problems.append(f"{key} has no limit: set max, min or both (the value must stay within them)")
        elif limits["max"] is not None and limits["min"] is not None and limits["min"] > limits["max"]:
            r.problems.append(f"{key}.min = {limits['min']:g} is not allowed: above its max {limits['max']:g}")
        else:
            metrics.append(PromMetric(name, query, **limits))
    return tuple(metrics)
