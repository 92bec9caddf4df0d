"""The real ERP (Tryton on PostgreSQL, tests/e2e/erp.py) released under its users.

- A promotion v1 -> v2 with its migration (a real schema change) while users log in,
  read and write through nginx: calls made, failed calls, JSON-RPC errors, writes
  acknowledged and writes lost (goal: 0 failed, 0 errors, 0 lost).
- What the release's database steps cost beyond the migration's own run: the migrate
  step (from its first line to the canary's start, as the progress lines arrive) against
  the run of its container (Docker's start and finish times, under the same load); and,
  side by side, the same migration (v2's `erp-migrate` on a v1 database) run by hand as a
  bare `docker run --rm` on a second, identical database with nothing else running.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.e2e.erp import (DB_PORT, ErpDatabase, ErpUsers, all_party_names, ensure_images, erp_deployment)
from tests.e2e.harness import reset_host, testhost_turn

MARKS = {"backup": "backing up the database", "backed up": "backup: /var/lib/canary/",
         "migrate": "migrating: `", "migrated": " finished in ", "canary": "starting canary container"}


def _raw_migration(db: ErpDatabase) -> float:
    """Seconds of v2's migration as an operator runs it by hand on a v1 database."""
    env = dict(os.environ, TRYTOND_DATABASE__URI=f"postgresql://erp:{db.password}@{db.address}:{DB_PORT}/")
    start = time.monotonic()
    subprocess.run(["docker", "run", "--rm", "-e", "TRYTOND_DATABASE__URI", "canary-erp:v2", "erp-migrate"],
                   env=env, check=True, capture_output=True)
    return time.monotonic() - start


def _v1_database(tmp: Path, db: ErpDatabase):
    d = erp_deployment(tmp, db, monitoring_duration="30s", check_interval="5s")
    d.up()
    return d


def main() -> None:
    ensure_images()
    with tempfile.TemporaryDirectory() as tmp, testhost_turn():
        os.environ.setdefault("CANARY_REPORT_DIR", str(Path(tmp) / "reports"))
        reset_host()
        with ErpDatabase("erpdb-bench") as db:
            d = _v1_database(Path(tmp) / "release", db)
            seen: dict[str, float] = {}
            ran: list[float] = []

            def mark(line: str) -> None:
                for name, needle in MARKS.items():
                    if needle in line and name not in seen:
                        seen[name] = time.monotonic()
                found = re.search(r"its container ran ([\d.]+)s", line)
                if found and not ran:
                    ran.append(float(found.group(1)))
            d._out = lambda line: (d.log.append(line), mark(line))  # type: ignore[method-assign]
            d.set(image_tag="v2")
            with ErpUsers(users=4) as users:
                start = time.monotonic()
                d.up()
                took = time.monotonic() - start
            lost = len(set(users.written) - all_party_names())
            out = d.outputs()
            reset_host()
        # The same migration by hand, on a second database in the same v1 state.
        with ErpDatabase("erpdb-bench-raw") as raw_db:
            _v1_database(Path(tmp) / "raw", raw_db)
            reset_host()
            raw = _raw_migration(raw_db)
        reset_host()
    print("ERP release under its users (Tryton 8.2 on PostgreSQL 15, 4 users logging in, writing and reading "
          "through nginx)")
    print(f"  promotion v1 -> v2 with its migration: {out['phase']}, `pulumi up` {took:.1f} s (30 s analysis)")
    print(f"  calls {sum(users.outcomes.values())}, failed {users.failures} "
          f"({', '.join(f'{n} {k}' for k, n in users.outcomes.items() if k != 'ok') or 'none'}), "
          f"writes acknowledged {len(users.written)}, writes lost {lost}")
    if all(k in seen for k in MARKS):
        backup = seen["backed up"] - seen["backup"]
        step = seen["canary"] - seen["migrate"]
        print(f"  backup (pg_dump -Fc on the droplet): {backup:.2f} s")
        own = ran[0] if ran else float("nan")
        print(f"  migrate step of the release (one-off container started, followed, removed): {step:.2f} s; "
              f"its container ran {own:.2f} s: {step - own:+.2f} s beyond the migration's own run")
        print(f"  the same migration by hand on an idle host (docker run --rm canary-erp:v2 erp-migrate): "
              f"{raw:.2f} s ({step / raw:.2f}x the release's step)")
    else:
        print(f"  (progress lines not all seen: {sorted(seen)})")


if __name__ == "__main__":
    main()
