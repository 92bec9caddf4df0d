"""A release across several droplets: pure decision logic, no I/O.

The first `canary_hosts` droplets run the canary and its analysis; the others follow in
waves of `wave_size` once every droplet before them runs the new revision (the gate).
Each droplet is its own release resource: the engine runs a wave's droplets in
parallel, and a later wave after the earlier ones, because its gate input is made of
their outputs. A droplet that rolled the revision back (its canary failed, or its new
container did) fails the release: every droplet that runs the revision by then is
rolled back too, the others are left as they are.

An entry is what a droplet's release reports: its `name`, whether it `converged` (its
production runs the revision this update set out to release, no canary left) and
whether it `desired_failed` (it rolled that revision back), with its phase, message and
failure reason.
"""

from __future__ import annotations

from typing import Optional, Sequence


def waves(names: Sequence[str], canary_hosts: int, wave_size: int) -> list[list[str]]:
    """The droplets in release order: the canary wave first, then waves of `wave_size`
    (0: all the rest at once)."""
    first, rest = list(names[:canary_hosts]), list(names[canary_hosts:])
    size = wave_size or len(rest) or 1
    return [first] + [rest[i:i + size] for i in range(0, len(rest), size)]


def waiting_for(gate: Sequence[dict]) -> Optional[str]:
    """Why a wave may not go yet (None: every droplet before it runs the revision)."""
    behind = [e for e in gate if not e.get("converged")]
    if not behind:
        return None
    failed = [e for e in behind if e.get("desired_failed")]
    if failed:
        return "not promoted: it was rolled back on " + "; ".join(
            f"{e['name']} ({e.get('failure_reason') or 'rolled back'})" for e in failed)
    return "waiting for " + "; ".join(f"{e['name']} ({e.get('message') or e.get('phase') or 'not done'})"
                                      for e in behind)


def failed(entries: Sequence[dict]) -> list[dict]:
    """The droplets that rolled back the revision this update released."""
    return [e for e in entries if e.get("desired_failed")]


def to_revert(entries: Sequence[dict]) -> list[str]:
    """After a failure: the droplets that run the revision (they are rolled back too)."""
    return [e["name"] for e in entries if e.get("converged")] if failed(entries) else []
