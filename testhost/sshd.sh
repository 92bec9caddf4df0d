# shellcheck shell=bash
# The test hosts' sshd configuration (sourced by testhost.sh and fleet.sh): root with
# the deployer's key only, every session logged (tests count them), SFTP.
#   sshd_config ADDRESS PORT HOST_KEY PID_FILE AUTHORIZED_KEYS
sshd_config() {
    cat <<EOF2
ListenAddress $1
Port $2
HostKey $3
PidFile $4
AuthorizedKeysFile $5
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF2
}

# A droplet's root runs nothing at the start of a command's session: Debian's and
# Ubuntu's ~/.bashrc return at once when the shell is not interactive. This machine's
# root may run more (a version manager's init costs 0.1 s and more), and sshd starts
# every session, SFTP aside, through root's shell, which reads ~/.bashrc. So a test
# host's sshd runs with a droplet's ~/.bashrc bound over root's, in its own mount
# namespace (the caller's unshare): nothing else on this machine sees it.
#   "${DROPLET_RC[@]}" COMMAND...   (empty when root has no ~/.bashrc)
droplet_rc() {
    local home rc=$TESTHOST_DIR/droplet-bashrc
    home=$(getent passwd root | cut -d: -f6)
    # shellcheck disable=SC2034 # read by the scripts that source this one
    DROPLET_RC=()
    [ -e "$home/.bashrc" ] || return 0
    # shellcheck disable=SC2016 # for the shells that read it
    printf '%s\n' '[ -z "$PS1" ] && return' >"$rc"
    # shellcheck disable=SC2016,SC2034 # expanded by the inner shell; read by the callers
    DROPLET_RC=(sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$rc" "$home/.bashrc")
}
