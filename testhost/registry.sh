# Sourced by testhost.sh and erp.sh: the Docker CLI with a login to the test registry
# of its own (REGISTRY, REGISTRY_USER, the password in $TESTHOST_DIR/registry_password):
# root's ~/.docker/config.json stays untouched (deploys bring their own credentials).
# shellcheck shell=bash
registry_docker() {
    local cfg rc=0
    cfg=$(mktemp -d)
    docker --config "$cfg" login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" \
        <"$TESTHOST_DIR/registry_password" >/dev/null 2>&1 &&
        docker --config "$cfg" "$@" || rc=$?
    rm -rf "$cfg"
    return $rc
}
