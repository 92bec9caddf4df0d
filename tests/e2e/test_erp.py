"""The guide's app for real: an ERP (Tryton) on PostgreSQL, released with its database
migration under users who log in, read and write, through the real CLI on the test host.

backup -> migrate -> canary -> analysis -> promote: no failed request, no JSON-RPC error,
every write found afterwards; a canary whose RPCs fail with HTTP 200 is rolled back on
its ERROR lines per request against stable's; a migration that fails changes nothing but
the backup."""

import time

import pytest

from .erp import ErpDatabase, ErpUsers, all_party_names, backups, ensure_images, erp_deployment
from .harness import reset_host, sh


@pytest.fixture
def erp(tmp_path):
    ensure_images()
    reset_host()
    with ErpDatabase() as db:
        yield erp_deployment(tmp_path, db), db
        reset_host()


def test_erp_release_migrates_under_users_and_loses_no_write(erp):
    d, db = erp
    d.up()  # first deploy: the (empty) database is backed up, then initialised by the migration
    out = d.outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "canary-erp:v1"
    assert out["last_backup"].endswith("-v1.dump") and len(backups()) == 1
    assert not db.table_exists("company_company")

    d.set(image_tag="v2", auto_promote="false")
    preview = d.preview()
    assert "migrate with `erp-migrate`" in preview.stdout  # the preview says it will migrate
    with ErpUsers(users=4) as users:
        d.up()  # backup, migration, canary, analysis: held for review
        assert d.outputs()["phase"] == "holding"
        # Only production runs the scheduled jobs (the canary's env turns them off).
        assert "trytond-cron" in sh("docker top odoo") and "trytond-cron" not in sh("docker top odoo-canary")
        d.set(auto_promote="true")
        d.up()  # promoted without a second analysis or migration
    out = d.outputs()
    assert out["phase"] == "promoted" and out["production_image"] == "canary-erp:v2", out["message"]
    assert db.table_exists("company_company")  # v2's migration: a real schema change
    ok = users.outcomes["ok"]
    assert ok > 200 and users.failures == 0, (users.outcomes, users.rpc_errors[:5])
    missing = set(users.written) - all_party_names()
    assert not missing, f"{len(missing)} of {len(users.written)} writes lost"
    assert out["last_backup"].endswith("-v2.dump") and len(backups()) == 2
    d.preview(expect_no_changes=True)
    print(f"ERP promotion with migration: {ok} calls, {len(users.written)} writes, 0 lost, 0 errors")


def test_a_canary_whose_rpcs_fail_with_http_200_is_rolled_back(erp):
    d, db = erp
    d.up()
    d.set(image_tag="rpcfail")
    with ErpUsers(users=4) as users:
        with pytest.raises(Exception) as err:
            d.up()
    out = d.outputs()
    assert out["phase"] == "rolled_back" and out["production_image"] == "canary-erp:v1"
    # Caught on its ERROR lines (HTTP 200 answers): per request against stable's, or, before
    # the canary had min_requests, those beyond stable's rate per minute.
    assert "ERROR log lines" in out["failure_reason"] and "canary" in out["failure_reason"], out
    assert "ERROR log lines" in str(err.value)
    # Users saw the canary's errors only until the rollback (a share of its 10%).
    assert users.outcomes["rpc_error"] < 0.1 * users.outcomes["ok"], users.outcomes
    assert not set(users.written) - all_party_names()
    assert sh("docker ps --format '{{.Names}}' | grep -c '^odoo' || true").strip() == "1"


def test_a_failed_migration_changes_nothing_but_the_backup(erp):
    d, db = erp
    d.up()
    tables = db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    d.set(image_tag="migfail")
    with pytest.raises(Exception) as err:
        d.up()
    assert "the migration `erp-migrate` failed" in str(err.value)
    out = d.outputs()
    assert out["phase"] == "rolled_back" and out["production_image"] == "canary-erp:v1"
    assert db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables
    assert len(backups()) == 2 and out["last_backup"].endswith("-migfail.dump")
    assert sh("docker ps -a --format '{{.Names}}' | grep -c '^odoo' || true").strip() == "1"


def test_restoring_a_backup_brings_the_rows_back(erp):
    d, db = erp
    d.up()
    with ErpUsers(users=2) as before:
        time.sleep(3)
    rows_v1 = all_party_names()
    assert set(before.written) <= rows_v1 and len(before.written) > 10
    d.set(image_tag="v2")
    d.up()
    backup = d.outputs()["last_backup"].rsplit("/", 1)[1]  # made before v2's migration
    with ErpUsers(users=2) as after:
        time.sleep(3)
    assert set(after.written) <= all_party_names()
    # Back to v1 with its data: the backup first, then the instant rollback (v1 cannot
    # load v2's schema: expand/contract did not hold for this release).
    d.set(image_tag="v1", restore_backup=backup)
    assert f"restore the database from the backup {backup} first" in d.preview().stdout
    d.up()
    out = d.outputs()
    assert out["restored_backup"] == backup and out["production_image"] == "canary-erp:v1"
    assert out["last_backup"].endswith("-before-restore.dump")  # what the restore replaced, kept
    assert all_party_names() == rows_v1
    d.preview(expect_no_changes=True)  # done once: the same name does not restore again
