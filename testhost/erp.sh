#!/usr/bin/env bash
# A real open-source ERP on the local test host: Tryton (trytond 8.2 from PyPI) and
# Debian's PostgreSQL 15, as local Docker images built without any registry of images.
#
#   erp.sh build   the images below (cached: seconds when nothing changed)
#   erp.sh push    push them to the test registry ($REGISTRY, started by testhost.sh)
#   erp.sh forget  drop the host's tags and digests of the registry's ERP images (a
#                  deploy then pulls again; testhost.sh reset does this for canary-demo)
#
# Images
#   canary-erp-db:15   PostgreSQL 15 (testhost/erp/bin/db-entrypoint: POSTGRES_USER,
#                      POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_MAX_CONNECTIONS, PGDATA)
#   canary-erp:v1      trytond with party (and country); listens on 8069
#   canary-erp:v2      v1 + company and currency; its migration activates company
#   canary-erp:rpcfail v2 + our addon whose bug makes creating a party fail
#   canary-erp:migfail v2 + our addon whose activation fails
# (testhost/erp/Dockerfile says what each adds; bin/erp-serve and bin/erp-migrate how
# they run). In the registry: $REGISTRY/canary-erp:TAG and $REGISTRY/canary-erp-db:15.
#
# How: debootstrap (Debian's minbase, from the Debian mirror this machine's apt uses, or
# $ERP_DEBIAN_MIRROR) makes a root filesystem; in a chroot of it apt-get installs
# python3 (for Tryton) or postgresql-15 (for the database) and pip installs Tryton
# into a venv; each is imported as canary-erp-rootfs:tryton / :postgres, and `docker
# build` (the classic builder, offline: the wheels of v2 are downloaded beforehand)
# makes the images from testhost/erp/Dockerfile*. The root filesystems are cached as
# tarballs in $TESTHOST_DIR/erp, each keyed by the hash of its recipe (the function
# that builds it and the packages); the images carry the label canary.erp.build, the
# hash of everything, and are rebuilt only when it changes.
set -euo pipefail

TESTHOST_DIR=${TESTHOST_DIR:-/var/lib/canary-testhost}
ERP_DIR=$TESTHOST_DIR/erp
REGISTRY=${TESTHOST_REGISTRY:-127.0.0.1:5000}
REGISTRY_USER=canary
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testhost/registry.sh
. "$here/registry.sh"
SUITE=bookworm
TRYTON_PACKAGES=("trytond==8.2.*" "trytond-party==8.2.*" "trytond-country==8.2.*" "psycopg[binary]" psycopg_pool)
# Installed by v2's `docker build` from wheels fetched with the root filesystem.
V2_PACKAGES=("trytond-company==8.2.*" "trytond-currency==8.2.*")
ERP_TAGS=(v1 v2 rpcfail migfail)
export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin needed

log() { printf '[erp] %s\n' "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }

# The Debian mirror: $ERP_DEBIAN_MIRROR, else the first Debian archive (not -security)
# among this machine's apt sources, else deb.debian.org.
debian_mirror() {
    if [ -n "${ERP_DEBIAN_MIRROR:-}" ]; then echo "$ERP_DEBIAN_MIRROR"; return; fi
    local found
    found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' |
        tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -1 || true)
    echo "${found:-http://deb.debian.org/debian}"
}

# Temporary root filesystems, removed once tarred and on exit.
ROOTS=()
cleanup() {
    local r
    for r in "${ROOTS[@]}"; do rm -rf --one-file-system "$r"; done
    ROOTS=()
}
trap cleanup EXIT

# `new_root [TARBALL]`: an empty directory (or one with TARBALL extracted) in ROOT.
new_root() {
    ROOT=$(mktemp -d "$ERP_DIR/root.XXXXXX")
    ROOTS+=("$ROOT")
    if [ -n "${1:-}" ]; then tar -C "$ROOT" -xf "$1"; fi
}

# `in_root ROOT COMMAND...`: in the chroot, with a clean environment (this machine's
# variables such as REQUESTS_CA_BUNDLE would name its own files) and its network:
# /etc/resolv.conf, this machine's CA bundle (it may hold a proxy's CA) for pip, and
# pip's index and proxy settings when this machine has any.
in_root() {
    local root=$1 env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
        DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 PIP_CERT=/tmp/host-ca.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
        PIP_PROGRESS_BAR=off) v index
    shift
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/tmp/host-ca.crt"
    for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        if [ -n "${!v:-}" ]; then env+=("$v=${!v}"); fi
    done
    if [ -z "${PIP_INDEX_URL:-}" ] && index=$(pip config get global.index-url 2>/dev/null) && [ -n "$index" ]; then
        env+=("PIP_INDEX_URL=$index")
    fi
    chroot "$root" /usr/bin/env -i "${env[@]}" "$@"
}

# `apt_in_root ROOT PACKAGE...`: apt-get install without recommends; no service starts.
apt_in_root() {
    local root=$1
    shift
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    # The mirror may be a snapshot whose Release file is past its Valid-Until.
    # The chroot has no user _apt of its own to download as.
    local opts=(-o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
    in_root "$root" apt-get -qq "${opts[@]}" update
    in_root "$root" apt-get -qq -y "${opts[@]}" --no-install-recommends install "$@" >"$ERP_DIR/apt.log" 2>&1 ||
        { tail -20 "$ERP_DIR/apt.log" >&2; exit 1; }
    rm -f "$root/usr/sbin/policy-rc.d"
}

# What an image does not need: package lists and caches, documentation, the network
# files of the build.
slim_root() {
    local root=$1
    rm -rf "${root:?}"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
        "$root"/var/log/apt/* "$root"/var/log/*.log "$root"/tmp/* "$root"/root/.cache
    : >"$root/etc/resolv.conf"
}

# `cached NAME RECIPE-FUNCTION ARGS...`: sets CACHED to $ERP_DIR/NAME-KEY.tar, made by
# the function (called with the output path, then ARGS) unless there; KEY hashes the
# function's text, its arguments and the helpers it uses.
cached() {
    local name=$1 fn=$2 key out
    shift 2
    key=$({ declare -f "$fn" in_root apt_in_root slim_root; printf '%s\n' "$SUITE" "$@"; } | hash_of)
    out="$ERP_DIR/$name-$key.tar"
    if [ ! -s "$out" ]; then
        local started=$SECONDS
        log "building $name (cache $out)"
        rm -rf "$out.part" "$out.part.wheels"
        "$fn" "$out.part" "$@" >&2
        cleanup
        # (a recipe may leave files beside its tarball: OUT.wheels)
        if [ -e "$out.part.wheels" ]; then rm -rf "$out.wheels" && mv "$out.part.wheels" "$out.wheels"; fi
        mv "$out.part" "$out"
        # Older versions of it are of no more use.
        find "$ERP_DIR" -maxdepth 1 -name "$name-*" ! -name "${out##*/}" ! -name "${out##*/}.wheels" -exec rm -rf {} +
        log "$name built in $((SECONDS - started)) s"
    fi
    CACHED=$out
}

# Debian's minbase with CA certificates: the start of both root filesystems.
debian_rootfs() { # OUT
    local mirror
    mirror=$(debian_mirror)
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    fi
    new_root
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT" "$mirror" >"$ERP_DIR/debootstrap.log" 2>&1 ||
        { tail -20 "$ERP_DIR/debootstrap.log" >&2; exit 1; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb
    tar -C "$ROOT" -cf "$1" .
}

# Tryton in /opt/erp/venv, run as the user `tryton` (home /var/lib/trytond). The wheels
# of V2_PACKAGES go to OUT.wheels/ for v2's build. /opt/erp/requirements.txt says
# exactly which versions pip chose.
tryton_rootfs() { # OUT DEBIAN-TAR PACKAGES... -- V2-PACKAGES...
    local out=$1 debian=$2 packages=() v2=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do packages+=("$1"); shift; done
    shift
    v2=("$@")
    new_root "$debian"
    apt_in_root "$ROOT" python3 python3-venv libpq5
    in_root "$ROOT" useradd --system --home-dir /var/lib/trytond --create-home --shell /usr/sbin/nologin tryton
    in_root "$ROOT" python3 -m venv /opt/erp/venv
    in_root "$ROOT" /opt/erp/venv/bin/pip install -q "${packages[@]}"
    in_root "$ROOT" /opt/erp/venv/bin/pip freeze >"$ROOT/opt/erp/requirements.txt"
    rm -rf "$out.wheels"
    in_root "$ROOT" /opt/erp/venv/bin/pip download -q --no-deps --only-binary=:all: -d /tmp/wheels "${v2[@]}"
    cp -r "$ROOT/tmp/wheels" "$out.wheels"
    slim_root "$ROOT"
    tar -C "$ROOT" -cf "$out" .
}

# Debian's postgresql-15 (no cluster: the image's entrypoint makes one in $PGDATA).
postgres_rootfs() { # OUT DEBIAN-TAR
    new_root "$2"
    mkdir -p "$ROOT/etc/postgresql-common"
    printf 'create_main_cluster = false\n' >"$ROOT/etc/postgresql-common/createcluster.conf"
    apt_in_root "$ROOT" postgresql-15
    slim_root "$ROOT"
    tar -C "$ROOT" -cf "$1" .
}

# `import_rootfs TARBALL IMAGE`: unless IMAGE was imported from it already.
import_rootfs() {
    local key=${1##*/}
    if [ "$(docker image inspect -f '{{index .Config.Labels "canary.erp.rootfs"}}' "$2" 2>/dev/null)" = "$key" ]; then
        return
    fi
    log "importing $2"
    docker import --change "LABEL canary.erp.rootfs=$key" "$1" "$2" >/dev/null
}

docker_build() { # ARGS... (its log shown only when it fails)
    docker build --label "canary.erp.build=$build" "$@" >"$ERP_DIR/docker-build.log" 2>&1 ||
        { tail -30 "$ERP_DIR/docker-build.log" >&2; exit 1; }
}

cmd_build() {
    mkdir -p "$ERP_DIR"
    chmod 700 "$ERP_DIR"
    # One build at a time.
    exec 8>"$ERP_DIR/.lock"
    flock 8
    local started=$SECONDS debian tryton postgres build have t missing=0
    cached debian debian_rootfs
    debian=$CACHED
    cached tryton tryton_rootfs "$debian" "${TRYTON_PACKAGES[@]}" -- "${V2_PACKAGES[@]}"
    tryton=$CACHED
    cached postgres postgres_rootfs "$debian"
    postgres=$CACHED
    # The images' key: the root filesystems', this script and testhost/erp.
    build=$({ echo "${tryton##*/}" "${postgres##*/}"; cat "$here/erp.sh"
        (cd "$here" && find erp -type f -print0 | sort -z | xargs -0 sha256sum); } | hash_of)
    for t in "${ERP_TAGS[@]/#/canary-erp:}" canary-erp-db:15; do
        have=$(docker image inspect -f '{{index .Config.Labels "canary.erp.build"}}' "$t" 2>/dev/null || true)
        [ "$have" = "$build" ] || missing=1
    done
    if [ $missing = 0 ]; then
        log "images up to date (build $build, $((SECONDS - started)) s)"
        return
    fi
    import_rootfs "$tryton" canary-erp-rootfs:tryton
    import_rootfs "$postgres" canary-erp-rootfs:postgres
    # The build context: testhost/erp and v2's wheels.
    local context="$ERP_DIR/context"
    rm -rf "$context"
    cp -r "$here/erp" "$context"
    cp -r "$tryton.wheels" "$context/wheels"
    log "building canary-erp-db:15 and canary-erp:{${ERP_TAGS[*]}}"
    docker_build -f "$context/Dockerfile.db" -t canary-erp-db:15 "$context"
    for t in "${ERP_TAGS[@]}"; do docker_build --target "$t" -t "canary-erp:$t" "$context"; done
    rm -rf "$context"
    # What this replaced (untagged now, and only ours: by their labels).
    docker image prune -f --filter label=canary.erp.build >/dev/null
    docker image prune -f --filter label=canary.erp.rootfs >/dev/null
    log "images built in $((SECONDS - started)) s (build $build)"
}

# Pushes each image whose local id differs from the one pushed last (or that the
# registry no longer has); then drops the host's tags of the registry's names, so that a
# deploy really pulls (as testhost.sh's registry_push).
cmd_push() {
    local password pushed="$ERP_DIR/pushed" image id remote
    [ -s "$TESTHOST_DIR/registry_password" ] || { log "no registry: start the test host first (testhost.sh start)"; exit 1; }
    password=$(cat "$TESTHOST_DIR/registry_password")
    touch "$pushed"
    for image in "${ERP_TAGS[@]/#/canary-erp:}" canary-erp-db:15; do
        id=$(docker image inspect -f '{{.Id}}' "$image")
        remote="$REGISTRY/$image"
        if grep -qxF "$image $id" "$pushed" &&
            curl -fsS -o /dev/null -I -u "$REGISTRY_USER:$password" \
                -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
                "http://$REGISTRY/v2/${image%%:*}/manifests/${image#*:}" 2>/dev/null; then
            continue
        fi
        log "pushing $remote"
        docker tag "$image" "$remote"
        registry_docker push -q "$remote" >/dev/null
        { grep -vF "$image " "$pushed" || true; echo "$image $id"; } >"$pushed.new"
        mv "$pushed.new" "$pushed"
    done
    forget_pulled
}

# Removes the host's references to the registry's ERP images (tags and digests; the
# layers stay with the local images), so the next deploy pulls again.
forget_pulled() {
    local refs
    mapfile -t refs < <(docker image ls --digests --format '{{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}' |
        tr ' ' '\n' | grep -E "^$REGISTRY/canary-erp(-db)?[:@]" | grep -v -e ':<none>$' -e '@<none>$' | sort -u)
    if [ ${#refs[@]} -gt 0 ]; then docker rmi "${refs[@]}" >/dev/null 2>&1 || true; fi
}

case "${1:-}" in
build) cmd_build ;;
push) cmd_push ;;
forget) forget_pulled ;;
*) echo "usage: $0 build|push|forget" >&2; exit 2 ;;
esac
