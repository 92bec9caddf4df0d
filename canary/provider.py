"""The `Release` and `Verdict` resources: Pulumi dynamic providers around the controller.

Release owns the production container, the canary container and the split file.
  - diff()    decides, without touching the host, whether an update is needed: it asks
              plan.py with the recorded outputs standing in for the host.
  - create()/update()  run the controller (canary, analysis, promote/hold/roll back).
              A rollback returns normally, so the stack records it; Verdict then fails
              the run. A revision that was rolled back fails update() at once, with the
              recorded reason, before anything reaches the host.
  - read()    inspects the host (pulumi refresh), never echoes the stored state.
  - delete()  removes the split file and both containers.
SSH credentials come from the stack config through configure(), never from resource
inputs, so they are not stored in the state.

Verdict fails `pulumi up`, with the reason, when the release's phase is rolled_back.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import sys
import threading
import time
from typing import Any, Optional

import pulumi
from pulumi.dynamic import (ConfigureRequest, CreateResult, DiffResult, ReadResult, Resource,
                            ResourceProvider, UpdateResult)

from . import plan as P
from . import redact
from .config import ConfigError, load_force_token, load_target
from .controller import OUTPUT_KEYS, Controller, DeployError, blocked_message, recorded_from
from .notify import Notifier
from .remote.ssh import Host
from .spec import ReleaseSpec, new_revision_key

_SECRET_FREE = ("env", "canary_env")


def _say(message: str) -> None:
    # The engine shows each line a dynamic provider prints while the step runs.
    print(f"[{time.strftime('%H:%M:%S')}] {redact.current().text(message)}", flush=True)


def _exit_with_engine() -> None:
    """A provider whose CLI died must not go on acting on the host.

    The engine starts `python -m pulumi.dynamic ENGINE_ADDRESS` through a launcher
    script that stays its parent, so the engine's death does not orphan this process.
    Like Pulumi's Go plugins (rpcutil.Healthcheck), it watches the engine's address:
    refused connections mean the CLI is gone. Exiting closes the SSH connection, which
    releases the host lock."""
    address = next((a for a in sys.argv[1:] if re.fullmatch(r"[\w.-]+:\d+", a)), None)
    parent = os.getppid()

    def engine_gone() -> bool:
        if address is None:
            return False
        host, port = address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
            return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False  # a slow engine is not a dead one

    def watch():
        while True:
            time.sleep(1)
            if os.getppid() != parent or engine_gone():
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-engine").start()


def _spec_inputs(props: dict) -> dict:
    """The full spec from a release's inputs (container env and the metric command are
    kept in inputs of their own)."""
    spec = {**props["spec"], "env": props.get("env") or {}, "canary_env": props.get("canary_env") or {}}
    if "metric_command" in props:
        spec["analysis"] = {**spec["analysis"], "metric_command": props.get("metric_command") or None}
    return spec


def _public_spec(spec_inputs: dict) -> dict:
    """The spec as recorded in outputs, normalised: without container env and the metric
    command (they may hold secrets; the revision digests the env)."""
    normal = ReleaseSpec.from_inputs(spec_inputs).to_inputs()
    normal["analysis"]["metric_command"] = None
    return {k: ({} if k in _SECRET_FREE else v) for k, v in normal.items()}


# -- keyed revisions and masked secrets (see spec.py and redact.py) ----------------------------
_REVISIONS = ("production_revision", "canary_revision", "previous_revision", "failed_revision")


def _with_key(spec_inputs: dict, olds: dict) -> tuple[dict, dict]:
    """The spec with the stack's revision key (a new one for a stack without), and the
    recorded outputs with revisions of this spec recorded before the key in keyed form."""
    spec_inputs = {**spec_inputs, "revision_key": olds.get("revision_key") or new_revision_key()}
    spec = ReleaseSpec.from_inputs(spec_inputs)
    return spec_inputs, {**olds, **{k: spec.canonical(olds[k]) for k in _REVISIONS if olds.get(k)}}


def _masked(method):
    """Errors leave the provider with every configured secret masked."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as err:
            text = redact.current().text(str(err))
            if text == str(err):
                raise
            raise DeployError(text) from None
    return wrapper
# ----------------------------------------------------------------------------------------------


def _outputs(state: dict) -> dict:
    """Every output present and never null: an absent output would be unknown in previews,
    which would make an unchanged stack look changed."""
    out = {}
    for k in OUTPUT_KEYS:
        v = state.get(k)
        if v is None:
            v = {} if k == "analysis" else 0 if k in ("canary_weight", "passed_weight") else (
                False if k == "production_running" else "")
        out[k] = v
    return out


def _observed_from_record(olds: dict) -> P.Observed:
    """What diff() assumes runs on the host: what was recorded (refresh updates it)."""
    weight = int(olds.get("canary_weight") or 0)
    return P.Observed(
        production_revision=olds.get("production_revision") or None,
        production_running=bool(olds.get("production_running", True)),
        canary_revision=olds.get("canary_revision") or None, canary_running=True,
        split_weight=weight if weight else None)


def _planned(spec: ReleaseSpec, olds: dict) -> P.Action:
    """plan.py's answer with the recorded outputs standing in for the host."""
    d = P.Desired(revision=spec.revision, steps=spec.steps, auto_promote=spec.auto_promote,
                  retry=spec.retry, promote=spec.promote)
    return P.plan(d, recorded_from(olds), _observed_from_record(olds))


class ReleaseProvider(ResourceProvider):
    def __init__(self) -> None:
        super().__init__()
        self.target = None
        self.target_error: Optional[str] = None
        self.webhook: Optional[str] = None
        self.force_token = ""

    def configure(self, req: ConfigureRequest) -> None:
        # Errors reach the user as the exception's text: a message, not a stack trace.
        sys.tracebacklimit = 0
        try:
            self.target = load_target(req.config.get)
        except ConfigError as err:
            self.target_error = str(err)
        self.webhook = req.config.get("notify_webhook") or None
        # Forced routing's token: from the stack config, like the webhook, never an input.
        try:
            self.force_token = load_force_token(req.config.get)
        except ConfigError as err:
            self.target, self.target_error = None, str(err)
        _exit_with_engine()

    def _host(self) -> Host:
        if self.target is None:
            raise DeployError(self.target_error or "no SSH target configured")
        return Host(self.target, log=_say)

    def _controller(self, spec_inputs: dict, revision: Optional[str] = None) -> tuple[Controller, Host]:
        spec = ReleaseSpec.from_inputs(spec_inputs)
        redactor = redact.Redactor([*spec.secret_values(), self.webhook, self.force_token,
                                    self.target.private_key if self.target else None],
                                   public=spec.public_values())
        redact.install(redactor)
        host = self._host()
        notifier = redact.RedactingNotifier(Notifier(self.webhook, spec.stack, spec.app, _say), redactor)
        return Controller(host, spec, _say, revision, notifier, self.force_token), host

    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        unkeyed = bool(olds.get("spec")) and not olds.get("revision_key")
        spec_inputs, olds = _with_key(_spec_inputs(news), olds)
        spec = ReleaseSpec.from_inputs(spec_inputs)
        old_spec = olds.get("spec") or {}
        if old_spec.get("app") not in (None, spec.app):
            raise DeployError("container_name cannot change on a deployed stack: it names the "
                              "containers this stack owns (destroy the stack first)")
        action = _planned(spec, olds)
        # A blocked revision is a change: update() then fails fast with the recorded reason
        # (failing here would also fail `pulumi refresh --run-program`, which diffs).
        changed = action.kind != P.NOOP or unkeyed or (
            not old_spec or _public_spec(_spec_inputs(news)) != _public_spec(old_spec))
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def _run(self, spec_inputs: dict, recorded: dict) -> dict:
        controller, host = self._controller(spec_inputs)
        try:
            state = controller.reconcile(recorded)
        finally:
            host.close()
        return {**redact.current().value(_outputs(state)), "spec": _public_spec(spec_inputs),
                "image": ReleaseSpec.from_inputs(spec_inputs).image,
                "revision_key": spec_inputs["revision_key"]}

    @_masked
    def create(self, props: dict) -> CreateResult:
        spec_inputs, _ = _with_key(_spec_inputs(props), {})
        outs = self._run(spec_inputs, {})
        return CreateResult(id_=props["spec"]["app"], outs=outs)

    @_masked
    def update(self, id: str, olds: dict, news: dict) -> UpdateResult:
        spec_inputs, olds = _with_key(_spec_inputs(news), olds)
        spec = ReleaseSpec.from_inputs(spec_inputs)
        action = _planned(spec, olds)
        if action.kind == P.BLOCKED and not action.cleanup:  # fail before touching the host
            raise DeployError(blocked_message(spec.image, action.reason))
        return UpdateResult(outs=self._run(spec_inputs, olds))

    @_masked
    def read(self, id: str, props: dict) -> ReadResult:
        if not props.get("spec"):
            return ReadResult(id_=id, outs=props)
        controller, host = self._controller(props["spec"], revision=props.get("production_revision"))
        try:
            outs = controller.refreshed(props)
        finally:
            host.close()
        return ReadResult(id_=id, outs={**outs, **redact.current().value(_outputs(outs))})

    @_masked
    def delete(self, id: str, props: dict) -> None:
        controller, host = self._controller(props["spec"])
        try:
            controller.destroy()
        finally:
            host.close()


class Release(Resource, module="canary", name="Release"):
    """The app on the host: production, canary, traffic split and the analysis record."""

    phase: pulumi.Output[str]
    production_image: pulumi.Output[Optional[str]]
    production_revision: pulumi.Output[Optional[str]]
    previous_image: pulumi.Output[Optional[str]]
    canary_image: pulumi.Output[Optional[str]]
    canary_weight: pulumi.Output[int]
    failed_image: pulumi.Output[Optional[str]]
    failure_reason: pulumi.Output[Optional[str]]
    message: pulumi.Output[Optional[str]]
    analysis: pulumi.Output[Any]

    def __init__(self, name: str, spec: pulumi.Input[dict], env: pulumi.Input[dict],
                 canary_env: pulumi.Input[dict], split_preview: pulumi.Input[str],
                 environment: str, opts: Optional[pulumi.ResourceOptions] = None,
                 metric_command: pulumi.Input[Optional[str]] = None):
        outputs = {k: None for k in OUTPUT_KEYS}
        # The stack's revision key stays a secret in the state.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["revision_key"]))
        super().__init__(ReleaseProvider(), name,
                         {**outputs, "spec": spec, "env": env, "canary_env": canary_env,
                          "metric_command": metric_command, "split_preview": split_preview,
                          "environment": environment, "image": None, "revision_key": None},
                         opts)


class VerdictProvider(ResourceProvider):
    def _judge(self, props: dict) -> None:
        if props.get("phase") == P.ROLLED_BACK:
            raise DeployError(f"canary {props.get('failed_image')} was rolled back: "
                              f"{props.get('failure_reason')}. Production is unchanged.")

    def create(self, props: dict) -> CreateResult:
        self._judge(props)
        return CreateResult(id_="verdict", outs=props)

    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        keys = ("phase", "failed_image", "failure_reason")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def update(self, id: str, olds: dict, news: dict) -> UpdateResult:
        self._judge(news)
        return UpdateResult(outs=news)


class Verdict(Resource, module="canary", name="Verdict"):
    """Fails the update, with the reason, when the release was rolled back."""

    def __init__(self, name: str, release: Release, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(VerdictProvider(), name,
                         {"phase": release.phase, "failed_image": release.failed_image,
                          "failure_reason": release.failure_reason},
                         opts)

