"""The `Stage` resource: a fleet droplet of a later wave, while the canary droplets analyse.

Its release waits for the gate (fleet.py) and then replaces production through a canary
container of the revision: started, health-checked, given all traffic, production
replaced behind it. Stage starts that container beforehand, beside production and
without traffic (no split file names it), so the wave's own turn after the analysis only
moves traffic and replaces production, and the droplets run mixed versions for less time.
Like Argo Rollouts' blue-green preview: ready before the switch, nothing sent to it.

  - create()/update()  controller.stage() under the droplet's lock, when plan.stage says
              so. It never fails the update: what it could not do, the release does.
  - diff()    a change of the spec or the env only (the release's own diff decides what
              the release does).
  - read()/delete()  nothing: the release owns the droplet's containers (its delete
              removes a staged one too), and a release whose gate stays closed removes
              what Stage started (provider.Release, input `staged`).
"""

from __future__ import annotations

from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import engine_log, redact
from .provider import ReleaseProvider, _reported, _say, _spec_inputs

STAGE_TYPE = "pulumi-python:dynamic/canary:Stage"
_INPUTS = ("spec", "env", "canary_env", "host_name")


class StageProvider(ReleaseProvider):
    @_reported
    def create(self, props: dict) -> CreateResult:
        return CreateResult(id_=f"stage-{props['host_name']}", outs=self._stage(props))

    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in _INPUTS))

    @_reported
    def update(self, id: str, olds: dict, news: dict) -> UpdateResult:
        return UpdateResult(outs=self._stage(news))

    def read(self, id: str, props: dict) -> ReadResult:
        return ReadResult(id_=id, outs=props)

    def delete(self, id: str, props: dict) -> None:
        pass

    def _stage(self, props: dict) -> dict:
        engine_log.attribute_to(props.get("log_urn"))
        name = props["host_name"]
        try:
            controller, host = self._controller(_spec_inputs(props), host_name=name)
            try:
                staged, message = controller.stage()
            finally:
                host.close()
        except Exception as err:  # (the release meets it again, and says so)
            staged, message = False, f"nothing staged: {redact.current().text(str(err))}"
        _say(f"{name}: {message}")
        return {**props, "staged": staged, "message": message}


class Stage(Resource, module="canary", name="Stage"):
    """Starts a later wave droplet's new container, without traffic, ahead of its gate."""

    staged: pulumi.Output[bool]  # a container of the revision waits beside production
    message: pulumi.Output[str]

    def __init__(self, name: str, host_name: str, spec: pulumi.Input[dict], env: pulumi.Input[dict],
                 canary_env: pulumi.Input[dict], opts: Optional[pulumi.ResourceOptions] = None):
        log_urn = pulumi.create_urn(name, STAGE_TYPE, parent=opts.parent if opts else None)
        super().__init__(StageProvider(), name,
                         {"spec": spec, "env": env, "canary_env": canary_env, "host_name": host_name,
                          "log_urn": log_urn, "staged": None, "message": None}, opts)
