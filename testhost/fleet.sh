#!/usr/bin/env bash
# A fleet of local test hosts: several "droplets" on this machine, each reached at its
# own address over SSH, each with its own sshd, nginx and Docker engine.
#
#   fleet.sh start [N]   hosts 1..N (default 3); quick when they already run
#   fleet.sh stop        stop every fleet host and remove its network namespace
#   fleet.sh status      per host: address, sshd/nginx/dockerd, pinned host key, images
#   fleet.sh reset       per host: remove the app's containers, nginx files, /var/lib/canary
#
# Host N lives in the network namespace canary-fleet-N, reached from this machine through
# a veth pair: 10.231.N.1 here, 10.231.N.2 on the host (sshd on port 22, sites on their
# listen ports). Its daemons run in a mount namespace of their own, in which
#   /etc/nginx, /var/log/nginx, /var/lib/nginx, /var/lib/canary, /etc/docker,
#   /var/lib/docker, /run
# are the host's own directories under $FLEET_DIR/hostN, so that a command run over SSH
# on host N (`docker ps`, `nginx -t`, `nginx -s reload`) acts on host N's engine and nginx.
# Everything else (programs, temporary files, the process list: pgrep sees every host's
# nginx) is this machine's.
#
# The client key is the single test host's ($TESTHOST_DIR/id_ed25519, made by
# testhost.sh start); each host has a host key of its own, whose public half is
# $FLEET_DIR/hostN/ssh_host_ed25519_key.pub (the key a stack pins). The demo images are
# copied from this machine's engine (testhost.sh builds them).
set -euo pipefail
# shellcheck source=testhost/sshd.sh
. "$(cd "$(dirname "$0")" && pwd)/sshd.sh"

TESTHOST_DIR=${TESTHOST_DIR:-/var/lib/canary-testhost}
FLEET_DIR=${TESTHOST_FLEET_DIR:-$TESTHOST_DIR/fleet}
IMAGES=(v1 v2 broken slow sick)

log() { printf '[fleet] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

ns_name() { echo "canary-fleet-$1"; }
hdir() { echo "$FLEET_DIR/host$1"; }
addr() { echo "10.231.$1.2"; }
sock() { echo "unix://$(hdir "$1")/run/docker.sock"; }
hdocker() { local n=$1; shift; docker -H "$(sock "$n")" "$@"; }

# The mount namespace of a host, set up before its command runs ($1 = host dir, then
# the command). /var/lib becomes a small tmpfs holding this machine's /var/lib entries
# (bind mounts) plus the host's own canary, docker and nginx directories: a bind mount
# straight onto /var/lib/canary would be undone whenever this machine's /var/lib/canary
# is removed (testhost.sh reset does), and host N would then write into this machine's.
# /run is bound last: it hides /var/run/netns, so nsenter enters the network first.
# shellcheck disable=SC2016 # expanded by the inner shell
MOUNTS='set -e
h=$1; shift
mount --bind /var/lib /mnt
mount -t tmpfs -o mode=0755,size=1m canary-fleet /var/lib
for e in /mnt/* /mnt/.[!.]*; do
    name=${e##*/}
    case $name in canary | docker | nginx | "*" | ".[!.]*") continue ;; esac
    if [ -L "$e" ]; then cp -P "$e" /var/lib/
    elif [ -d "$e" ]; then mkdir "/var/lib/$name"; mount --bind "$e" "/var/lib/$name"
    elif [ -e "$e" ]; then : >"/var/lib/$name"; mount --bind "$e" "/var/lib/$name"
    fi
done
umount /mnt
mkdir /var/lib/canary /var/lib/docker /var/lib/nginx
mount --bind "$h/canary" /var/lib/canary
mount --bind "$h/docker" /var/lib/docker
mount --bind "$h/lib-nginx" /var/lib/nginx
mount --bind "$h/etc-nginx" /etc/nginx
mount --bind "$h/etc-docker" /etc/docker
mount --bind "$h/log-nginx" /var/log/nginx
mount --bind "$h/run" /run
exec "$@"'

# Sets IN_HOST to the command prefix that runs a command on host N.
in_host() {
    IN_HOST=(nsenter --net="/run/netns/$(ns_name "$1")"
        unshare --mount --propagation private sh -c "$MOUNTS" sh "$(hdir "$1")")
}

# Whether the pid in a pid file (a path under the host's run dir) runs in host N.
alive() {
    local n=$1 pidfile pid
    pidfile="$(hdir "$n")/run/$2"
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -e "/proc/$pid" ] && [ -e "/run/netns/$(ns_name "$n")" ] || return 1
    [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$(stat -L -c %i "/run/netns/$(ns_name "$n")")" ]
}

not() { ! "$@"; }
ns_empty() { [ -z "$(ip netns pids "$1")" ]; }

wait_for() { # tries (of 0.1 s), command...
    local tries=$1; shift
    for _ in $(seq 1 "$tries"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

start_network() {
    local n=$1 ns veth
    ns=$(ns_name "$n") veth="canary-fleet$n"
    if [ -e "/run/netns/$ns" ] && ip link show "$veth" >/dev/null 2>&1; then return; fi
    log "host $n: network namespace $ns, 10.231.$n.1 <-> $(addr "$n")"
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$veth" 2>/dev/null || true
    rm -rf "$(hdir "$n")/run" # what ran in an earlier namespace is gone
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip addr add "10.231.$n.1/30" dev "$veth"
    ip link set "$veth" up
    ip -n "$ns" addr add "$(addr "$n")/30" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

prepare_dirs() {
    local n=$1 h
    h=$(hdir "$n")
    mkdir -p "$h"/{canary,docker,etc-docker,lib-nginx,log-nginx,run/sshd,run/lock}
    chmod 700 "$h/canary"
    chmod 755 "$h/run" "$h/run/sshd"
    if [ ! -f "$h/etc-nginx/nginx.conf" ]; then
        # The Debian nginx configuration, without this machine's sites.
        rm -rf "$h/etc-nginx"
        cp -a /etc/nginx "$h/etc-nginx"
        find "$h/etc-nginx/conf.d" "$h/etc-nginx/sites-enabled" "$h/etc-nginx/sites-available" \
            -mindepth 1 -delete
    fi
    [ -f "$h/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "canary-fleet-host$n" -f "$h/ssh_host_ed25519_key"
    sshd_config "$(addr "$n")" 22 "$h/ssh_host_ed25519_key" /run/sshd.pid "$TESTHOST_DIR/authorized_keys" \
        >"$h/sshd_config"
}

start_dockerd() {
    local n=$1
    alive "$n" docker.pid && hdocker "$n" info >/dev/null 2>&1 && return
    log "host $n: starting dockerd"
    rm -f "$(hdir "$n")/run/docker.pid"
    in_host "$n"
    nohup "${IN_HOST[@]}" dockerd --data-root /var/lib/docker --exec-root /run/docker \
        --pidfile /run/docker.pid -H unix:///run/docker.sock \
        >"$(hdir "$n")/dockerd.log" 2>&1 9>&- &
}

wait_dockerd() {
    local n=$1
    wait_for 300 hdocker "$n" info >/dev/null 2>&1 && return
    tail -20 "$(hdir "$n")/dockerd.log" >&2
    die "host $n: dockerd did not start; see $(hdir "$n")/dockerd.log"
}

start_nginx() {
    local n=$1
    alive "$n" nginx.pid && return
    log "host $n: starting nginx"
    in_host "$n"
    "${IN_HOST[@]}" nginx -t -q
    "${IN_HOST[@]}" nginx 9>&-
    wait_for 50 alive "$n" nginx.pid || die "host $n: nginx did not start"
}

start_sshd() {
    local n=$1 h
    h=$(hdir "$n")
    alive "$n" sshd.pid && return
    log "host $n: starting sshd on $(addr "$n"):22"
    in_host "$n"
    droplet_rc
    "${IN_HOST[@]}" "${DROPLET_RC[@]}" /usr/sbin/sshd -f "$h/sshd_config" -E "$h/sshd.log" 9>&-
    wait_for 50 alive "$n" sshd.pid || die "host $n: sshd did not start; see $h/sshd.log"
}

# The demo images of this machine's engine, when host N's differ (compared by their
# build label and id).
load_images() {
    local n=$1 want have refs=()
    for t in "${IMAGES[@]}"; do refs+=("canary-demo:$t"); done
    want=$(docker image inspect -f '{{.Id}}' "${refs[@]}") ||
        die "the demo images are missing here: run testhost.sh start first"
    have=$(hdocker "$n" image inspect -f '{{.Id}}' "${refs[@]}" 2>/dev/null || true)
    [ "$want" = "$have" ] && return
    log "host $n: loading the demo images"
    docker save "${refs[@]}" | hdocker "$n" load -q >/dev/null
}

hosts_running() { # numbers of the hosts that have a directory or a namespace
    {
        for d in "$FLEET_DIR"/host*; do [ -d "$d" ] && echo "${d##*/host}"; done
        ip netns list 2>/dev/null | sed -n 's/^canary-fleet-\([0-9]*\).*/\1/p'
    } | sort -un
}

cmd_start() {
    local count=${1:-3} n
    if ! [[ $count =~ ^[1-9][0-9]?$ ]] || [ "$count" -gt 50 ]; then die "start: N must be 1..50, not '$count'"; fi
    [ -f "$TESTHOST_DIR/authorized_keys" ] || die "no client key yet: run testhost.sh start first"
    for n in $(seq 1 "$count"); do
        start_network "$n"
        prepare_dirs "$n"
        start_dockerd "$n"
    done
    for n in $(seq 1 "$count"); do
        start_nginx "$n"
        start_sshd "$n"
        wait_dockerd "$n"
        load_images "$n"
    done
    log "ready: $count hosts, ssh -i $TESTHOST_DIR/id_ed25519 root@10.231.N.2 (N = 1..$count)"
}

stop_host() {
    local n=$1 ns h f pid pids
    ns=$(ns_name "$n") h=$(hdir "$n")
    if [ -e "/run/netns/$ns" ]; then
        for f in sshd.pid nginx.pid docker.pid; do
            if alive "$n" "$f"; then kill "$(cat "$h/run/$f")" 2>/dev/null || true; fi
        done
        # dockerd stops the host's containers before it exits.
        wait_for 400 not alive "$n" docker.pid || log "host $n: dockerd did not stop in 40 s"
        # Then nothing of the host may remain (SSH sessions, containerd, shims).
        for sig in TERM KILL; do
            pids=$(ip netns pids "$ns")
            [ -z "$pids" ] && break
            log "host $n: ending what is left ($sig): $(echo "$pids" | tr '\n' ' ')"
            for pid in $pids; do kill -s "$sig" "$pid" 2>/dev/null || true; done
            wait_for 30 ns_empty "$ns" || true
        done
        ip netns del "$ns"
        log "host $n: stopped"
    fi
    ip link del "canary-fleet$n" 2>/dev/null || true
    rm -rf "$h/run"
}

cmd_stop() {
    local n
    for n in $(hosts_running); do stop_host "$n"; done
}

cmd_status() {
    local n h state
    for n in $(hosts_running); do
        h=$(hdir "$n")
        state=""
        for d in sshd nginx docker; do
            if alive "$n" "$d.pid"; then state+=" ${d/docker/dockerd}: running"; else state+=" ${d/docker/dockerd}: stopped"; fi
        done
        echo "host $n: $(addr "$n"):22$state"
        [ -f "$h/ssh_host_ed25519_key.pub" ] &&
            echo "host $n: host key $(cut -d' ' -f1,2 "$h/ssh_host_ed25519_key.pub") ($h/ssh_host_ed25519_key.pub)"
        if alive "$n" docker.pid; then
            echo "host $n: images $(hdocker "$n" images canary-demo --format '{{.Tag}}' 2>/dev/null | sort | tr '\n' ' ')"
        fi
    done
}

# Clean hosts for the next test, as testhost.sh reset does for the single test host.
cmd_reset() {
    local n h ids
    for n in $(hosts_running); do
        h=$(hdir "$n")
        alive "$n" docker.pid || continue
        mapfile -t ids < <( (hdocker "$n" ps -aq --filter label=canary.app
            hdocker "$n" ps -aq --filter name="^odoo") 2>/dev/null | sort -u)
        if [ ${#ids[@]} -gt 0 ]; then hdocker "$n" rm -f "${ids[@]}" >/dev/null; fi
        rm -f "$h"/etc-nginx/sites-enabled/odoo* "$h"/etc-nginx/conf.d/odoo-canary.conf*
        find "$h/canary" -mindepth 1 -delete
        if alive "$n" nginx.pid; then
            in_host "$n"
            "${IN_HOST[@]}" sh -c 'nginx -t -q && nginx -s reload'
        fi
    done
}

mkdir -p "$FLEET_DIR"
chmod 700 "$FLEET_DIR"
# One change of the fleet at a time (test runs start the test host concurrently).
exec 9>"$FLEET_DIR/lock"
case "${1:-}" in
start) flock 9; cmd_start "${2:-3}" ;;
stop) flock 9; cmd_stop ;;
status) cmd_status ;;
reset) flock 9; cmd_reset ;;
*) echo "usage: $0 start [N]|stop|status|reset" >&2; exit 2 ;;
esac
