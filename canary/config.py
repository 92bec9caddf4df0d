"""Stack configuration: parsed and validated before anything touches the host.

Every key of the `canary:` namespace is read here, converted to its unit and checked.
All problems are collected and reported together, each naming its key and what is
allowed, so a bad value fails `pulumi preview` with nothing changed on the host.
Values that end up on a shell command line are restricted to safe character sets on
top of being quoted where they are used.
"""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from .target import Target

DEFAULTS = {
    "canary_percentage": 10,
    "monitoring_duration": "15",  # minutes, as in the guide
    "error_threshold": 5.0,
    "auto_promote": True,
    "check_interval": "30",  # seconds
    "probes_per_check": 10,
    "retry": False,
    "adopt": False,
    "ssh_port": 22,
    "ssh_user": "root",
    "stable_port": 8069,
    "canary_port": 8070,
    "container_port": 8069,
    "bind_address": "127.0.0.1",
    "health_path": "/web/health",
    "container_name": "odoo",
    "restart_policy": "unless-stopped",
    "listen_port": 80,
    "server_name": "_",
    "nginx_sites_dir": "/etc/nginx/sites-enabled",
    "nginx_conf_dir": "/etc/nginx/conf.d",
    "nginx_log_dir": "/var/log/nginx",
    "routing": "cookie",
    "startup_timeout": "120s",
    "drain_timeout": "5s",
    "max_response_time": "2s",
    "max_error_logs_per_minute": 10,
    "latency_factor": 2.0,
    "min_requests": 50,
    "image_pull": True,
    "registry_insecure": False,
}

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# A Docker repository: [registry[:port]/]path, lower case.
IMAGE_RE = re.compile(r"^(?:[a-z0-9.-]+(?::[0-9]{1,5})?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
REGISTRY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,252})(?::[0-9]{1,5})?$")
REGISTRY_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,254}$")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
IPV4_RE = re.compile(r"^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]{0,254}$")
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9_./~%-]{0,254}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SERVER_NAME_RE = re.compile(r"^(?:_|[A-Za-z0-9*](?:[A-Za-z0-9.*-]{0,252}))(?: (?:[A-Za-z0-9*][A-Za-z0-9.*-]{0,252}))*$")
HOST_KEY_RE = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")
DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
HOST_KEY_ALLOWED = ("the host's public key line as in known_hosts, e.g. 'ssh-ed25519 AAAA...' "
                    "(pin it: ssh-keyscan -t ed25519 HOST), or canary:ssh_host_key_file, a path to it")
PRIVATE_KEY_ALLOWED = ("an OpenSSH private key (pulumi config set --secret ssh_private_key < key), "
                       "or canary:ssh_private_key_file, a path to it")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
NGINX_DIR = "/etc/nginx"
LOG_DIR = "/var/log"
# nginx's own files: a site path naming one of them would overwrite nginx itself.
NGINX_CORE_FILES = frozenset({"nginx.conf", "mime.types", "fastcgi.conf", "fastcgi_params", "scgi_params",
                              "uwsgi_params", "proxy_params", "koi-utf", "koi-win", "win-utf"})
# nginx's directories: a site path naming one of them is a directory, not a file.
NGINX_DIRS = frozenset({"conf.d", "sites-enabled", "sites-available", "modules-enabled", "modules-available",
                        "snippets", "streams-enabled", "streams-available"})
# Host paths a container must not mount (equal to or under them): the host's root
# filesystem, its configuration and credentials, kernel interfaces, Docker's socket
# and data. Parents of the Docker socket are refused as exact paths only (/run/postgresql
# for a database socket stays allowed).
FORBIDDEN_MOUNT_TREES = ("/etc", "/root", "/proc", "/sys", "/dev", "/boot", "/var/lib/docker",
                         "/run/docker.sock", "/var/run/docker.sock")
FORBIDDEN_MOUNT_PATHS = ("/", "/var", "/run", "/var/run")
ROUTINGS = ("cookie", "ip_hash", "hash")


class ConfigError(Exception):
    """One or more invalid keys; the message lists each with what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


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


@dataclass(frozen=True)
class Settings:
    """Everything the program needs, in canonical units (seconds, percents)."""

    stack: str
    image: str
    image_tag: str
    canary_percentage: int
    canary_steps: tuple[int, ...]
    monitoring_duration: float
    check_interval: float
    probes_per_check: int
    error_threshold: float
    auto_promote: bool
    retry: bool
    adopt: bool
    host: str
    ssh_port: int
    ssh_user: str
    host_key: str
    stable_port: int
    canary_port: int
    container_port: int
    bind_address: str
    health_path: str
    container_name: str
    restart_policy: str
    env: Mapping[str, str]
    canary_env: Mapping[str, str]
    env_is_secret: bool  # env or canary_env holds a value set with --secret
    volumes: tuple[str, ...]
    listen_port: int
    server_name: str
    nginx_sites_dir: str
    nginx_conf_dir: str
    nginx_log_dir: str
    routing: str
    startup_timeout: float
    drain_timeout: float
    max_response_time: float
    max_error_logs_per_minute: int
    latency_factor: float
    min_requests: int
    metric_command: Optional[str] = None
    metric_max: Optional[float] = None
    metric_command_is_secret: bool = False  # set with --secret: kept secret, masked in messages
    probe_url: Optional[str] = None
    nginx_site: Optional[str] = None
    private_key: str = field(repr=False, default="")
    # Trusted testers who may force a backend (see _force_values).
    force_allow: tuple[str, ...] = ()
    force_token: str = field(repr=False, default="")
    # The image on the host (pulumi-docker): pulled from its registry, or already there.
    image_pull: bool = True
    registry_server: str = ""
    registry_username: Optional[str] = None
    registry_password: str = field(repr=False, default="")
    registry_insecure: bool = False
    canary_volumes: tuple[str, ...] = ()
    promote: Optional[str] = None  # the tag whose held canary a person promotes (one-off)
    private_key_file: Optional[str] = None  # the deploy key's path, when it came from a file

    @property
    def registry_address(self) -> str:
        """The registry as the docker provider's registry_auth names it."""
        return ("http://" if self.registry_insecure else "") + self.registry_server

    @property
    def named_volumes(self) -> tuple[str, ...]:
        """The Docker volumes (not host paths) the containers mount, in order."""
        names = [v.split(":")[0] for v in (*self.volumes, *self.canary_volumes) if not v.startswith("/")]
        return tuple(dict.fromkeys(names))

    @property
    def full_image(self) -> str:
        return f"{self.image}:{self.image_tag}"

    @property
    def site_path(self) -> str:
        return self.nginx_site or f"{self.nginx_sites_dir}/{self.container_name}.conf"

    @property
    def split_path(self) -> str:
        # The guide's file: /etc/nginx/conf.d/odoo-canary.conf
        return f"{self.nginx_conf_dir}/{self.container_name}-canary.conf"

    @property
    def access_log(self) -> str:
        return f"{self.nginx_log_dir}/{self.container_name}-canary-access.log"

    @property
    def steps(self) -> tuple[int, ...]:
        """The traffic percentages to analyse in order (canary_steps wins)."""
        return self.canary_steps or (self.canary_percentage,)


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self, get: Callable[[str], Any]):
        self.get = get
        self.problems: list[str] = []

    def value(self, key: str, parse: Callable[[Any], Any], allowed: str, default: Any = None,
              check: Callable[[Any], bool] = lambda v: True, required: bool = False) -> Any:
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
            shown = str(raw)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            self.problems.append(f"canary:{key} = {shown!r} is not allowed: {allowed}")
            return None


def _matches(regex: re.Pattern, max_len: int = 255) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        # fullmatch: a trailing newline must not slip through a `$`.
        if not isinstance(v, str) or len(v) > max_len or not regex.fullmatch(v):
            raise ValueError
        return v
    return parse


def _is_host(v: str) -> bool:
    return len(v) <= 253 and bool(IPV4_RE.fullmatch(v) or HOST_RE.fullmatch(v))


def _normal_path(v: Any) -> str:
    """An absolute path in normal form: no `.`/`..` components, no `//`, no trailing `/`."""
    if not isinstance(v, str) or not PATH_RE.fullmatch(v) or "//" in v or posixpath.normpath(v) != v:
        raise ValueError
    return v


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _dir_under(parent: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        v = _normal_path(v)
        if not _under(v, parent) or v == parent:
            raise ValueError
        return v
    return parse


def _nginx_site(v: Any) -> str:
    v = _dir_under(NGINX_DIR)(v)
    parts = v[len(NGINX_DIR) + 1:].split("/")
    if parts[-1] in NGINX_CORE_FILES or (len(parts) == 1 and parts[0] in NGINX_DIRS):
        raise ValueError
    return v


def _mount_source_allowed(source: str) -> bool:
    """Whether a volume source may be mounted without canary:allow_host_mounts."""
    if not source.startswith("/"):
        return True  # a named volume
    path = posixpath.normpath("/" + source.lstrip("/"))  # `..`, `.`, `//` resolved
    return path not in FORBIDDEN_MOUNT_PATHS and not any(_under(path, t) for t in FORBIDDEN_MOUNT_TREES)


def _from_value_or_file(r: _Reader, key: str, read_file: Callable[[str], str], allowed: str,
                        normalize: Callable[[str], str], check: Callable[[str], bool]) -> Optional[str]:
    """`key` holds the value itself, `key`_file a path to a file that holds it."""
    value, path = r.get(key), r.get(key + "_file")
    if value in (None, "") and path in (None, ""):
        r.problems.append(f"canary:{key} is required: {allowed}")
        return None
    source = f"canary:{key}"
    if value in (None, ""):
        source = f"canary:{key}_file = {str(path)[:60]!r}"
        try:
            value = read_file(str(path))
        except OSError as err:
            r.problems.append(f"{source}: cannot read the file ({err.strerror})")
            return None
    text = normalize(str(value))
    if not check(text):
        # Never echo the value: it may be a secret.
        r.problems.append(f"{source} is not allowed: {allowed}")
        return None
    return text


def _read_text(path: str) -> str:
    with open(os.path.expanduser(path), encoding="utf-8") as f:
        return f.read()


def _target_values(r: _Reader, read_file: Callable[[str], str]) -> tuple:
    host = r.value("host", _matches(re.compile(r".+")), "the droplet's host name or IPv4 address",
                   required=True, check=_is_host)
    port = r.value("ssh_port", parse_int, "a TCP port from 1 to 65535", DEFAULTS["ssh_port"],
                   lambda v: 0 < v < 65536)
    user = r.value("ssh_user", _matches(USER_RE), "a Unix user name such as root or deploy",
                   DEFAULTS["ssh_user"])
    host_key = _from_value_or_file(r, "ssh_host_key", read_file, HOST_KEY_ALLOWED,
                                   lambda v: " ".join(v.split()[:2]), lambda v: bool(HOST_KEY_RE.fullmatch(v)))
    key = _from_value_or_file(r, "ssh_private_key", read_file, PRIVATE_KEY_ALLOWED,
                              lambda v: v.strip() + "\n", lambda v: "PRIVATE KEY-----" in v)
    return host, port, user, host_key, key


def load_target(get: Callable[[str], Any], read_file: Callable[[str], str] = _read_text) -> Target:
    """Only the SSH target (host, port, user, keys): what the release provider needs."""
    r = _Reader(get)
    host, port, user, host_key, key = _target_values(r, read_file)
    if r.problems:
        raise ConfigError(r.problems)
    return Target(host=host, port=port, user=user, host_key=host_key, private_key=key)


def _env_map(value: Any, problems: list[str], key: str) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        problems.append(f"canary:{key} must be a map of NAME: value (set with --path, e.g. "
                        f"`pulumi config set --path '{key}.DB_HOST' db`)")
        return {}
    out = {}
    for name, val in value.items():
        if not ENV_NAME_RE.fullmatch(str(name)):
            problems.append(f"canary:{key}.{str(name)[:40]!r} is not a valid variable name: letters, digits, _")
            continue
        if isinstance(val, (dict, list)) or "\n" in str(val) or "\0" in str(val):
            problems.append(f"canary:{key}.{name} must be a single-line string")
            continue
        out[str(name)] = "" if val is None else str(val).lower() if isinstance(val, bool) else str(val)
    return out


def default_registry(image: str) -> str:
    """The registry part of an image name (Docker's rule: a first component with a '.' or
    ':', or `localhost`), else Docker Hub."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"


def _registry_values(r: _Reader, image: Optional[str], secret_keys: frozenset[str],
                     read_file: Callable[[str], str]) -> dict:
    pull = r.value("image_pull", parse_bool, "true (pull image:image_tag from its registry onto the host) "
                   "or false (the image is already on the host, e.g. built there)", DEFAULTS["image_pull"])
    server = r.value("registry_server", _matches(REGISTRY_RE), "a registry host[:port] such as "
                     "registry.digitalocean.com (default: the registry named in canary:image)", None)
    user = r.value("registry_username", _matches(REGISTRY_USER_RE), "a registry user name (letters, "
                   "digits, '_', '.', '@', '+', '-')", None)
    insecure = r.value("registry_insecure", parse_bool, "true (the registry speaks plain HTTP, e.g. one "
                       "on 127.0.0.1) or false (HTTPS)", DEFAULTS["registry_insecure"])
    password, path = r.get("registry_password"), r.get("registry_password_file")
    if password not in (None, "") and "registry_password" not in secret_keys:
        r.problems.append("canary:registry_password must be a secret: set it with "
                          "`pulumi config set --secret registry_password ...` (or use registry_password_file)")
        password = None
    if password in (None, "") and path not in (None, ""):
        try:
            password = read_file(str(path)).strip()
        except OSError as err:
            r.problems.append(f"canary:registry_password_file = {str(path)[:60]!r}: cannot read the file "
                              f"({err.strerror})")
    password = "" if password is None else str(password)
    if password and ("\n" in password or len(password) > 4096):
        r.problems.append("canary:registry_password is not allowed: a single line of at most 4096 characters")
    if bool(user) != bool(password) and not r.problems:
        r.problems.append("canary:registry_username and canary:registry_password (or registry_password_file) "
                          "go together: set both, or neither for a registry that needs no login")
    return dict(image_pull=pull, registry_server=server or (default_registry(image) if image else ""),
                registry_username=user, registry_password=password, registry_insecure=insecure)


def _volumes(r: _Reader, raw: Any, key: str, host_mounts: bool) -> tuple[str, ...]:
    raw = raw or []
    if not isinstance(raw, list):
        r.problems.append(f"canary:{key} must be a list such as ['odoo-data:/var/lib/odoo']")
        return ()
    good = []
    for v in raw:
        try:
            good.append(_volume(v))
        except ValueError:
            r.problems.append(f"canary:{key} entry {str(v)[:60]!r} is not allowed: "
                              "SOURCE:/container/path[:ro|rw], SOURCE a volume name or absolute path")
            continue
        if not host_mounts and not _mount_source_allowed(v.split(":")[0]):
            r.problems.append(
                f"canary:{key} entry {str(v)[:60]!r} is not allowed: it mounts a host path no "
                "container may see (/, /etc, /root, /proc, /sys, /dev, /boot, /var/lib/docker, the "
                "Docker socket or its parents /var, /run, /var/run, or below them); use a "
                "named volume or a directory of the app (e.g. /srv/odoo), or set "
                "canary:allow_host_mounts true (dangerous: the container can take over the host)")
    return tuple(good)


def _volume(v: Any) -> str:
    # host_path_or_volume:container_path[:ro|rw]
    if not isinstance(v, str):
        raise ValueError
    parts = v.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise ValueError
    if not (PATH_RE.fullmatch(parts[0]) or NAME_RE.fullmatch(parts[0])) or not PATH_RE.fullmatch(parts[1]):
        raise ValueError
    return v


# -- forced routing: who may steer a request to the canary (or to stable) -------------------
FORCE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
FORCE_TOKEN_ALLOWED = ("16 to 128 letters, digits, '_' or '-' (e.g. `openssl rand -hex 24`), set with "
                       "`pulumi config set --secret force_token ...`")
FORCE_ALLOW_ALLOWED = ("a list of IPv4 addresses or networks such as ['203.0.113.7', '10.0.0.0/8'] "
                       "(prefix /8 to /32, no host bits set; at most 64 entries)")
FORCE_ALLOW_MAX = 64


def load_force_token(get: Callable[[str], Any]) -> str:
    """The token that lets a tester force a backend ("" when none); never echoed."""
    token = get("force_token")
    if token in (None, ""):
        return ""
    if not isinstance(token, str) or not FORCE_TOKEN_RE.fullmatch(token):
        raise ConfigError([f"canary:force_token is not allowed: {FORCE_TOKEN_ALLOWED}"])
    return token


def _force_network(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[0-9./]{7,18}", v):
        raise ValueError
    address, _, prefix = v.partition("/")
    if not IPV4_RE.fullmatch(address) or (prefix and not re.fullmatch(r"[1-9]\d?", prefix)):
        raise ValueError
    if prefix and not 8 <= int(prefix) <= 32:
        raise ValueError
    net = ipaddress.IPv4Network(v, strict=True)  # raises on host bits set
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def _force_values(r: _Reader, secret_keys: frozenset[str]) -> tuple[tuple[str, ...], str]:
    raw = r.get("force_allow")
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
        r.problems.append(f"canary:force_allow = {str(raw)[:60]!r} is not allowed: {FORCE_ALLOW_ALLOWED}")
        raw = []
    for v in raw:
        try:
            net = _force_network(v)
            if net not in allow:
                allow.append(net)
        except ValueError:
            r.problems.append(f"canary:force_allow entry {str(v)[:60]!r} is not allowed: {FORCE_ALLOW_ALLOWED}")
    token = ""
    try:
        token = load_force_token(r.get)
    except ConfigError as err:
        r.problems.extend(err.problems)
    if token and "force_token" not in secret_keys:
        r.problems.append("canary:force_token must be a secret: set it with "
                          "`pulumi config set --secret force_token ...`")
    return tuple(allow), token


def load(get: Callable[[str], Any], stack: str, secret_keys: frozenset[str] = frozenset(),
         read_file: Callable[[str], str] = _read_text) -> Settings:
    """Builds Settings from a config getter (`get(key)` returns the raw value or None).

    `get` returns strings for plain values and parsed JSON for structured ones (maps and
    lists), as Pulumi's config does. `secret_keys` names the keys holding a secret.
    Key files (`ssh_private_key_file`, `ssh_host_key_file`) are read with `read_file`.
    Raises ConfigError listing every problem.
    """
    r = _Reader(get)
    port = lambda v: 0 < v < 65536  # noqa: E731
    d = DEFAULTS

    image = r.value("image", _matches(IMAGE_RE), "a Docker repository name such as odoo-erp or "
                    "registry.example.com/team/odoo-erp (lower case, no tag)", required=True)
    tag = r.value("image_tag", _matches(TAG_RE), "a Docker tag such as prod-abc1234, latest or v1.2.3 "
                  "(letters, digits, '_', '.', '-'; at most 128)", required=True)
    pct = r.value("canary_percentage", parse_int, "an integer percentage from 0 to 100 (0 = no canary, "
                  "100 = promote)", d["canary_percentage"], lambda v: 0 <= v <= 100)
    steps_raw = get("canary_steps")
    steps: tuple[int, ...] = ()
    if steps_raw not in (None, "", []):
        try:
            if not isinstance(steps_raw, list):
                raise ValueError
            steps = tuple(parse_int(s) for s in steps_raw)
            if not steps or any(not 1 <= s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
                raise ValueError
        except (ValueError, TypeError):
            r.problems.append(f"canary:canary_steps = {str(steps_raw)[:60]!r} is not allowed: a strictly "
                              "increasing list of integer percentages from 1 to 100, e.g. [10, 25, 50]")
            steps = ()
    duration = r.value("monitoring_duration", lambda v: parse_duration(v, "m"),
                       "minutes as a number (15) or a duration such as 90s, 2m, 1h; at least 1s, at most 24h",
                       d["monitoring_duration"], lambda v: 1 <= v <= 86400)
    interval = r.value("check_interval", lambda v: parse_duration(v, "s"),
                       "seconds as a number (30) or a duration such as 30s, 1m; from 1s to 1h",
                       d["check_interval"], lambda v: 1 <= v <= 3600)
    probes = r.value("probes_per_check", parse_int, "an integer from 1 to 60", d["probes_per_check"],
                     lambda v: 1 <= v <= 60)
    threshold = r.value("error_threshold", parse_float, "a percentage from 0 to 100 (5 means 5 %)",
                        d["error_threshold"], lambda v: 0 <= v <= 100)
    auto = r.value("auto_promote", parse_bool, "true or false", d["auto_promote"])
    retry = r.value("retry", parse_bool, "true or false", d["retry"])
    promote = r.value("promote", _matches(TAG_RE), "the image_tag of the held canary to promote now, "
                      "e.g. `pulumi config set promote prod-abc1234` (one-off: it does nothing for "
                      "any other tag)", None)
    adopt = r.value("adopt", parse_bool, "true or false (true: take over a container named "
                    "container_name that this program did not start)", d["adopt"])

    host, ssh_port, ssh_user, host_key, private_key = _target_values(r, read_file)
    stable_port = r.value("stable_port", parse_int, "a TCP port from 1 to 65535", d["stable_port"], port)
    canary_port = r.value("canary_port", parse_int, "a TCP port from 1 to 65535, not the stable_port",
                          d["canary_port"], port)
    if stable_port and canary_port and stable_port == canary_port:
        r.problems.append("canary:canary_port must differ from canary:stable_port")
    container_port = r.value("container_port", parse_int, "the app's port inside the container (1-65535)",
                             d["container_port"], port)
    bind = r.value("bind_address", _matches(IPV4_RE), "an IPv4 address to publish ports on "
                   "(127.0.0.1: only nginx reaches the app; 0.0.0.0: everyone)", d["bind_address"])
    health = r.value("health_path", _matches(URL_PATH_RE), "a URL path such as /web/health",
                     d["health_path"])
    name = r.value("container_name", _matches(NAME_RE), "a container name such as odoo (letters, "
                   "digits, '_', '.', '-')", d["container_name"])
    restart = r.value("restart_policy", str, "one of " + ", ".join(RESTART_POLICIES),
                      d["restart_policy"], lambda v: v in RESTART_POLICIES)
    env = _env_map(get("env"), r.problems, "env")
    canary_env = _env_map(get("canary_env"), r.problems, "canary_env")
    host_mounts = r.value("allow_host_mounts", parse_bool, "true or false (true lets containers mount "
                          "the host's root, /etc, the Docker socket and the like: dangerous)", False)
    volumes = _volumes(r, get("volumes"), "volumes", host_mounts)
    canary_volumes = _volumes(r, get("canary_volumes"), "canary_volumes", host_mounts)
    listen = r.value("listen_port", parse_int, "a TCP port from 1 to 65535", d["listen_port"], port)
    server_name = r.value("server_name", _matches(SERVER_NAME_RE), "nginx server names separated by "
                          "spaces, e.g. erp.example.com, or _", d["server_name"])
    nginx_dir = ("a directory under /etc/nginx/ such as /etc/nginx/sites-enabled (absolute, no '.', "
                 "'..', '//' or trailing '/')")
    sites = r.value("nginx_sites_dir", _dir_under(NGINX_DIR), nginx_dir, d["nginx_sites_dir"])
    confd = r.value("nginx_conf_dir", _dir_under(NGINX_DIR), nginx_dir.replace("sites-enabled", "conf.d"),
                    d["nginx_conf_dir"])
    site = r.value("nginx_site", _nginx_site, "a site file under /etc/nginx/, e.g. the guide's "
                   "/etc/nginx/sites-enabled/odoo (default: NGINX_SITES_DIR/CONTAINER_NAME.conf); not a "
                   "directory, not nginx's own files (nginx.conf, mime.types, *_params), no '.', '..', "
                   "'//' or trailing '/'", None)
    logs = r.value("nginx_log_dir", _dir_under(LOG_DIR), "a directory under /var/log/ such as "
                   "/var/log/nginx (absolute, no '.', '..', '//' or trailing '/')", d["nginx_log_dir"])
    if site and site in (sites, confd):
        r.problems.append(f"canary:nginx_site = {site!r} is not allowed: it is a directory "
                          "(canary:nginx_sites_dir or canary:nginx_conf_dir); name the site file")
    elif site and confd and name and site == f"{confd}/{name}-canary.conf":
        r.problems.append(f"canary:nginx_site = {site!r} is not allowed: it is the split file "
                          "(NGINX_CONF_DIR/CONTAINER_NAME-canary.conf); name the site file")
    routing = r.value("routing", str, "one of " + ", ".join(ROUTINGS), d["routing"], lambda v: v in ROUTINGS)
    startup = r.value("startup_timeout", lambda v: parse_duration(v, "s"), "a duration from 1s to 30m",
                      d["startup_timeout"], lambda v: 1 <= v <= 1800)
    drain = r.value("drain_timeout", lambda v: parse_duration(v, "s"), "a duration from 0s to 10m",
                    d["drain_timeout"], lambda v: 0 <= v <= 600)
    max_rt = r.value("max_response_time", lambda v: parse_duration(v, "s"), "a duration such as 2s or 500ms",
                     d["max_response_time"], lambda v: 0 < v <= 600)
    max_logs = r.value("max_error_logs_per_minute", parse_int, "an integer from 0 to 100000",
                       d["max_error_logs_per_minute"], lambda v: 0 <= v <= 100000)
    factor = r.value("latency_factor", parse_float, "a number from 1 to 100 (canary p95 / stable p95)",
                     d["latency_factor"], lambda v: 1 <= v <= 100)
    min_requests = r.value("min_requests", parse_int, "an integer from 1 to 1000000", d["min_requests"],
                           lambda v: 1 <= v <= 1_000_000)
    metric_command = r.value("metric_command", str, "a shell command run on the host that prints one number",
                             None, lambda v: "\n" not in v and len(v) < 1000)
    metric_max = r.value("metric_max", parse_float, "a number", None, lambda v: abs(v) < 1e12)
    if (metric_command is None) != (metric_max is None) and not r.problems:
        r.problems.append("canary:metric_command and canary:metric_max go together: set both or neither")

    webhook = r.get("notify_webhook")
    if webhook not in (None, "") and not re.fullmatch(r"https?://[^\s'\"]{1,2000}", str(webhook)):
        r.problems.append("canary:notify_webhook is not allowed: an http(s) URL of a Slack-compatible "
                          "incoming webhook (set it with --secret)")
    probe_url = r.value("probe_url", _matches(re.compile(r"^https?://[A-Za-z0-9.:\[\]-]+(?:/[A-Za-z0-9_./~%-]*)?$")),
                        "an http(s) URL of the app's root on this machine's network, e.g. "
                        "http://10.0.0.5:8070 (default: probes go through an SSH tunnel)", None)

    force_allow, force_token = _force_values(r, secret_keys)
    registry = _registry_values(r, image, secret_keys, read_file)
    key_file = r.get("ssh_private_key_file") if r.get("ssh_private_key") in (None, "") else None

    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        stack=stack, image=image, image_tag=tag, canary_percentage=pct, canary_steps=steps,
        monitoring_duration=duration, check_interval=interval, probes_per_check=probes,
        error_threshold=threshold, auto_promote=auto, retry=retry, adopt=adopt, host=host, ssh_port=ssh_port,
        ssh_user=ssh_user, host_key=host_key, stable_port=stable_port, canary_port=canary_port,
        container_port=container_port, bind_address=bind, health_path=health, container_name=name,
        restart_policy=restart, env=env, canary_env=canary_env,
        env_is_secret=bool(secret_keys & {"env", "canary_env"}),
        volumes=volumes, listen_port=listen, server_name=server_name, nginx_sites_dir=sites,
        nginx_conf_dir=confd, nginx_log_dir=logs, routing=routing, startup_timeout=startup,
        drain_timeout=drain, max_response_time=max_rt, max_error_logs_per_minute=max_logs,
        latency_factor=factor, min_requests=min_requests, metric_command=metric_command,
        metric_max=metric_max, metric_command_is_secret="metric_command" in secret_keys,
        probe_url=probe_url, nginx_site=site,
        private_key=private_key, force_allow=force_allow, force_token=force_token,
        canary_volumes=canary_volumes, promote=promote, **registry,
        private_key_file=os.path.expanduser(str(key_file)) if key_file else None)
