"""FIELDS: one entry per key of the `canary:` namespace.

An entry says how the key is read (parser and check, or a reader of its own), what an
error message says is allowed, its default, whether it is required, structured (JSON:
a map or list) or secret, the line that documents it (README's configuration table and
Pulumi.yaml's `config:` block are generated from it: canary/config_docs.py), and bad
values the fault suite's sweep sets at preview.

Keys are read in this order (config.load), which is also the order of the problems in
an error; a reader may use the values of the keys before it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from . import config_readers as read
from .config_readers import FORCE_TOKEN_ALLOWED
from .config_values import (BACKUP_NAME_RE, BODY_SIZE_RE, HOST_KEY_RE, IMAGE_RE, IMAGE_REF_RE, IPV4_RE, LOG_DIR,
                            NAME_RE, NGINX_DIR, PROBE_URL_RE, PROMETHEUS_URL_RE, REGISTRY_RE, REGISTRY_USER_RE,
                            RESTART_POLICIES, ROUTINGS, SERVER_NAME_RE, TAG_RE,
                            URL_PATH_RE, USER_RE, between, dir_under, duration, is_port, matches,
                            nginx_site, parse_bool, parse_float, parse_int)


def _anything(v: Any) -> bool:
    return True


@dataclass(frozen=True)
class Field:
    name: str
    doc: str  # one line: Pulumi.yaml's description and README's notes
    allowed: str = ""  # what an error message says is allowed
    parse: Callable[[Any], Any] = str  # raw value -> canonical one; ValueError/TypeError when bad
    check: Callable[[Any], bool] = _anything  # on the parsed value
    default: Any = None  # in the raw form: what an unset key means
    required: bool = False
    structured: bool = False  # held as JSON (a map or list): decoded before it is read
    # "may": kept secret (and masked) when set with --secret; "should": a credential, set
    # it with --secret; "must": refused unless set with --secret.
    secret: str = ""
    bad: tuple[str, ...] = ()  # values it refuses, as `pulumi config set KEY VALUE` sets them
    read: Optional[Callable] = None  # a reader of its own (config_readers), else parse + check
    attr: Optional[str] = ""  # its Settings attribute ("": the key's name; None: not kept)
    default_doc: str = ""  # README's default column, when the default is not a plain value
    more: str = ""  # README only: what follows `doc` in the notes

    def __post_init__(self) -> None:
        if self.attr == "":
            object.__setattr__(self, "attr", self.name)


# -- bad values for the fault sweep: what a careless or hostile `pulumi config set` passes ------
LONG, A_LIST, NEGATIVE = "9" * 1000, "[1, 2]", "-5"
SHELL = tuple("v1" + m for m in (";reboot", "|id", "$(id)", "`id`", "\nid", "'x'", '"x"', "a&&b", "../../etc"))
HOSTILE = (LONG, A_LIST, NEGATIVE, *SHELL)
REQUIRED = ("", *HOSTILE)  # empty is a value only for a required key (else: the default)
# Shared by the keys that refuse them, so the sweep needs few previews (one per value).
NONSENSE, TOO_BIG, TOO_LONG_TAG = "maybe", "1000000000000", "x" * 129
BAD_MAPS = ('{"BAD-NAME": "x"}', '{"A": "line1\\nline2"}')
BAD_MOUNTS = ('["/etc:/x"]', '["/a:/b:rx"]', '["/var/run/docker.sock:/s"]', '["/home/u:/x"]', '["/usr:/x"]',
              '["/bin:/x"]', '["/run/containerd/containerd.sock:/s"]', '["/run/dbus/system_bus_socket:/s"]',
              '["/run/podman/podman.sock:/s"]', '["/var/spool/cron:/x"]', '["/var/lib/canary:/x"]',
              '["/srv/../var/lib/canary:/x"]')
BAD_PREFIXES = ('["/"]', '["/var"]', '["/etc/app"]', '["/var/lib/docker/x"]', '["srv"]', '["/run/dbus"]')
BAD_DIRS = ("/etc/cron.d", "/etc/nginx", "/var/log", "/etc/nginx/conf.d/..")  # no nginx or log directory
WELL_FORMED_TOKEN = "a" * 24  # refused in plain text by the keys that must be secret
NO_FILE = "/nonexistent/canary-config-test"  # a path no machine has


def _without(*accepted: str) -> tuple[str, ...]:
    return tuple(v for v in HOSTILE if v not in accepted)


TCP_PORT = "a TCP port from 1 to 65535"
PORT = dict(parse=parse_int, check=is_port)
BOOL = dict(parse=parse_bool, allowed="true or false")
NGINX_SUBDIR = ("a directory under /etc/nginx/ such as /etc/nginx/sites-enabled (absolute, no '.', '..', '//' "
                "or trailing '/')")
HOST_KEY_ALLOWED = ("the host's public key line as in known_hosts, e.g. 'ssh-ed25519 AAAA...' "
                    "(pin it: ssh-keyscan -t ed25519 HOST), or canary:ssh_host_key_file, a path to it")
PRIVATE_KEY_ALLOWED = ("an OpenSSH private key (pulumi config set --secret ssh_private_key < key), "
                       "or canary:ssh_private_key_file, a path to it")
FORCE_ALLOW_ALLOWED = ("a list of IPv4 addresses or networks such as ['203.0.113.7', '10.0.0.0/8'] "
                       "(prefix /8 to /32, no host bits set; at most 64 entries)")
VOLUMES_ALLOWED = "a list such as ['odoo-data:/var/lib/odoo', '/srv/odoo/addons:/mnt/addons:ro']"
PREFIXES_ALLOWED = ("a list of absolute directories such as ['/srv/odoo', '/run/postgresql'] (not /, not a "
                    "parent of a system directory such as /var or /usr, not inside /etc, /root, /proc, /sys, "
                    "/dev, /boot, /usr, /var/lib/docker, /var/lib/canary, /var/spool or a container runtime's "
                    "socket directory)")
PROMETHEUS_METRICS_ALLOWED = (f"a list of up to {read.MAX_PROMETHEUS_METRICS} metrics such as [{{name: up, query: "
                              "'up{job=\"node\"}', min: 1}, {name: load, query: 'node_load1', max: 4}]: a short "
                              "name, a PromQL query answering one number, and max, min or both")
HOSTS_ALLOWED = (f"a list of up to {read.MAX_HOSTS} droplets such as [{{name: web-1, host: 10.0.0.5, ssh_host_key: "
                 "'ssh-ed25519 AAAA...'}, {name: web-2, host: 10.0.0.6, ssh_port: 2222}]")

FIELDS: tuple[Field, ...] = (
    # -- the release -------------------------------------------------------------------------
    Field("image", "Docker repository, e.g. `registry.digitalocean.com/team/odoo-erp` (no tag)",
          "a Docker repository name such as odoo-erp or registry.example.com/team/odoo-erp (lower case, no tag)",
          matches(IMAGE_RE), required=True, bad=(*REQUIRED, "Odoo")),
    Field("image_tag", "The image tag to release, e.g. `prod-abc1234`, `v1.2.3`",
          "a Docker tag such as prod-abc1234, latest or v1.2.3 (letters, digits, '_', '.', '-'; at most 128)",
          matches(TAG_RE), required=True, bad=(*REQUIRED, TOO_LONG_TAG)),
    Field("canary_percentage", "Percent of new clients sent to the canary, an integer 0–100: 0 = no canary "
          "(manual abort), 100 = promote without analysis",
          "an integer percentage from 0 to 100 (0 = no canary, 100 = promote)", parse_int, between(0, 100),
          default=10, bad=(*HOSTILE, "101", "10.5", NONSENSE)),
    Field("canary_steps", "Progressive steps, e.g. `[10, 25, 50]`: wins over `canary_percentage`",
          "a strictly increasing list of integer percentages from 1 to 100, e.g. [10, 25, 50]",
          read=read.canary_steps, structured=True, bad=(*_without(A_LIST), "[50, 10]", "[0, 10]")),
    Field("monitoring_duration", "Analysis time per step: a bare number is minutes (the guide's); `90s`, `2m`, `1h`",
          "minutes as a number (15) or a duration such as 90s, 2m, 1h; at least 1s, at most 24h",
          duration("m"), between(1, 86400), default="15", bad=(*HOSTILE, "0", NONSENSE, "25h")),
    Field("check_interval", "Seconds between analysis checks (`30`, or `30s`)",
          "seconds as a number (30) or a duration such as 30s, 1m; from 1s to 1h",
          duration("s"), between(1, 3600), default="30", bad=(*HOSTILE, "0", "2h")),
    Field("probes_per_check", "Health probes of the canary, spread over each check interval",
          "an integer from 1 to 60", parse_int, between(1, 60), default=10, bad=(*HOSTILE, "0", "101", "10.5")),
    Field("error_threshold", "Highest error rate of the canary in percent: `5` = 5 %, `0.5` = 0.5 %",
          "a percentage from 0 to 100 (5 means 5 %)", parse_float, between(0, 100), default=5.0,
          bad=(*HOSTILE, "101")),
    Field("auto_promote", "`true`: promote a healthy canary; `false`: hold it for manual review (then `promote` "
          "its tag)",
          **BOOL, default=True, bad=(*HOSTILE, NONSENSE)),
    Field("retry", "`true`: analyse a tag again that was rolled back (otherwise it is blocked)",
          **BOOL, default=False, bad=(*HOSTILE, NONSENSE)),
    Field("promote", "The tag of a held canary to promote now, without more analysis (one-off: does nothing "
          "for any other tag)",
          "the image_tag of the held canary to promote now, e.g. `pulumi config set promote prod-abc1234` "
          "(one-off: it does nothing for any other tag)", matches(TAG_RE), bad=(*HOSTILE, TOO_LONG_TAG)),
    Field("adopt", "`true`: take over a container named `container_name` that this program did not start "
          "(the guide's hand-started `odoo`)",
          "true or false (true: take over a container named container_name that this program did not start)",
          parse_bool, default=False, bad=(*HOSTILE, NONSENSE),
          more="without it such a container is never stopped or removed"),
    # -- the droplet: SSH ----------------------------------------------------------------------
    Field("host", "The droplet's host name or IPv4 address (one droplet; several: `hosts`)",
          "the droplet's host name or IPv4 address", read=read.host, default_doc="— (required, or `hosts`)",
          bad=(*REQUIRED, "a b")),
    Field("ssh_port", "The droplet's SSH port", TCP_PORT, **PORT, default=22, bad=(*HOSTILE, "0", "70000")),
    Field("ssh_user", "The SSH user on the droplet", "a Unix user name such as root or deploy",
          matches(USER_RE), default="root", bad=(*HOSTILE, "Odoo")),
    Field("ssh_host_key", "The droplet's host key, pinned: `ssh-keyscan -t ed25519 HOST`", HOST_KEY_ALLOWED,
          read=read.value_or_file(lambda v: " ".join(v.split()[:2]), lambda v: bool(HOST_KEY_RE.fullmatch(v)),
                                  optional_with="hosts"),
          attr="host_key", default_doc="— (required, or `ssh_host_key_file`)", bad=(*HOSTILE, "AAAA")),
    Field("ssh_host_key_file", "A file that holds `ssh_host_key` (read when that is unset)",
          read=read.file_of, attr=None, bad=(NO_FILE,)),
    Field("ssh_private_key", "The deploy key (an OpenSSH private key)", PRIVATE_KEY_ALLOWED,
          read=read.value_or_file(lambda v: v.strip() + "\n", lambda v: "PRIVATE KEY-----" in v),
          secret="should", attr="private_key", default_doc="— (required, or `ssh_private_key_file`)",
          bad=HOSTILE, more="`pulumi config set --secret ssh_private_key < key`"),
    Field("ssh_private_key_file", "A file that holds the deploy key (read when `ssh_private_key` is unset)",
          read=read.file_of, attr="private_key_file", bad=(NO_FILE,)),
    # -- several droplets ------------------------------------------------------------------------
    Field("hosts", "Several droplets, instead of `host`: a list of `{name, host, ssh_port, ssh_user, ssh_host_key "
          "| ssh_host_key_file}` (what an entry leaves out comes from the top-level keys; a bare address is "
          "`{host: ADDRESS}`)", HOSTS_ALLOWED, read=read.hosts, structured=True, attr="fleet",
          default_doc="— (one droplet: `host`)", bad=('[{"host": "10.0.0.1;reboot"}]',),
          more="each droplet is its own resources (`release-NAME`...); names default to `host-1`, `host-2`..."),
    Field("canary_hosts", "How many droplets (the first in `hosts`) run the canary and its analysis",
          "an integer from 1 to the number of droplets", parse_int, lambda v: 1 <= v <= read.MAX_HOSTS, default=1,
          bad=(*HOSTILE, "0")),
    Field("wave_size", "After the canary passed: how many droplets are promoted at once (0: all the rest)",
          f"an integer from 0 to {read.MAX_HOSTS} (0: all the remaining droplets in one wave)", parse_int,
          lambda v: 0 <= v <= read.MAX_HOSTS,
          default=0, bad=HOSTILE),
    # -- the containers ------------------------------------------------------------------------
    Field("stable_port", "Host port of production", TCP_PORT, **PORT, default=8069, bad=(*HOSTILE, "0", "70000")),
    Field("canary_port", "Host port of the canary (not `stable_port`)",
          "a TCP port from 1 to 65535, not the stable_port", **PORT, default=8070, bad=(*HOSTILE, "8069")),
    Field("container_port", "The app's port inside the container", "the app's port inside the container (1-65535)",
          **PORT, default=8069, bad=(*HOSTILE, "70000")),
    Field("bind_address", "Where container ports are published (`127.0.0.1`: only nginx reaches the app)",
          "an IPv4 address to publish ports on (127.0.0.1: only nginx reaches the app; 0.0.0.0: everyone)",
          matches(IPV4_RE), default="127.0.0.1", bad=(*HOSTILE, "256.0.0.1")),
    Field("health_path", "The app's health check path", "a URL path such as /web/health", matches(URL_PATH_RE),
          default="/web/health", bad=(*HOSTILE, "web/health", "a b")),
    Field("container_name", "Production container name; the canary is `NAME-canary`",
          "a container name such as odoo (letters, digits, '_', '.', '-')", matches(NAME_RE), default="odoo",
          bad=(*HOSTILE, "Odoo/x")),
    Field("restart_policy", "Docker restart policy: `no`, `always`, `unless-stopped`, `on-failure`",
          "one of " + ", ".join(RESTART_POLICIES), check=lambda v: v in RESTART_POLICIES,
          default="unless-stopped", bad=(*HOSTILE, NONSENSE)),
    Field("env", "Container env, a map: `pulumi config set --path 'env.DB_HOST' db`",
          "a map of NAME: value (set with --path, e.g. `pulumi config set --path 'env.DB_HOST' db`)",
          read=read.env_map, structured=True, secret="may", bad=(*HOSTILE, *BAD_MAPS),
          more="`pulumi config set --secret --path 'env.PASSWORD' …` keeps the map secret (its values are "
               "masked as `[secret]` in every message)"),
    Field("canary_env", "The canary's env on top of `env`, e.g. `ERP_CRON: \"0\"` (no scheduled jobs in the canary); "
          "a database of its own loses its users' writes at promotion (preview warns)",
          "a map of NAME: value (set with --path, e.g. `pulumi config set --path 'canary_env.DB_HOST' db`)",
          read=read.env_map, structured=True, secret="may", bad=(*HOSTILE, *BAD_MAPS),
          more="a map like `env`, secret the same way"),
    Field("allow_host_mounts", "`true` lifts the `volumes` rule — dangerous: a container with the Docker "
          "socket or `/` owns the host",
          "true or false (true lets containers mount any host path, the host's root, /etc and the Docker socket "
          "included: dangerous)", parse_bool, default=False, attr=None, bad=(*HOSTILE, NONSENSE)),
    Field("host_mount_prefixes", "The host directories whose paths `volumes` and `canary_volumes` may mount, "
          "e.g. `--path 'host_mount_prefixes[0]' /srv/odoo`", PREFIXES_ALLOWED, read=read.host_mount_prefixes,
          structured=True, attr=None, default_doc="`/srv`, `/opt/<container_name>`",
          bad=(*HOSTILE, *BAD_PREFIXES),
          more="not `/`, a parent of a system directory, or inside /etc, /root, /proc, /sys, /dev, /boot, /usr, "
               "/var/lib/docker, /var/lib/canary, /var/spool, a container runtime's socket directory"),
    Field("volumes", "Mounts, e.g. `['odoo-data:/var/lib/odoo']` (named volumes are `docker.Volume` resources "
          "that `pulumi destroy` leaves in place)", VOLUMES_ALLOWED, read=read.volumes, structured=True,
          bad=(*HOSTILE, *BAD_MOUNTS),
          more="named volumes, and host paths under `host_mount_prefixes` only (unless `allow_host_mounts`)"),
    Field("canary_volumes", "The canary's own mounts, replacing those of the same container path, e.g. "
          "`['odoo-canary-data:/var/lib/odoo']`", VOLUMES_ALLOWED, read=read.volumes, structured=True,
          bad=(*HOSTILE, *BAD_MOUNTS)),
    Field("restore_backup", "A backup to restore into `database_url` at the next `pulumi up`, before anything "
          "else (the schema `public` replaced by the backup's, in one transaction): its file name on the droplet "
          "(the end of the `last_backup` output). One-off: done once per name",
          "a backup's file name, e.g. odoo-20261208T101500Z-v2.dump (`ls /var/lib/canary/APP/backups`)",
          matches(BACKUP_NAME_RE), bad=(*HOSTILE, "../x.dump", "x.sql")),
    # -- nginx ---------------------------------------------------------------------------------
    Field("listen_port", "Port of the nginx server block", TCP_PORT, **PORT, default=80, bad=(*HOSTILE, "0", "70000")),
    Field("server_name", "nginx `server_name`(s) of the server block, or `_`",
          "nginx server names separated by spaces, e.g. erp.example.com, or _", matches(SERVER_NAME_RE),
          default="_", bad=(*HOSTILE, "a  b")),
    Field("nginx_sites_dir", "Directory of the site file, under `/etc/nginx/`", NGINX_SUBDIR, dir_under(NGINX_DIR),
          default="/etc/nginx/sites-enabled", bad=(*HOSTILE, *BAD_DIRS)),
    Field("nginx_conf_dir", "Directory of the split file, under `/etc/nginx/`",
          NGINX_SUBDIR.replace("sites-enabled", "conf.d"), dir_under(NGINX_DIR), default="/etc/nginx/conf.d",
          bad=(*HOSTILE, *BAD_DIRS)),
    Field("nginx_site", "The site file, under `/etc/nginx/` (not a directory, not `nginx.conf`, no `..`); point "
          "it at an existing site to adopt it (`pulumi destroy` puts it back as it was)",
          "a site file under /etc/nginx/, e.g. the guide's /etc/nginx/sites-enabled/odoo (default: "
          "NGINX_SITES_DIR/CONTAINER_NAME.conf); not a directory, not nginx's own files (nginx.conf, "
          "mime.types, *_params), no '.', '..', '//' or trailing '/'", nginx_site,
          default_doc="`/etc/nginx/sites-enabled/<container_name>.conf`",
          bad=(*HOSTILE, *BAD_DIRS, "/etc/nginx/nginx.conf", "/etc/nginx/sites-enabled")),
    Field("nginx_log_dir", "Directory of the access log the analysis reads, under `/var/log/`",
          "a directory under /var/log/ such as /var/log/nginx (absolute, no '.', '..', '//' or trailing '/')",
          dir_under(LOG_DIR), default="/var/log/nginx", bad=(*HOSTILE, *BAD_DIRS)),
    Field("max_body_size", "nginx `client_max_body_size`: the largest request body (an ERP's uploads and "
          "imports; nginx's own default, 1m, breaks them)", "a size such as 200m, 1g or 512k (0: no limit)",
          matches(BODY_SIZE_RE), default="200m", bad=(*HOSTILE, "2 g", NONSENSE)),
    Field("proxy_timeout", "How long nginx waits for the app's answer (an ERP's long reports and imports)",
          "a duration from 1s to 1h", duration("s"), between(1, 3600), default="720s",
          bad=(*HOSTILE, "0", "2h")),
    Field("websocket_paths", "Paths proxied as WebSocket / long-polling (Odoo's `/websocket`, `/longpolling`), "
          "routed to the same backend as the client's pages", "a list of URL paths such as ['/websocket'] "
          "(at most 16, not '/'; [] for none)", read=read.websocket_paths, structured=True,
          default_doc="`['/websocket', '/longpolling']`", bad=(*_without(A_LIST), '["/"]', '["a b"]')),
    Field("routing", "`cookie` (exact weighted round-robin + sticky cookie), `ip_hash` (the guide's) or `hash`",
          "one of " + ", ".join(ROUTINGS), check=lambda v: v in ROUTINGS, default="cookie",
          bad=(*HOSTILE, NONSENSE)),
    # -- the analysis --------------------------------------------------------------------------
    Field("startup_timeout", "How long a container may take to answer its health check",
          "a duration from 1s to 30m", duration("s"), between(1, 1800), default="120s",
          bad=(*HOSTILE, "0", "2h")),
    Field("drain_timeout", "How long nginx's old workers may take to finish in-flight requests",
          "a duration from 0s to 10m", duration("s"), between(0, 600), default="5s", bad=(*HOSTILE, "2h")),
    Field("max_response_time", "Highest p95 response time (the guide's Key Metrics: 2s)",
          "a duration such as 2s or 500ms", duration("s"), lambda v: 0 < v <= 600, default="2s",
          bad=(*HOSTILE, "0", "2h")),
    Field("max_error_logs_per_minute", "Most ERROR lines a minute in the canary's `docker logs`",
          "an integer from 0 to 100000", parse_int, between(0, 100000), default=10, bad=(*HOSTILE, "10.5", TOO_BIG)),
    Field("latency_factor", "The canary's latency may be at most this times stable's (health probes: median; "
          "real traffic: p95)", "a number from 1 to 100 (canary p95 / stable p95)", parse_float,
          between(1, 100), default=2.0, bad=(*HOSTILE, "0", "101")),
    Field("min_requests", "Real requests to the canary before the access log is judged",
          "an integer from 1 to 1000000", parse_int, between(1, 1_000_000), default=50, bad=(*HOSTILE, "0", TOO_BIG)),
    Field("metric_command", "A **trusted** host command run as the SSH user that prints one number (e.g. DB "
          "connections %); `metric_max` is its limit",
          "a shell command run on the host that prints one number",
          check=lambda v: "\n" not in v and len(v) < 1000, secret="may",
          # Any one line is a command: only the too long and the multi-line are bad.
          bad=(LONG, "v1\nid"),
          more="killed after the check interval (5–30 s); no number, NaN or infinity fails the analysis; "
               "`--secret` keeps it secret"),
    Field("metric_max", "The highest number `metric_command` may print (set both or neither)", "a number",
          parse_float, lambda v: abs(v) < 1e12, bad=(*_without(NEGATIVE), TOO_BIG, NONSENSE)),
    Field("prometheus_url", "Prometheus's HTTP API as the droplet reaches it, for `prometheus_metrics` (asked "
          "through the SSH tunnel, like the database)",
          "an http URL of Prometheus as the droplet reaches it, e.g. http://127.0.0.1:9090 or "
          "http://10.0.0.7:9090/prometheus (plain http: the SSH tunnel carries it)",
          matches(PROMETHEUS_URL_RE), lambda v: (urlsplit(v).port or 80) <= 65535, default="http://127.0.0.1:9090",
          bad=(*HOSTILE, "ftp://10.0.0.5", "http://a b")),
    Field("prometheus_metrics", "PromQL queries whose answers the canary must keep within limits, each check: "
          "a list of `{name, query, max, min}` (at least one limit)",
          PROMETHEUS_METRICS_ALLOWED, read=read.prometheus_metrics, structured=True,
          bad=(*HOSTILE, '[{"name": "up", "query": "up"}]'),
          more="a query may name the release with `$app` (the container name; the canary's is `$app-canary`), "
               "`$canary_port` and `$stable_port`; one series or a scalar, else no number: the analysis fails "
               "closed"),
    # -- the app's database: migrations, backups, connections (an ERP's) ----------------------
    Field("database_url", "The app's PostgreSQL database as the droplet reaches it, "
          "`postgresql://USER:PASSWORD@HOST:PORT/DB` (secret): backups before migrations and the connections check",
          read.DATABASE_URL_ALLOWED, read=read.database_url, secret="must", default_doc="— (no database steps)",
          bad=(*HOSTILE, "postgresql://odoo:pw@10.0.0.5:5432/odoo")),
    Field("max_db_connections", "Highest client connections in percent of PostgreSQL's `max_connections` during "
          "the analysis (the guide's Key Metrics: 80); with `database_url`",
          "a percentage from 1 to 100", parse_float, between(1, 100), default=80.0, bad=(*HOSTILE, "0", "101")),
    Field("migrate_command", "The release's migration, e.g. `odoo -u all --stop-after-init` or `trytond-admin -d "
          "erp -u party`: run once in a one-off container of the new image (production's env and volumes) "
          "before the canary takes traffic",
          "the image's command line for the migration, one line under 1000 characters (split into words "
          "as a shell would, never run by a shell on the host)", read=read.migrate_command,
          bad=(LONG, "v1\nid", "a 'b")),
    Field("migrate_timeout", "How long the migration may take before it is stopped and the release fails",
          "a duration from 1s to 12h", duration("s"), between(1, 43200), default="30m",
          bad=(*HOSTILE, "0", "13h")),
    Field("backup", "`true`: `pg_dump -Fc` of `database_url` on the droplet before every migration (kept "
          "`backup_keep`)", **BOOL, default=True, bad=(*HOSTILE, NONSENSE)),
    Field("backup_image", "The image whose `pg_dump` makes the backup (PostgreSQL's major version at least the "
          "server's), e.g. `postgres:16`", "an image reference such as postgres:16 or registry.example.com/pg:15",
          matches(IMAGE_REF_RE), default_doc="the release's image (Odoo's ships `pg_dump`)",
          bad=(*HOSTILE, "Postgres")),
    Field("backup_keep", "How many backups the droplet keeps (the oldest go)", "an integer from 1 to 1000",
          parse_int, between(1, 1000), default=5, bad=(*HOSTILE, "0", "10.5")),
    Field("notify_allow_local", "`true` lets `notify_webhook` reach loopback and link-local addresses (a "
          "receiver on the deploying machine); cloud metadata endpoints included: only for tests",
          "true or false (true: the webhook may be a loopback or link-local address)", parse_bool, default=False,
          attr=None, bad=(*HOSTILE, NONSENSE)),
    Field("notify_webhook", "Slack-compatible incoming webhook: canary started, promoted, holding, rolled back",
          "an http(s) URL of a Slack-compatible incoming webhook (set it with --secret)",
          read=read.notify_webhook, secret="should", attr=None,
          bad=(*HOSTILE, "http://a b", "ftp://10.0.0.5", "http://169.254.169.254/latest", "http://127.0.0.1:9/x"),
          more="no redirects, no proxy from the environment; loopback, link-local (cloud metadata) and "
               "unspecified addresses are refused unless `notify_allow_local`"),
    Field("probe_url", "The app's root as this machine reaches it, e.g. `http://10.0.0.5:8070`, when probes "
          "should not go through the SSH tunnel",
          "an http(s) URL of the app's root on this machine's network, e.g. http://10.0.0.5:8070 (default: "
          "probes go through an SSH tunnel)", matches(PROBE_URL_RE), default_doc="— (the SSH tunnel)",
          bad=(*HOSTILE, "ftp://10.0.0.5", "http://a b")),
    # -- forced routing: who may steer a request to the canary (or to stable) -----------------
    Field("force_allow", "IPv4 addresses/networks whose `X-Canary` header or `canary_<name>=force` cookie is "
          "honoured, e.g. `--path 'force_allow[0]' 203.0.113.7`, `'force_allow[1]' 10.0.0.0/8`",
          FORCE_ALLOW_ALLOWED, read=read.force_allow, bad=(*HOSTILE, "10.0.0.1/8", "10.0.0.0/4"),
          more="prefix /8–/32, at most 64"),
    Field("force_token", "Lets testers force a backend: `X-Canary: always` (or `never`) with "
          "`X-Canary-Token: <token>`, or the cookie `canary_<name>=force.<token>`", FORCE_TOKEN_ALLOWED,
          read=read.force_token, secret="must",
          # Set without --secret, as the sweep sets values: refused even when well formed.
          bad=(*HOSTILE, WELL_FORMED_TOKEN),
          more="16–128 letters, digits, `_`, `-` (`pulumi config set --secret force_token $(openssl rand -hex 24)`)"),
    # -- the image's registry ------------------------------------------------------------------
    Field("image_pull", "`true`: the digest of `image:image_tag` is read from its registry and the host pulls "
          "it (pulumi-docker) before anything changes; `false`: the image is already on the host (built there)",
          "true (pull image:image_tag from its registry onto the host) or false (the image is already on the "
          "host, e.g. built there)", parse_bool, default=True, bad=(*HOSTILE, NONSENSE)),
    Field("registry_server", "The registry, `host[:port]`: the only one the registry login goes to (then "
          "required, and `image` must be on it)", "a registry host[:port] such as registry.digitalocean.com "
          "(default without a registry login: the registry named in canary:image)", matches(REGISTRY_RE),
          read=read.registry_server, default_doc="the registry in `image` (no login)",
          more="Docker Hub for an image without one",
          bad=(*HOSTILE, "https://registry.example.com")),
    Field("registry_username", "The registry login's user name, e.g. a DigitalOcean API token: "
          "`pulumi config set --secret registry_username …`",
          "a registry user name (letters, digits, '_', '.', '@', '+', '-')", matches(REGISTRY_USER_RE),
          secret="should", bad=(*HOSTILE, "a b")),
    Field("registry_insecure", "`true`: the registry speaks plain HTTP (one on 127.0.0.1, as on the test host)",
          "true (the registry speaks plain HTTP, e.g. one on 127.0.0.1) or false (HTTPS)", parse_bool,
          default=False, bad=(*HOSTILE, NONSENSE)),
    Field("registry_password", "The registry login's password: `pulumi config set --secret registry_password …`",
          "a single line of at most 4096 characters", read=read.registry_password, secret="must",
          # Set without --secret, as the sweep sets values: refused whatever it is.
          bad=(*HOSTILE, WELL_FORMED_TOKEN)),
    Field("registry_password_file", "A file that holds the registry password (read when `registry_password` "
          "is unset)", read=read.file_of, attr=None, bad=(NO_FILE,)),
)

FIELD = {f.name: f for f in FIELDS}
STRUCTURED = tuple(f.name for f in FIELDS if f.structured)
SECRET_KEYS = tuple(f.name for f in FIELDS if f.secret)  # the keys whose value may be a secret


def decoded(key: str, value: Any) -> Any:
    """A raw value as the program reads it: JSON text of a structured key decoded (Pulumi
    hands maps and lists over as JSON); left as it is when not JSON, for the key's own
    check to report."""
    if value is not None and key in STRUCTURED and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def config_text(value: Any) -> str:
    """A default as `pulumi config` holds it: true/false, 5 rather than 5.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def names_key(message: str, key: str) -> bool:
    """Whether an error lists a problem of canary:KEY: a line `- canary:KEY ...` (not a
    longer key it starts, as canary:image starts canary:image_tag, nor a key that another
    key's problem mentions)."""
    return re.search(rf"^\s*- canary:{re.escape(key)}(?![A-Za-z0-9_])", message, re.MULTILINE) is not None


def bad_input_batches() -> dict[str, dict[str, str]]:
    """The fault sweep's previews: per bad value, every key that refuses it, set together
    (the program reports every invalid key at once)."""
    batches: dict[str, dict[str, str]] = {}
    for f in FIELDS:
        for value in f.bad:
            batches.setdefault(value, {})[f.name] = value
    return batches
