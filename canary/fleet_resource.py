"""The `Fleet` resource: after every droplet's release of a fleet (canary:hosts).

When a droplet rolled back the revision this update released (its canary failed, or its
new container in a later wave), or the canary droplets' evidence fails in total, it
rolls back every droplet that runs the revision by then, each to its previous revision
(an instant rollback, under that droplet's lock, recorded in its journal with the
revision as rolled back), leaves the others as they are, and fails the update naming
them. A droplet it could not reach is named too; the next `pulumi up` tries again (the
droplet's release then reports the revision as blocked instead of failing, so this
resource runs).

`entries` is what it and the droplets of later waves read of each release (fleet.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import engine_log
from . import fleet as F
from . import redact
from .errors import DeployError
from .provider import Release, ReleaseProvider, _reported, _say, _spec_inputs
from .spec import ReleaseSpec, digest_of


FLEET_TYPE = "pulumi-python:dynamic/canary:Fleet"


class FleetProvider(ReleaseProvider):
    """After every droplet's release: when one rolled back the revision this update
    released, rolls back the droplets that run it by then (each to its previous
    revision, fleet.py), and fails the update naming them."""

    @_reported
    def create(self, props: dict) -> CreateResult:
        engine_log.attribute_to(props.get("log_urn"))
        self._judge(props)
        return CreateResult(id_="fleet", outs=props)

    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        return DiffResult(changes=olds.get("hosts") != news.get("hosts"))

    @_reported
    def update(self, id: str, olds: dict, news: dict) -> UpdateResult:
        engine_log.attribute_to(news.get("log_urn"))
        self._judge(news)
        return UpdateResult(outs=news)

    def read(self, id: str, props: dict) -> ReadResult:
        return ReadResult(id_=id, outs=props)  # the releases read the droplets

    def delete(self, id: str, props: dict) -> None:
        pass  # owns nothing on the droplets

    def _judge(self, props: dict) -> None:
        entries = props.get("hosts") or []
        spec = ReleaseSpec.from_inputs(_spec_inputs(props))
        failed = F.failed(entries)
        th = spec.analysis.thresholds
        total = F.total_failure(entries, th.error_threshold, th.min_requests)
        if not failed and not total:
            return
        why = "; ".join([f"{e['name']}: {e.get('failure_reason') or 'rolled back'}" for e in failed]
                        + ([total] if total else []))
        reason = f"rolled back with the fleet ({why})"
        names = F.to_revert(entries)
        by_name = {e["name"]: e for e in entries}
        keys = props.get("revision_keys") or {}
        if names:
            _say(f"rolling back {', '.join(names)}: {why}")
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            results = list(pool.map(lambda n: self._revert(spec.keyed(keys.get(n) or ""), by_name[n], reason,
                                                           props.get("log_urn")), names))
        reverted = [n for n, problem in zip(names, results) if problem is None]
        left = [f"{n} ({problem})" for n, problem in zip(names, results) if problem]
        where = f"on {', '.join(e['name'] for e in failed)}" if failed else "in total"
        raise DeployError(
            f"canary {spec.image} was rolled back {where}: {why}."
            + (f" Rolled back to their previous revision: {', '.join(reverted)}." if reverted else "")
            + (f" NOT rolled back: {'; '.join(left)} (the next `pulumi up` tries again)." if left else "")
            + " The other droplets are unchanged. Change image_tag, or set `pulumi config set retry true` "
            "to analyse it again.")

    def _revert(self, spec: ReleaseSpec, entry: dict, reason: str, log_urn: Optional[str]) -> Optional[str]:
        """Rolls one droplet back to its previous revision; None, or why it could not."""
        engine_log.attribute_to(log_urn)  # (a thread of its own: its lines show under the fleet)
        previous, image = entry.get("previous_revision"), entry.get("previous_image")
        if not previous or not image:
            return "it ran nothing before this revision"
        back = replace(spec, image=image, digest=digest_of(previous), promote=False)
        if back.revision != previous:
            return (f"its previous revision had other container settings (env, volumes or ports): "
                    f"set canary:image_tag back to {image.rsplit(':', 1)[-1]} with them")
        try:
            controller, host = self._controller(back, host_name=entry["name"])
            controller.log = lambda m: _say(f"{entry['name']}: {m}")  # (the fleet's lines: several droplets)
            try:
                controller.revert(spec.revision, spec.image, reason)
            finally:
                host.close()
        except Exception as err:  # the others are still rolled back; this one is named
            return redact.current().text(str(err))[:300]
        return None


class Fleet(Resource, module="canary", name="Fleet"):
    """Fails the update, after rolling back the droplets that run the revision, when a
    droplet of the fleet rolled it back."""

    def __init__(self, name: str, releases: dict[str, Release], canaries: int, spec: pulumi.Input[dict],
                 env: pulumi.Input[dict], canary_env: pulumi.Input[dict],
                 opts: Optional[pulumi.ResourceOptions] = None):
        log_urn = pulumi.create_urn(name, FLEET_TYPE, parent=opts.parent if opts else None)
        keys = pulumi.Output.secret(pulumi.Output.all(*[r.revision_key for r in releases.values()]).apply(
            lambda values: dict(zip(releases, values))))
        super().__init__(FleetProvider(), name,
                         {"spec": spec, "env": env, "canary_env": canary_env, "hosts": entries(releases, canaries),
                          "revision_keys": keys, "log_urn": log_urn}, opts)


# What Fleet and the droplets of later waves read of a droplet's release (fleet.py).
ENTRY_KEYS = ("converged", "passed", "desired_failed", "phase", "message", "failure_reason",
              "production_revision", "previous_revision", "previous_image", "analysis")


def entries(releases: dict[str, Release], canaries: int) -> list:
    """fleet.py's entries of these droplets' releases (outputs: a later wave waits on
    them); the first `canaries` are the canary droplets."""
    def entry(name: str, canary: bool, values: list) -> dict:
        e = {"name": name, "canary": canary, **dict(zip(ENTRY_KEYS, values))}
        traffic = (e.pop("analysis") or {}).get("canary") or {}
        return {**e, "traffic": {k: traffic.get(k, 0) for k in ("requests", "errors")}}
    return [pulumi.Output.all(*[getattr(r, k) for k in ENTRY_KEYS]).apply(
        lambda values, n=n, c=i < canaries: entry(n, c, values)) for i, (n, r) in enumerate(releases.items())]
