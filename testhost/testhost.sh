#!/usr/bin/env bash
# The local test host: a "droplet" on this machine, reached like the real one.
#
#   testhost.sh start    dockerd, nginx, sshd on 127.0.0.1:2222, demo images, a private
#                        registry on 127.0.0.1:5000 (password auth) holding them,
#                        PostgreSQL on 127.0.0.1:5433 (shared Pulumi state), and Prometheus
#                        on 127.0.0.1:9090 scraping node-exporter (127.0.0.1:9100) every second
#   testhost.sh stop     stop sshd, nginx, the registry, PostgreSQL and Prometheus (dockerd
#                        and images stay)
#   testhost.sh push IMAGE TAG   push a local image as the registry's canary-demo:TAG
#   testhost.sh status   what runs, and the pinned host key
#   testhost.sh reset    remove the app's containers and nginx files (clean host)
#   testhost.sh erp      build the ERP images (Tryton, PostgreSQL: testhost/erp.sh) and push
#                        them to the registry; `start` does it too when TESTHOST_ERP=1
#
# Keys live in $TESTHOST_DIR (default /var/lib/canary-testhost): a client key pair for
# root (id_ed25519) and the sshd host key, whose public half is the key stacks pin.
# sshd logs every command it runs to $TESTHOST_DIR/sshd.log (tests count them).
# PostgreSQL: a cluster of its own (`canary`, Debian's pg_createcluster) with a role and
# database `pulumi` for Pulumi's PostgreSQL state backend; the role's generated password
# and the backend URL are in $TESTHOST_DIR/postgres_url (mode 600).
# Registry: Debian's docker-registry (the CNCF distribution) with htpasswd auth; user
# `canary`, its generated password in $TESTHOST_DIR/registry_password (mode 600). The demo
# images are pushed there as $REGISTRY/canary-demo:TAG.
# Prometheus: Debian's, with its config and data in $TESTHOST_DIR/prometheus; the job
# `node` is node-exporter (so `up{job="node"}` is 1 while both run).
set -euo pipefail

TESTHOST_DIR=${TESTHOST_DIR:-/var/lib/canary-testhost}
SSH_PORT=${TESTHOST_SSH_PORT:-2222}
PG_PORT=${TESTHOST_PG_PORT:-5433}
PG_CLUSTER=canary
REGISTRY=${TESTHOST_REGISTRY:-127.0.0.1:5000}
REGISTRY_USER=canary
PROMETHEUS=127.0.0.1:9090
NODE_EXPORTER=127.0.0.1:9100
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testhost/sshd.sh
. "$here/sshd.sh"
# shellcheck source=testhost/registry.sh
. "$here/registry.sh"
IMAGES=(v1 v2 broken slow sick)

log() { printf '[testhost] %s\n' "$*" >&2; }

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; } # PIDFILE

# `detach LOG PIDFILE COMMAND...`: COMMAND in the background, holding none of our
# descriptors but its output: one holding a lock file (say the test host's turn lock)
# would keep that lock for the service's lifetime.
detach() {
    local out=$1 pidfile=$2
    shift 2
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        nohup "$@" </dev/null >"$out" 2>&1 &
        echo $! >"$pidfile"
    )
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then return; fi
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/canary-testhost-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    log "dockerd did not start; see /var/log/canary-testhost-dockerd.log"
    tail -20 /var/log/canary-testhost-dockerd.log >&2
    exit 1
}

start_nginx() {
    # The host's nginx, as on the guide's droplet. Sites are written by the stacks.
    rm -f /etc/nginx/sites-enabled/default
    if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then return; fi
    log "starting nginx"
    nginx -t -q
    nginx
}

start_sshd() {
    mkdir -p "$TESTHOST_DIR" /run/sshd
    chmod 700 "$TESTHOST_DIR"
    [ -f "$TESTHOST_DIR/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C canary-testhost -f "$TESTHOST_DIR/ssh_host_ed25519_key"
    [ -f "$TESTHOST_DIR/id_ed25519" ] ||
        ssh-keygen -q -t ed25519 -N '' -C canary-deployer -f "$TESTHOST_DIR/id_ed25519"
    cp "$TESTHOST_DIR/id_ed25519.pub" "$TESTHOST_DIR/authorized_keys"
    chmod 600 "$TESTHOST_DIR/authorized_keys"
    sshd_config 127.0.0.1 "$SSH_PORT" "$TESTHOST_DIR/ssh_host_ed25519_key" "$TESTHOST_DIR/sshd.pid" \
        "$TESTHOST_DIR/authorized_keys" >"$TESTHOST_DIR/sshd_config"
    if [ -s "$TESTHOST_DIR/sshd.pid" ] && kill -0 "$(cat "$TESTHOST_DIR/sshd.pid")" 2>/dev/null; then return; fi
    log "starting sshd on 127.0.0.1:$SSH_PORT"
    # -E: a log of its own; each session's command is recorded by the ForceCommand-free
    # "exec" log lines at VERBOSE level.
    droplet_rc
    # slave: Docker's mounts and unmounts reach sshd's namespace; its own stay there.
    unshare --mount --propagation slave "${DROPLET_RC[@]}" \
        /usr/sbin/sshd -f "$TESTHOST_DIR/sshd_config" -E "$TESTHOST_DIR/sshd.log"
    for _ in $(seq 1 20); do
        [ -s "$TESTHOST_DIR/sshd.pid" ] && return
        sleep 0.2
    done
}

pg_version() { # the newest PostgreSQL server installed (Debian's postgresql package)
    local v
    v=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1)
    [ -n "$v" ] || { log "PostgreSQL is not installed (scripts/setup installs it)"; exit 1; }
    echo "$v"
}

pg_running() { pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" '$2 == c && $4 == "online" { ok = 1 } END { exit !ok }'; }

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"; }

start_postgres() {
    local v
    v=$(pg_version)
    if ! pg_lsclusters -h | awk -v c="$PG_CLUSTER" '$2 == c { ok = 1 } END { exit !ok }'; then
        log "creating PostgreSQL $v cluster '$PG_CLUSTER' on 127.0.0.1:$PG_PORT"
        pg_createcluster -q "$v" "$PG_CLUSTER" -p "$PG_PORT" --start-conf manual -- \
            --auth-local peer --auth-host scram-sha-256 >/dev/null
    fi
    # Only this machine reaches it (clients authenticate with a password).
    printf "listen_addresses = '127.0.0.1'\n" >"/etc/postgresql/$v/$PG_CLUSTER/conf.d/canary-testhost.conf"
    if ! pg_running; then
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        # Without systemd, pg_ctlcluster runs pg_ctl as the cluster's owner (postgres).
        # The server gets no inherited descriptors: one holding a lock file (say the
        # test host's turn lock) would keep that lock for the server's lifetime.
        (
            for fd in /proc/self/fd/*; do
                fd=${fd##*/}
                if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
            done
            pg_ctlcluster "$v" "$PG_CLUSTER" start
        )
    fi
    # The role and database for Pulumi's state: created once, the password kept.
    local password
    if [ -s "$TESTHOST_DIR/postgres_password" ]; then
        password=$(cat "$TESTHOST_DIR/postgres_password")
    else
        password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
        (umask 077 && printf '%s\n' "$password" >"$TESTHOST_DIR/postgres_password")
    fi
    psql_admin -d postgres -v password="$password" <<'SQL'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulumi') AS create_role \gset
\if :create_role
CREATE ROLE pulumi LOGIN;
\endif
ALTER ROLE pulumi PASSWORD :'password';
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pulumi') AS create_db \gset
\if :create_db
CREATE DATABASE pulumi OWNER pulumi;
\endif
SQL
    (umask 077 && printf 'postgres://pulumi:%s@127.0.0.1:%s/pulumi?sslmode=disable\n' \
        "$password" "$PG_PORT" >"$TESTHOST_DIR/postgres_url")
}

build_images() {
    local app="$TESTHOST_DIR/canary-demo-app" want have
    # Keyed by the app and this function (the variants), not by the rest of this script.
    want=$({ cat "$here/demo-app/main.go"; declare -f build_images; } | sha256sum | cut -c1-16)
    have=$(docker image inspect -f '{{index .Config.Labels "canary.demo.build"}}' canary-demo:v1 2>/dev/null || true)
    # Rebuild only when the app or this script changed.
    if [ "$want" = "$have" ]; then
        local missing=0
        for t in "${IMAGES[@]}"; do docker image inspect "canary-demo:$t" >/dev/null 2>&1 || missing=1; done
        [ $missing = 0 ] && return
    fi
    log "building demo images"
    (cd "$here/demo-app" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$app" .)
    local root
    root=$(mktemp -d)
    mkdir -p "$root/app" "$root/tmp"
    cp "$app" "$root/app/canary-demo-app"
    tar -C "$root" -cf "$TESTHOST_DIR/rootfs.tar" .
    rm -rf "$root"
    variant() { # tag, extra ENV lines...
        local tag=$1; shift
        local changes=(--change 'CMD ["/app/canary-demo-app"]' --change 'EXPOSE 8069'
            --change "LABEL canary.demo.build=$want" --change "ENV APP_VERSION=$tag")
        for e in "$@"; do changes+=(--change "ENV $e"); done
        docker import "${changes[@]}" "$TESTHOST_DIR/rootfs.tar" "canary-demo:$tag" >/dev/null
    }
    variant v1
    variant v2
    variant broken HEALTH_STATUS=500 FAIL_PERCENT=60
    variant slow DELAY_MS=600
    variant sick FAIL_PERCENT=30
}

start_registry() {
    local dir="$TESTHOST_DIR/registry" password
    mkdir -p "$dir/data"
    if [ -s "$TESTHOST_DIR/registry_password" ]; then
        password=$(cat "$TESTHOST_DIR/registry_password")
    else
        password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
        (umask 077 && printf '%s\n' "$password" >"$TESTHOST_DIR/registry_password")
    fi
    htpasswd -Bbc "$dir/htpasswd" "$REGISTRY_USER" "$password" 2>/dev/null
    cat >"$dir/config.yml" <<CONFIG
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $dir/data }
  delete: { enabled: true }
http:
  addr: $REGISTRY
auth:
  htpasswd: { realm: canary-testhost, path: $dir/htpasswd }
CONFIG
    if [ -s "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then return; fi
    log "starting the registry on $REGISTRY"
    nohup docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 50); do
        curl -fsS -o /dev/null -u "$REGISTRY_USER:$password" "http://$REGISTRY/v2/" 2>/dev/null && return
        sleep 0.2
    done
    log "the registry did not start; see $dir/log"
    tail -20 "$dir/log" >&2
    exit 1
}

# Prometheus scraping node-exporter every second (a test's query has a fresh sample at
# once), only on loopback; the droplet's SSH tunnels reach it.
start_prometheus() {
    local dir="$TESTHOST_DIR/prometheus"
    mkdir -p "$dir/data"
    cat >"$dir/prometheus.yml" <<CONFIG
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: node
    static_configs: [{ targets: ['$NODE_EXPORTER'] }]
CONFIG
    if ! running "$dir/node-exporter.pid"; then
        log "starting node-exporter on $NODE_EXPORTER"
        detach "$dir/node-exporter.log" "$dir/node-exporter.pid" \
            prometheus-node-exporter --web.listen-address="$NODE_EXPORTER"
    fi
    if running "$dir/pid"; then
        kill -HUP "$(cat "$dir/pid")" # reads the config above again
    else
        log "starting Prometheus on $PROMETHEUS"
        detach "$dir/log" "$dir/pid" prometheus --config.file="$dir/prometheus.yml" \
            --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=1d --web.listen-address="$PROMETHEUS"
    fi
    # Ready once node-exporter was scraped.
    for _ in $(seq 1 100); do
        curl -fsS "http://$PROMETHEUS/api/v1/query?query=up" 2>/dev/null | grep -q '"job":"node"' && return
        sleep 0.2
    done
    log "Prometheus did not start; see $dir/log and $dir/node-exporter.log"
    tail -20 "$dir/log" "$dir/node-exporter.log" >&2
    exit 1
}

# `registry_push SOURCE TAG`: the local image SOURCE as $REGISTRY/canary-demo:TAG.
# The host keeps no copy under the registry's name: a deploy must really pull it.
registry_push() {
    docker tag "$1" "$REGISTRY/canary-demo:$2"
    registry_docker push -q "$REGISTRY/canary-demo:$2" >/dev/null
    forget_pulled
}

# Removes the host's references to images of the test registry (tags and digests; the
# layers stay with the local demo images), so the next deploy pulls again.
forget_pulled() {
    local refs
    mapfile -t refs < <(docker image ls --digests --format '{{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}' \
        "$REGISTRY/canary-demo" 2>/dev/null | tr ' ' '\n' | grep -v -e ':<none>$' -e '@<none>$' | sort -u)
    if [ ${#refs[@]} -gt 0 ]; then docker rmi "${refs[@]}" >/dev/null 2>&1 || true; fi
}

push_images() {
    local want have
    want=$(docker image inspect -f '{{.Id}}' canary-demo:v1)
    have=$(cat "$TESTHOST_DIR/registry/pushed" 2>/dev/null || true)
    [ "$want" = "$have" ] && return
    log "pushing the demo images to $REGISTRY"
    for t in "${IMAGES[@]}"; do registry_push "canary-demo:$t" "$t"; done
    echo "$want" >"$TESTHOST_DIR/registry/pushed"
}

host_key() { cut -d' ' -f1,2 "$TESTHOST_DIR/ssh_host_ed25519_key.pub"; }

cmd_start() {
    start_dockerd
    start_nginx
    start_sshd
    start_postgres
    build_images
    start_registry
    push_images
    start_prometheus
    if [ "${TESTHOST_ERP:-0}" = 1 ]; then cmd_erp; fi
    bash "$here/fleet.sh" start # three more hosts at 10.231.N.2 (N = 1..3)
    log "ready: ssh -p $SSH_PORT -i $TESTHOST_DIR/id_ed25519 root@127.0.0.1"
}

cmd_erp() {
    bash "$here/erp.sh" build
    bash "$here/erp.sh" push
}

cmd_stop() {
    if [ -s "$TESTHOST_DIR/sshd.pid" ]; then kill "$(cat "$TESTHOST_DIR/sshd.pid")" 2>/dev/null || true; fi
    nginx -s quit 2>/dev/null || true
    if pg_running; then pg_ctlcluster "$(pg_version)" "$PG_CLUSTER" stop; fi
    if [ -s "$TESTHOST_DIR/registry/pid" ]; then kill "$(cat "$TESTHOST_DIR/registry/pid")" 2>/dev/null || true; fi
    local pidfile
    for pidfile in "$TESTHOST_DIR/prometheus/pid" "$TESTHOST_DIR/prometheus/node-exporter.pid"; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; fi
    done
}

cmd_status() {
    docker info >/dev/null 2>&1 && echo "dockerd: running" || echo "dockerd: stopped"
    [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null && echo "nginx: running" || echo "nginx: stopped"
    [ -s "$TESTHOST_DIR/sshd.pid" ] && kill -0 "$(cat "$TESTHOST_DIR/sshd.pid")" 2>/dev/null &&
        echo "sshd: running on 127.0.0.1:$SSH_PORT" || echo "sshd: stopped"
    pg_running && echo "postgres: running on 127.0.0.1:$PG_PORT, state backend postgres://pulumi:****@127.0.0.1:$PG_PORT/pulumi?sslmode=disable (URL in $TESTHOST_DIR/postgres_url)" ||
        echo "postgres: stopped"
    [ -s "$TESTHOST_DIR/registry/pid" ] && kill -0 "$(cat "$TESTHOST_DIR/registry/pid")" 2>/dev/null &&
        echo "registry: running on $REGISTRY (user $REGISTRY_USER, password in $TESTHOST_DIR/registry_password)" ||
        echo "registry: stopped"
    running "$TESTHOST_DIR/prometheus/pid" && echo "prometheus: running on $PROMETHEUS" || echo "prometheus: stopped"
    running "$TESTHOST_DIR/prometheus/node-exporter.pid" && echo "node-exporter: running on $NODE_EXPORTER" ||
        echo "node-exporter: stopped"
    [ -f "$TESTHOST_DIR/ssh_host_ed25519_key.pub" ] && echo "host key: $(host_key)"
    docker images canary-demo --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | sort
    bash "$here/fleet.sh" status
}

# A clean host for the next test: no app containers, no nginx site or split file.
cmd_reset() {
    local ids
    mapfile -t ids < <( (docker ps -aq --filter label=canary.app; docker ps -aq --filter name="^odoo";
        docker ps -aq --filter name="^erp-") 2>/dev/null | sort -u)
    if [ ${#ids[@]} -gt 0 ]; then docker rm -f "${ids[@]}" >/dev/null; fi
    rm -f /etc/nginx/sites-enabled/odoo* /etc/nginx/conf.d/odoo-canary.conf* \
        /etc/nginx/sites-enabled/erp.conf* /etc/nginx/conf.d/erp-canary.conf*
    rm -rf /var/lib/canary
    forget_pulled
    nginx -t -q && nginx -s reload
}

case "${1:-}" in
start) cmd_start ;;
push) registry_push "$2" "$3" ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
erp) start_dockerd; start_registry; cmd_erp ;;
*) echo "usage: $0 start|stop|status|reset|erp|push IMAGE TAG" >&2; exit 2 ;;
esac
