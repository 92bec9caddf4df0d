"""One config value at a time: the character sets, units and parsers the keys use, and
the Reader that collects every problem instead of stopping at the first one.

Values that end up on a shell command line are restricted to safe character sets on
top of being quoted where they are used.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from typing import Any, Callable

from .errors import CanaryError

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# A Docker repository: [registry[:port]/]path, lower case.
IMAGE_RE = re.compile(r"^(?:[a-z0-9.-]+(?::[0-9]{1,5})?/)?"
                      r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
# An image with its tag, e.g. postgres:16 (a repository as above, then ':' and a tag).
IMAGE_REF_RE = re.compile(IMAGE_RE.pattern[:-1] + r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REGISTRY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,252})(?::[0-9]{1,5})?$")
REGISTRY_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,254}$")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
IPV4_RE = re.compile(r"^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]{0,254}$")
BODY_SIZE_RE = re.compile(r"^[0-9]{1,6}[kKmMgG]?$")
BACKUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.dump$")
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9_./~%-]{0,254}$")
PROBE_URL_RE = re.compile(r"^https?://[A-Za-z0-9.:\[\]-]+(?:/[A-Za-z0-9_./~%-]*)?$")
# Plain http: the SSH tunnel to the droplet carries it (a certificate would not match the tunnel).
PROMETHEUS_URL_RE = re.compile(r"^http://[A-Za-z0-9.-]+(?::[1-9][0-9]{0,4})?(?:/[A-Za-z0-9_./~-]*)?$")
WEBHOOK_RE = re.compile(r"https?://[^\s'\"]{1,2000}")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SERVER_NAME_RE = re.compile(r"^(?:_|[A-Za-z0-9*](?:[A-Za-z0-9.*-]{0,252}))(?: (?:[A-Za-z0-9*][A-Za-z0-9.*-]{0,252}))*$")
HOST_KEY_RE = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")
FORCE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
ROUTINGS = ("cookie", "ip_hash", "hash")
NGINX_DIR = "/etc/nginx"
LOG_DIR = "/var/log"
# nginx's own files: a site path naming one of them would overwrite nginx itself.
NGINX_CORE_FILES = frozenset({"nginx.conf", "mime.types", "fastcgi.conf", "fastcgi_params", "scgi_params",
                              "uwsgi_params", "proxy_params", "koi-utf", "koi-win", "win-utf"})
# nginx's directories: a site path naming one of them is a directory, not a file.
NGINX_DIRS = frozenset({"conf.d", "sites-enabled", "sites-available", "modules-enabled", "modules-available",
                        "snippets", "streams-enabled", "streams-available"})
# Host paths a container may mount are an allow-list (canary:host_mount_prefixes): a
# deny-list of the host's sensitive places always missed some (/home, /usr, a runtime's
# socket under /run, cron's spool, this tool's own state in /var/lib/canary...). A prefix
# may not be `/` or a parent of (or equal to) a system tree, and may not lie inside the
# trees that hold the host's configuration, credentials, kernel interfaces, containers
# and this tool's state; a directory of the app inside the others is fine when named
# (e.g. /run/postgresql for a database socket, /home/odoo).
SYSTEM_TREES = ("/etc", "/root", "/home", "/proc", "/sys", "/dev", "/boot", "/usr", "/bin", "/sbin", "/lib",
                "/lib32", "/lib64", "/libx32", "/opt", "/run", "/var/run", "/var/lib", "/var/log",
                "/var/spool", "/tmp", "/var/tmp")
CLOSED_TREES = ("/etc", "/root", "/proc", "/sys", "/dev", "/boot", "/usr", "/bin", "/sbin", "/var/spool",
                "/var/lib/docker", "/var/lib/containerd", "/var/lib/canary", "/run/docker.sock",
                "/var/run/docker.sock", "/run/containerd", "/run/podman", "/run/dbus", "/run/systemd")


class ConfigError(CanaryError):
    """One or more invalid keys; the message lists each with what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


def read_text(path: str) -> str:
    with open(os.path.expanduser(path), encoding="utf-8") as f:
        return f.read()


class Reader:
    """Reads raw values with `get(key)` (None when unset) and collects the problems.

    `read_file` reads the files that `*_file` keys name; `secret_keys` names the keys
    whose value was set with --secret.
    """

    def __init__(self, get: Callable[[str], Any], read_file: Callable[[str], str] = read_text,
                 secret_keys: frozenset[str] = frozenset()):
        self.get = get
        self.read_file = read_file
        self.secret_keys = secret_keys
        self.problems: list[str] = []

    def value(self, key: str, parse: Callable[[Any], Any], allowed: str, default: Any = None,
              check: Callable[[Any], bool] = lambda v: True, required: bool = False, hidden: bool = False) -> Any:
        """The key's canonical value, or None with a problem; a `hidden` key's value (one
        that may be a secret) is never quoted in it, not even in part."""
        raw = self.get(key)
        if raw is None or (isinstance(raw, str) and raw.strip() == "" and not required):
            if required:
                self.problems.append(f"canary:{key} is required: {allowed}")
                return None
            raw = default
            if raw is None:
                return None
        try:
            value = parse(raw)
            if not check(value):
                raise ValueError
            return value
        except (ValueError, TypeError):
            if hidden:
                self.problems.append(f"canary:{key} (not shown: it may be a secret) is not allowed: {allowed}")
                return None
            shown = str(raw)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            self.problems.append(f"canary:{key} = {shown!r} is not allowed: {allowed}")
            return None


# -- parsers: raw value -> canonical value, ValueError when it is none ------------------------
def parse_duration(value: Any, bare_unit: str) -> float:
    """Seconds from `15` (in `bare_unit`), `90s`, `2m`, `1h` or `500ms`."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    text = str(value).strip()
    m = DURATION_RE.fullmatch(text)
    if not m:
        raise ValueError("not a duration")
    number, unit = float(m.group(1)), m.group(2) or bare_unit
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def duration(bare_unit: str) -> Callable[[Any], float]:
    """A parser of durations whose bare numbers are in `bare_unit` (`s` or `m`)."""
    return lambda v: parse_duration(v, bare_unit)


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError("not a boolean")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"-?\d+", text):
        raise ValueError("not an integer")
    return int(text)


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    text = str(value).strip().rstrip("%").strip()
    if not re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        raise ValueError("not a number")
    return float(text)


def matches(regex: re.Pattern, max_len: int = 255) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        # fullmatch: a trailing newline must not slip through a `$`.
        if not isinstance(v, str) or len(v) > max_len or not regex.fullmatch(v):
            raise ValueError
        return v
    return parse


def between(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: low <= v <= high


def is_port(v: int) -> bool:
    return 0 < v < 65536


def is_host(v: str) -> bool:
    return len(v) <= 253 and bool(IPV4_RE.fullmatch(v) or HOST_RE.fullmatch(v))


# -- paths on the host --------------------------------------------------------------------------
def normal_path(v: Any) -> str:
    """An absolute path in normal form: no `.`/`..` components, no `//`, no trailing `/`."""
    if not isinstance(v, str) or not PATH_RE.fullmatch(v) or "//" in v or posixpath.normpath(v) != v:
        raise ValueError
    return v


def under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def dir_under(parent: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        v = normal_path(v)
        if not under(v, parent) or v == parent:
            raise ValueError
        return v
    return parse


def nginx_site(v: Any) -> str:
    v = dir_under(NGINX_DIR)(v)
    parts = v[len(NGINX_DIR) + 1:].split("/")
    if parts[-1] in NGINX_CORE_FILES or (len(parts) == 1 and parts[0] in NGINX_DIRS):
        raise ValueError
    return v


def volume(v: Any) -> str:
    # host_path_or_volume:container_path[:ro|rw]
    if not isinstance(v, str):
        raise ValueError
    parts = v.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise ValueError
    if not (PATH_RE.fullmatch(parts[0]) or NAME_RE.fullmatch(parts[0])) or not PATH_RE.fullmatch(parts[1]):
        raise ValueError
    return v


def default_mount_prefixes(app: str) -> tuple[str, ...]:
    """Where the app's host directories may be unless canary:host_mount_prefixes says."""
    return ("/srv", f"/opt/{app}")


def mount_prefix(v: Any) -> str:
    """A directory under which containers may mount host paths (see SYSTEM_TREES)."""
    v = normal_path(v)
    if v == "/" or any(under(t, v) for t in SYSTEM_TREES) or any(under(v, t) for t in CLOSED_TREES):
        raise ValueError
    return v


def mount_source_allowed(source: str, prefixes: tuple[str, ...]) -> bool:
    """Whether a volume source may be mounted without canary:allow_host_mounts: a named
    volume, or a host path under one of `prefixes`."""
    if not source.startswith("/"):
        return True  # a named volume
    path = posixpath.normpath("/" + source.lstrip("/"))  # `..`, `.`, `//` resolved
    return any(under(path, p) for p in prefixes)


# -- networks and registries -------------------------------------------------------------------
def force_network(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[0-9./]{7,18}", v):
        raise ValueError
    address, _, prefix = v.partition("/")
    if not IPV4_RE.fullmatch(address) or (prefix and not re.fullmatch(r"[1-9]\d?", prefix)):
        raise ValueError
    if prefix and not 8 <= int(prefix) <= 32:
        raise ValueError
    net = ipaddress.IPv4Network(v, strict=True)  # raises on host bits set
    return str(net.network_address) if net.prefixlen == 32 else str(net)


# Addresses a notification must not reach unless canary:notify_allow_local: the deploying
# machine itself, link-local ones (the cloud metadata endpoint 169.254.169.254 and its
# IPv6 twin fd00:ec2::254, Alibaba's 100.100.100.200), no address at all.
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254", "100.100.100.200"})


def local_address_kind(address: str) -> str:
    """What makes an IP address one a webhook may not reach ("" when none, or not an IP)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if str(ip) in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or ip.is_multicast:
        return "not a unicast address"
    return ""


def registry_host(server: str) -> str:
    """A registry as Docker compares them: Docker Hub under any of its names."""
    return "docker.io" if server in ("docker.io", "index.docker.io", "registry-1.docker.io") else server


def default_registry(image: str) -> str:
    """The registry part of an image name (Docker's rule: a first component with a '.' or
    ':', or `localhost`), else Docker Hub."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"
