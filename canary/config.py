"""Stack configuration: parsed and validated before anything touches the host.

Every key of the `canary:` namespace is read here, in the order of FIELDS
(config_fields.py: one entry per key), converted to its unit and checked; then the few
rules over several keys. All problems are collected and reported together, each naming
its key and what is allowed, so a bad value fails `pulumi preview` with nothing changed
on the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

from .analysis.sources.prometheus import PromMetric
from .config_fields import FIELD, FIELDS, Field
from .config_readers import FORCE_TOKEN_ALLOWED, load_force_token  # noqa: F401  (imported from here)
from .config_values import FORCE_TOKEN_RE, ConfigError, Reader, parse_duration, read_text  # noqa: F401
from .config_values import default_registry, registry_host
from .target import Target

# What an unset key means (the raw form, as `pulumi config` would hold it).
DEFAULTS = {f.name: f.default for f in FIELDS if f.default is not None}
# What the release provider needs of the config: where the droplets are and how to reach them.
TARGET_KEYS = ("host", "ssh_port", "ssh_user", "ssh_host_key", "ssh_host_key_file", "ssh_private_key",
               "ssh_private_key_file", "hosts")


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
    host: Optional[str]  # the one droplet (None for a fleet: `fleet` lists them)
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
    # Prometheus queries with limits (analysis/sources/prometheus.py), and where the droplet reaches it.
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_metrics: tuple[PromMetric, ...] = ()
    probe_url: Optional[str] = None
    nginx_site: Optional[str] = None
    private_key: str = field(repr=False, default="")
    # Trusted testers who may force a backend (see config_readers.force_allow).
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
    # Every droplet (canary:host alone is a fleet of one, named ""), and how a release
    # goes through them (fleet.py).
    fleet: tuple[Target, ...] = ()
    canary_hosts: int = 1
    wave_size: int = 0
    # The app's database (an ERP's): connections check, backups and the migration.
    database_url: Optional[str] = field(repr=False, default=None)
    max_db_connections: float = 80.0
    migrate_command: Optional[tuple[str, ...]] = None
    migrate_timeout: float = 1800.0
    backup: bool = True
    backup_image: Optional[str] = None
    backup_keep: int = 5
    restore_backup: Optional[str] = None
    # The site: an ERP's uploads, long answers, WebSocket / long-polling routes.
    max_body_size: str = "200m"
    proxy_timeout: float = 720.0
    websocket_paths: tuple[str, ...] = ("/websocket", "/longpolling")

    @property
    def canary_database_keys(self) -> tuple[str, ...]:
        """canary_env keys that look like they give the canary a database of its own: the
        writes of the users it serves would be lost at promotion (preview warns)."""
        return tuple(k for k in self.canary_env if re.search(r"DB|DATABASE|^PG", k.upper()))

    @property
    def is_fleet(self) -> bool:
        return bool(self.fleet and self.fleet[0].name)

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


# -- rules over several keys: each is checked once the last of its keys is read -------------
def _ports_differ(r: Reader, v: dict) -> None:
    if v["stable_port"] and v["canary_port"] and v["stable_port"] == v["canary_port"]:
        r.problems.append("canary:canary_port must differ from canary:stable_port")


def _site_is_a_file(r: Reader, v: dict) -> None:
    site, sites, confd, name = v["nginx_site"], v["nginx_sites_dir"], v["nginx_conf_dir"], v["container_name"]
    if site and site in (sites, confd):
        r.problems.append(f"canary:nginx_site = {site!r} is not allowed: it is a directory "
                          "(canary:nginx_sites_dir or canary:nginx_conf_dir); name the site file")
    elif site and confd and name and site == f"{confd}/{name}-canary.conf":
        r.problems.append(f"canary:nginx_site = {site!r} is not allowed: it is the split file "
                          "(NGINX_CONF_DIR/CONTAINER_NAME-canary.conf); name the site file")


def _metric_pair(r: Reader, v: dict) -> None:
    if (v["metric_command"] is None) != (v["metric_max"] is None) and not r.problems:
        r.problems.append("canary:metric_command and canary:metric_max go together: set both or neither")


def _registry_login_pair(r: Reader, v: dict) -> None:
    if bool(v["registry_username"]) != bool(v["registry_password"]) and not r.problems:
        r.problems.append("canary:registry_username and canary:registry_password (or registry_password_file) "
                          "go together: set both, or neither for a registry that needs no login")


def _backup_needs_database(r: Reader, v: dict) -> None:
    if v["migrate_command"] and v["backup"] and not v["database_url"] and not r.problems:
        r.problems.append("canary:migrate_command backs the database up first (canary:backup is true): set "
                          "canary:database_url (--secret), or canary:backup false to migrate without a backup")


def _registry_login_stays_with_its_server(r: Reader, v: dict) -> None:
    """A registry login goes to canary:registry_server alone, never to a registry that
    canary:image names: a change of the image alone (a pull request) must not send it
    elsewhere. Without a login, the image's own registry is pulled from anonymously."""
    if not (v["registry_username"] or v["registry_password"]) or r.problems:
        return
    if r.get("registry_server") in (None, ""):
        r.problems.append("canary:registry_server is required with a registry login (canary:registry_username, "
                          "canary:registry_password): the registry the login is for, e.g. "
                          "registry.digitalocean.com; the login goes to that registry only")
    elif v["image"] and registry_host(default_registry(v["image"])) != registry_host(v["registry_server"]):
        r.problems.append(f"canary:image {v['image']!r} is on the registry {default_registry(v['image'])!r}, not "
                          f"on canary:registry_server {v['registry_server']!r}, the only registry the login "
                          "(canary:registry_username, canary:registry_password) goes to: use an image of that "
                          "registry, or change canary:registry_server too if the login is for the other one")


def _one_migration(r: Reader, v: dict) -> None:
    # The canary droplets of a wave start together: a second one's canary could serve before
    # the first one's migration ended, and two migrations of one database would race.
    if v["migrate_command"] and v["canary_hosts"] and v["canary_hosts"] > 1 and not r.problems:
        r.problems.append(f"canary:migrate_command with canary:canary_hosts = {v['canary_hosts']} is not allowed: "
                          "the migration runs once, on the one canary droplet (canary_hosts 1); the later "
                          "waves follow once it passed")


def _canary_hosts_fit(r: Reader, v: dict) -> None:
    if v["hosts"] and v["canary_hosts"] and v["canary_hosts"] > len(v["hosts"]):
        r.problems.append(f"canary:canary_hosts = {v['canary_hosts']} is not allowed: an integer from 1 to the "
                          f"number of droplets ({len(v['hosts'])})")


RULES: tuple[tuple[tuple[str, ...], Callable[[Reader, dict], None]], ...] = (
    (("stable_port", "canary_port"), _ports_differ),
    (("container_name", "nginx_sites_dir", "nginx_conf_dir", "nginx_site"), _site_is_a_file),
    (("metric_command", "metric_max"), _metric_pair),
    (("registry_username", "registry_password"), _registry_login_pair),
    (("image", "registry_server", "registry_username", "registry_password"), _registry_login_stays_with_its_server),
    (("hosts", "canary_hosts"), _canary_hosts_fit),
    (("database_url", "migrate_command", "backup"), _backup_needs_database),
    (("migrate_command", "canary_hosts"), _one_migration),
)


def _read(r: Reader, fields: Iterable[Field]) -> dict[str, Any]:
    """Every key's canonical value (None when bad), the problems in `r`."""
    values: dict[str, Any] = {}
    for f in fields:
        if f.read:
            values[f.name] = f.read(r, f, values)
        else:
            values[f.name] = r.value(f.name, f.parse, f.allowed, f.default, f.check, f.required,
                                     hidden=bool(f.secret))
        for keys, rule in RULES:
            if f.name in keys and all(k in values for k in keys):
                rule(r, values)
    return values


def load_targets(get: Callable[[str], Any], read_file: Callable[[str], str] = read_text) -> tuple[Target, ...]:
    """Only the SSH targets (every droplet, its keys): what the release provider needs."""
    r = Reader(get, read_file)
    v = _read(r, (FIELD[k] for k in TARGET_KEYS))
    if r.problems:
        raise ConfigError(r.problems)
    return v["hosts"]


def load(get: Callable[[str], Any], stack: str, secret_keys: frozenset[str] = frozenset(),
         read_file: Callable[[str], str] = read_text) -> Settings:
    """Builds Settings from a config getter (`get(key)` returns the raw value or None).

    `get` returns strings for plain values and parsed JSON for structured ones (maps and
    lists), as Pulumi's config does. `secret_keys` names the keys holding a secret.
    Key files (`ssh_private_key_file`, `ssh_host_key_file`) are read with `read_file`.
    Raises ConfigError listing every problem.
    """
    r = Reader(get, read_file, secret_keys)
    v = _read(r, FIELDS)
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(stack=stack, env_is_secret=bool(secret_keys & {"env", "canary_env"}),
                    metric_command_is_secret="metric_command" in secret_keys,
                    **{f.attr: v[f.name] for f in FIELDS if f.attr})
