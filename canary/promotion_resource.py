"""The `Promotion` resource: a fleet canary droplet's promotion, a step of its own.

A fleet's later waves go once the canary droplets' canary passed, not once their
promotion is done too: a canary droplet's release (input `promoted_by`) ends at the
verdict, holding the canary that passed, and its outputs open the later waves' gate
(fleet.py). This resource comes after that release, beside the later waves, and promotes
the held canary (plan.py: no second analysis). So a later wave replaces production while
the canary droplet does, not after it: analysis and promotion as two steps, as Argo
Rollouts has them.

  - create()/update()  when the release passed a canary this step has not promoted (its
              output `passed`): the controller under the droplet's lock, which promotes
              the canary it finds passed. Otherwise nothing reaches the droplet, and what
              the release reported is this step's outputs (a rollback, a hold, an instant
              rollback or a deploy the release did by itself).
  - diff()    the spec changed, a promotion is due, or (nothing passed) the release
              reports another status than this step's.
  - read()    inspects the droplet (pulumi refresh), as the release does.
  - delete()  nothing: the release owns the droplet's containers and split file.

Its outputs are the droplet's as the stack exports them and Fleet reads them; its
revision key is its release's (input), so both name the same revisions.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, UpdateResult

from . import engine_log
from .provider import (ReleaseProvider, _public_spec, _reported, _say, _spec_inputs, _with_key)
from .spec import ReleaseSpec
from .status import OUTPUT_KEYS, ReleaseStatus

PROMOTION_TYPE = "pulumi-python:dynamic/canary:Promotion"
# What it reads of its release (input `release`): the droplet's status and whether the
# canary there passed.
RELEASE_KEYS = (*OUTPUT_KEYS, "passed")


def _due(release: Any, olds: dict) -> bool:
    """A promotion the release asked for and this step has not carried out."""
    if not isinstance(release, dict) or not release.get("passed"):
        return False
    return release.get("canary_revision") not in ("", None, olds.get("production_revision"))


class PromotionProvider(ReleaseProvider):
    @_reported
    def create(self, props: dict) -> CreateResult:
        return CreateResult(id_=f"promote-{props['host_name']}", outs=self._promote(props, {}))

    @_reported
    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        release = news.get("release")
        if not isinstance(release, dict):  # (a preview: the release changes first)
            return DiffResult(changes=True, replaces=[], delete_before_replace=False)
        if release.get("passed"):
            changed = _due(release, olds)
        else:  # what the release reports is this step's outputs
            changed = _status(release) != _status(olds)
        old_spec = olds.get("spec")
        changed = changed or not old_spec or _public_spec(_spec_inputs(news)) != _public_spec(old_spec)
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    @_reported
    def update(self, id: str, olds: dict, news: dict) -> UpdateResult:
        return UpdateResult(outs=self._promote(news, olds))

    def delete(self, id: str, props: dict) -> None:
        pass  # the release removes the droplet's containers and split

    def _promote(self, props: dict, olds: dict) -> dict:
        engine_log.attribute_to(props.get("log_urn"))
        name, release = props["host_name"], dict(props.get("release") or {})
        spec_inputs, _ = _with_key(_spec_inputs(props), olds, given=props.get("revision_key"))
        spec = ReleaseSpec.from_inputs(spec_inputs)
        if _due(release, olds):
            controller, host = self._controller(spec_inputs, host_name=name)
            try:
                status = controller.reconcile(release)
            finally:
                host.close()
        elif release.get("passed"):  # promoted by this step before
            status = ReleaseStatus.from_outputs(olds)
        else:
            status = ReleaseStatus.from_outputs(release)
            _say(f"{name}: nothing to promote ({status.message or status.phase})")
        # (the stack's `planned` words are its release's)
        return {**self._outputs(spec, spec_inputs, status, "", name), "release": props.get("release")}


def _status(outputs: dict) -> dict:
    return ReleaseStatus.from_outputs(outputs).to_outputs()


class Promotion(Resource, module="canary", name="Promotion"):
    """Promotes a fleet canary droplet's canary once its release passed it."""

    # Its outputs are the Release's: the status field for field (status.ReleaseStatus),
    # converged, passed, desired_failed, revision_key.

    def __init__(self, name: str, release: Any, spec: pulumi.Input[dict], env: pulumi.Input[dict],
                 canary_env: pulumi.Input[dict], host_name: str,
                 metric_command: pulumi.Input[Optional[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        log_urn = pulumi.create_urn(name, PROMOTION_TYPE, parent=opts.parent if opts else None)
        reported = pulumi.Output.all(*[getattr(release, k) for k in RELEASE_KEYS]).apply(
            lambda values: dict(zip(RELEASE_KEYS, values)))
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=[release], additional_secret_outputs=["revision_key"]))
        super().__init__(PromotionProvider(), name,
                         {**{k: None for k in OUTPUT_KEYS}, "release": reported, "spec": spec, "env": env,
                          "canary_env": canary_env, "metric_command": metric_command, "host_name": host_name,
                          "revision_key": release.revision_key, "log_urn": log_urn, "image": None,
                          "planned": None, "converged": None, "desired_failed": None, "passed": None},
                         opts)
