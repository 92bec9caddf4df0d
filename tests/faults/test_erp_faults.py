"""Faults of a release with a database (the real ERP on PostgreSQL, tests/e2e/erp.py):
the CLI killed during the backup and during the migration, the database down during the
analysis, a full disk for the backup. Users log in, read and write throughout; a fault is
survived when production kept its data (every acknowledged write found afterwards) and
`pulumi refresh` + `pulumi up` converge with nothing left over."""

from __future__ import annotations

import time

import pytest
from pulumi import automation as auto

from tests.e2e.erp import ErpDatabase, ErpUsers, all_party_names, backups, ensure_images, erp_deployment
from tests.e2e.harness import containers, reset_host, sh

from .conftest import record
from .test_faults import _kill_cli_when, when_logged

BACKUPS = "/var/lib/canary/odoo/backups"


@pytest.fixture
def erp(tmp_path):
    ensure_images()
    reset_host()
    with ErpDatabase() as db:
        d = erp_deployment(tmp_path, db)
        d.up()  # v1, its database created by its migration
        yield d, db
        sh(f"umount {BACKUPS} 2>/dev/null || true")
        reset_host()


def converge(d, tag: str) -> dict[str, bool]:
    """refresh + up of `tag`: production runs it, no canary, no one-off container, no split."""
    d.cli("cancel", "--yes", check=False)
    d.refresh()
    try:
        d.up()
    except auto.CommandError:
        pass
    out = d.outputs()
    return {f"after refresh + up: production runs canary-erp:{tag}": out["production_image"] == f"canary-erp:{tag}",
            "after refresh + up: only the production container": containers() == {"odoo": f"canary-erp:{tag}"},
            "no partial backup file left": not any(b.endswith(".partial") for b in backups())}


def kept_every_write(users: ErpUsers) -> dict[str, bool]:
    missing = set(users.written) - all_party_names()
    errors = f"; their errors: {users.outcomes}, {users.rpc_errors[:3]}" if users.failures else ""
    return {f"every acknowledged write found ({len(users.written)}){errors}": not missing and len(users.written) > 0}


@pytest.mark.parametrize("moment", ["backing up the database", "migrating: `erp-migrate`"])
def test_cli_killed_during_the_backup_or_the_migration(erp, moment):
    d, db = erp
    d.set(image_tag="v2")
    with ErpUsers(users=2) as users:
        killed = _kill_cli_when(d, moment)
        after_kill = containers()
        checks = converge(d, "v2")
    record(f"pulumi up killed during the {'backup' if 'backing' in moment else 'migration'} (ERP)",
           {f"the CLI got to {moment!r} before it was killed": killed,
            "production kept running v1 meanwhile": after_kill.get("odoo") == "canary-erp:v1",
            "v2's schema is there after the next up": db.table_exists("company_company"),
            **checks, **kept_every_write(users)},
           lost=users.failures)


def test_database_down_during_the_analysis_fails_closed(erp):
    d, db = erp
    d.set(image_tag="v2")
    when_logged(d, "check 1/", lambda: sh(f"docker stop {db.name}"))
    with pytest.raises(auto.CommandError) as failed:
        d.up()
    out = d.outputs()
    sh(f"docker start {db.name}")
    time.sleep(3)
    record("the database down during the analysis (ERP)",
           {"the release fails closed on the connections check": "database connections" in str(failed.value),
            "rolled back: production v1, no canary": out["phase"] == "rolled_back"
            and containers() == {"odoo": "canary-erp:v1"}},
           outage=True)


def test_a_full_disk_fails_the_backup_before_anything_changes(erp):
    d, db = erp
    sh(f"mkdir -p {BACKUPS} && mount -t tmpfs -o size=64k tmpfs {BACKUPS}")
    d.set(image_tag="v2")
    with ErpUsers(users=2) as users:
        with pytest.raises(auto.CommandError) as failed:
            d.up()
        after = containers()
    out = d.outputs()
    sh(f"umount {BACKUPS}")
    record("a full disk for the backup (ERP)",
           {"the release fails naming the backup": "the backup of the database failed" in str(failed.value),
            "nothing migrated": not db.table_exists("company_company"),
            "production v1 alone": after == {"odoo": "canary-erp:v1"} and out["production_image"] == "canary-erp:v1",
            "no partial backup file left": not any(b.endswith(".partial") for b in backups()),
            **kept_every_write(users)},
           lost=users.failures)
