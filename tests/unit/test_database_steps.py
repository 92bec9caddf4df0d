"""The database steps' remote side with a fake host: the migration's one-off container
followed as it runs (a progress line a while, the log's end in a failure), backups' env."""

import re
import subprocess

import pytest

from canary.errors import DeployError
from canary.remote import database
from canary.spec import ContainerSpec


class OneOffHost:
    """Runs the module's shell scripts with a `docker` function that plays a migration:
    `logs` lines so far and its state advance at each look."""

    def __init__(self, looks):
        self.looks, self.ran, self.written = list(looks), [], {}

    def run(self, argv, check=True, stdin=None, timeout=300):
        self.ran.append(argv)
        if argv[:2] == ["docker", "inspect"]:
            return 1, "", "Error: No such object: odoo-migrate"
        return 0, "", ""

    def write_file(self, path, content, mode=0o644):
        self.written[path] = (content, mode)

    def sh(self, script, *args, check=True):
        state, lines = self.looks[0] if len(self.looks) == 1 else self.looks.pop(0)
        fake = (f'docker() {{ if [ "$1" = inspect ]; then echo "{state}"; '
                f'else seq 1 {lines} | sed "s/^/line /"; fi; }}\n')
        return subprocess.run(["sh", "-c", fake + script, "sh", *args], capture_output=True, text=True).stdout


SPEC = ContainerSpec(name="odoo-migrate", image="erp@sha256:ab", host_port=8069, container_port=8069,
                     bind_address="127.0.0.1", restart_policy="unless-stopped", env={"PASSWORD": "s3cret"},
                     volumes=("odoo-data:/var/lib/odoo",), labels={"canary.app": "odoo"})


def test_a_migration_is_followed_until_it_ends_one_progress_line_a_while():
    clock = iter(range(0, 1000, 2))  # 2 s a look
    host = OneOffHost([("running 0", 5), ("running 0", 800), ("running 0", 900), ("running 0", 950),
                       ("exited 0", 1000)])
    lines = []
    database.run_once(host, SPEC, ("trytond-admin", "-u", "all"), 60, lines.append, clock=lambda: next(clock),
                      sleep=lambda s: None)
    progress = [x for x in lines if x.startswith("migration: ")]
    # 1000 lines of output: a line after a second, then one every 5 s, and the end.
    assert re.fullmatch(r"migration: \d+s, 5 lines of output; the last: line 5", progress[0])
    assert progress[-1].endswith("1000 lines of output; the last: line 1000") and len(progress) < 5, progress
    assert lines[-1].startswith("migration finished in")
    run = next(a for a in host.ran if a[:3] == ["docker", "run", "-d"])
    # No port, no restart policy, production's mounts, the env in a file (mode 600), never on the line.
    assert "-p" not in run and "--restart" not in run and run[-4:] == ["erp@sha256:ab", "trytond-admin", "-u", "all"]
    assert "odoo-data:/var/lib/odoo" in run and "s3cret" not in " ".join(run)
    assert host.written["/var/lib/canary/odoo/odoo-migrate.env"] == ("PASSWORD=s3cret\n", 0o600)
    assert ["docker", "rm", "-f", "odoo-migrate"] in host.ran  # removed afterwards


def test_a_failed_migration_names_the_end_of_its_log():
    host = OneOffHost([("running 0", 3), ("exited 1", 70)])
    with pytest.raises(DeployError) as err:
        database.run_once(host, SPEC, ("erp-migrate",), 60, lambda m: None, sleep=lambda s: None)
    assert "failed (exit 1)" in str(err.value)
    assert str(err.value).endswith("line 66 | line 67 | line 68 | line 69 | line 70")


def test_a_migration_past_its_timeout_is_stopped():
    clock = iter(range(0, 1000, 10))
    host = OneOffHost([("running 0", 1)])
    with pytest.raises(DeployError, match="did not finish within 25s: stopped"):
        database.run_once(host, SPEC, ("erp-migrate",), 25, lambda m: None, clock=lambda: next(clock),
                          sleep=lambda s: None)
    assert ["docker", "rm", "-f", "odoo-migrate"] in host.ran


def test_libpq_variables_from_the_url_and_backup_names():
    assert database.pg_env("postgresql://erp:p%40ss@10.0.0.5/erp") == {
        "PGHOST": "10.0.0.5", "PGPORT": "5432", "PGUSER": "erp", "PGPASSWORD": "p@ss", "PGDATABASE": "erp"}
    assert database.backup_name("odoo", "reg.example.com:5000/odoo:prod-1", at=0) == \
        "odoo-19700101T000000Z-prod-1.dump"
