"""A release across several droplets: pure decision logic, no I/O.

The first `canary_hosts` droplets run the canary and its analysis; the others follow in
waves of `wave_size` once every droplet before them runs the new revision, or, for a
canary droplet, once its canary passed and is being promoted (the gate). Each droplet is
its own release resource: the engine runs a wave's droplets in parallel, and a later
wave after the earlier ones, because its gate input is made of their outputs. A canary
droplet's release ends at its verdict and a promote step of its own promotes it
(promotion_resource.py), so the later waves do not wait for that promotion. A droplet
that rolled the revision back (its canary failed, or its new container did) fails the
release: every droplet that runs the revision by then is rolled back too, the others
are left as they are.

An entry is what a droplet's release reports: its `name`, whether it is a `canary`
droplet, whether it `converged` (its production runs the revision this update set out
to release, no canary left), whether it `passed` (a canary of it passed and is to be
promoted), whether it `desired_failed` (it rolled that revision back), with its phase,
message, failure reason and the real `traffic` its last canary saw ({requests, errors}).

Evidence counts per droplet (each canary droplet's own analysis) and in total: canary
droplets that each saw too few requests to judge their traffic may together have seen
enough, and their summed error rate must stay within the threshold too.
"""

from __future__ import annotations

from typing import Optional, Sequence


def waves(names: Sequence[str], canary_hosts: int, wave_size: int) -> list[list[str]]:
    """The droplets in release order: the canary wave first, then waves of `wave_size`
    (0: all the rest at once)."""
    first, rest = list(names[:canary_hosts]), list(names[canary_hosts:])
    size = wave_size or len(rest) or 1
    return [first] + [rest[i:i + size] for i in range(0, len(rest), size)]


def total_failure(entries: Sequence[dict], error_threshold: float, min_requests: int) -> Optional[str]:
    """Why the canary droplets' traffic fails in total (None: it does not, or there is
    one canary droplet: its own analysis judged the same requests)."""
    canaries = [e for e in entries if e.get("canary") and (e.get("converged") or e.get("passed"))]
    if len(canaries) < 2:
        return None
    requests = sum(int((e.get("traffic") or {}).get("requests") or 0) for e in canaries)
    errors = sum(int((e.get("traffic") or {}).get("errors") or 0) for e in canaries)
    if requests < min_requests or 100.0 * errors / requests <= error_threshold:
        return None
    return (f"the canary droplets {', '.join(e['name'] for e in canaries)} together answered {errors} of "
            f"{requests} real requests with 5xx ({100.0 * errors / requests:.1f}%, threshold {error_threshold:g}%)")


def waiting_for(gate: Sequence[dict], error_threshold: float = 100.0, min_requests: int = 0) -> Optional[str]:
    """Why a wave may not go yet (None: every droplet before it runs the revision or passed
    with it, and the canary droplets' evidence passes in total)."""
    behind = [e for e in gate if not (e.get("converged") or e.get("passed"))]
    if not behind:
        total = total_failure(gate, error_threshold, min_requests)
        return f"not promoted: {total}" if total else None
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
    """The droplets that run the revision (after a failure, they are rolled back too)."""
    return [e["name"] for e in entries if e.get("converged")]
