"""Before a fleet's release: every droplet reached, and its journal read.

Run by the program (previews and updates) before any resource is declared, so a
droplet that is down fails the run with nothing changed on any droplet, naming it. The
journal tells each droplet's release what the droplet runs by now: a droplet rolled
back with the fleet (provider.Fleet) after its release saved its outputs.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from ..errors import CanaryError
from ..status import RECORD_KEYS
from . import STATE_DIR
from ..target import Target

TIMEOUT = 20  # seconds for one droplet's journal


class Unreachable(CanaryError):
    pass


def journals(targets: Sequence[Target], app: str, stack: str) -> dict[str, dict]:
    """Each droplet's record of this stack's app (`{}` when it has none), by name. Raises
    Unreachable naming every droplet that could not be read."""
    from .ssh import Host  # here: paramiko is for a fleet's program only

    def read(t: Target) -> tuple[Optional[dict], str]:
        host = Host(t, retries=2)
        try:
            return _record(host.read_file(f"{STATE_DIR}/{app}/journal.json", timeout=TIMEOUT), stack), ""
        except Exception as err:  # any failure to read is a droplet the release cannot count on
            return None, str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        finally:
            host.close()

    with ThreadPoolExecutor(max_workers=min(16, len(targets)) or 1) as pool:
        results = list(pool.map(read, targets))
    down = [f"{t.label} port {t.port}: {why}" for t, (record, why) in zip(targets, results) if record is None]
    if down:
        raise Unreachable("cannot reach every droplet, so nothing was changed on any of them: "
                          + "; ".join(down))
    return {t.name: record for t, (record, _) in zip(targets, results)}


def _record(text: Optional[str], stack: str) -> dict:
    """The journal's record of this stack (what plan.py reads back), or {}."""
    try:
        entry = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(entry, dict) or entry.get("stack") != stack or not isinstance(entry.get("record"), dict):
        return {}
    return {k: v for k, v in entry["record"].items() if k in RECORD_KEYS}
