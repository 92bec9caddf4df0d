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
