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
inputs, so they are not stored with the release. (A fleet's droplets each have a provider
process of their own, given those config keys as its inputs: program.py.)

Verdict fails `pulumi up`, with the reason, when the release's phase is rolled_back.

A fleet (canary:hosts) has a release per droplet (input `host_name`). A droplet of a
later wave has a `gate` input, the outputs of the droplets before it: until they all run
the revision (or, a canary droplet, passed it) it changes nothing; then it goes to the
revision without analysis (see fleet.py). A canary droplet with later waves has a
`promoted_by` input: its update ends at the verdict, holding a canary that passed, and
that promote step promotes it (promotion_resource.py). Its `host_record` input is the
droplet's journal as the program read it: the diff then sees a droplet that was rolled
back with the fleet (fleet_resource.py). A blocked droplet of a fleet does not fail: the
Fleet resource does, after it finished any rollback an earlier run left undone.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional

import pulumi
from pulumi.dynamic import (ConfigureRequest, CreateResult, DiffResult, ReadResult, Resource,
                            ResourceProvider, UpdateResult)
from pulumi.runtime.rpc import UNKNOWN

from . import engine_log
from . import fleet as F
from . import plan as P
from . import quick_exit, redact
from .config import TARGET_KEYS, ConfigError, load_force_token, load_targets
from .config_fields import decoded
from .config_values import parse_bool, read_text
from .engine_watch import exit_with_engine
from .errors import CanaryError, DeployError, rolled_back_before
from .phases import Phase
from .planned import action_for, describe, desired
from .spec import ReleaseSpec, new_revision_key
from .status import OUTPUT_KEYS, RECORD_KEYS, REVISION_KEYS, ReleaseStatus
from .target import Target

if TYPE_CHECKING:
    from .controller import Controller
    from .remote.ssh import Host

_SECRET_FREE = ("env", "canary_env")


_say = engine_log.say  # progress lines, shown under the release (engine_log.py)

# The release's type token, as the SDK names a dynamic resource (the program builds the
# release's URN from it, so progress lines can name the resource).
RELEASE_TYPE = "pulumi-python:dynamic/canary:Release"
# The stack config configure() reads (a fleet's explicit providers are given these).
PROVIDER_CONFIG_KEYS = (*TARGET_KEYS, "notify_webhook", "notify_allow_local", "force_token", "database_url",
                        "registry_password", "registry_password_file")


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
def _with_key(spec_inputs: dict, olds: dict, given: Any = None) -> tuple[dict, dict]:
    """The spec with the stack's revision key (`given`: a promote step's, its release's; a
    new one for a stack without), and the recorded outputs with revisions of this spec
    recorded before the key in keyed form."""
    key = given if isinstance(given, str) and given and given != UNKNOWN else olds.get("revision_key")
    spec_inputs = {**spec_inputs, "revision_key": key or new_revision_key()}
    spec = ReleaseSpec.from_inputs(spec_inputs)
    return spec_inputs, {**olds, **{k: spec.canonical(olds[k]) for k in REVISION_KEYS if olds.get(k)}}


def _reported(method):
    """Errors leave the provider with every configured secret masked. A user error
    (CanaryError) is reported as its message alone; any other exception is a bug and
    keeps its traceback. (The dynamic provider server formats the exception it catches
    with traceback.format_exc(), which honours sys.tracebacklimit at that moment.)"""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            result = method(*args, **kwargs)
        except CanaryError as err:
            sys.tracebacklimit = 0
            text = redact.current().text(str(err))
            if text == str(err):
                raise
            raise DeployError(text) from None
        except Exception as err:
            if hasattr(sys, "tracebacklimit"):
                del sys.tracebacklimit
            text = redact.current().text(str(err))
            if text == str(err):
                raise
            raise RuntimeError(text).with_traceback(err.__traceback__) from None
        return result
    return wrapper
# ----------------------------------------------------------------------------------------------


def _with_host_record(olds: dict, props: dict) -> dict:
    """The recorded outputs, updated by the droplet's journal as the program read it (a
    fleet's droplet may have been rolled back after its release saved its outputs)."""
    record = props.get("host_record") or {}
    return {**olds, **{k: v for k, v in record.items() if k in RECORD_KEYS}} if isinstance(record, dict) else olds


def _fleet_outputs(spec: ReleaseSpec, status: ReleaseStatus) -> dict:
    """What the droplets after this one (and Fleet) read of it: fleet.py's entry."""
    return {"converged": (status.production_revision == spec.revision and status.canary_revision is None
                          and status.production_running),
            "desired_failed": status.phase == Phase.ROLLED_BACK and status.failed_revision == spec.revision,
            # (a canary droplet's release ends at the verdict: its promote step promotes it)
            "passed": P.due_for_promotion(desired(spec), status.recorded())}


def _planned(spec: ReleaseSpec, olds: dict) -> P.Action:
    """plan.py's answer with the recorded outputs standing in for the host."""
    return action_for(spec, ReleaseStatus.from_outputs(olds))


def _registry_password(config: Any) -> str:
    """The registry password from the stack config (the value, or the file it names)."""
    password, path = config.get("registry_password"), config.get("registry_password_file")
    if not password and path:
        try:
            password = read_text(str(path))
        except OSError:
            password = ""
    return str(password or "").strip()


# -- Ctrl-C -------------------------------------------------------------------------------------
# On the first Ctrl-C the engine sends its providers Cancel and waits for the operations
# in flight; the SDK's dynamic provider answers Cancel with nothing. The release takes it
# as an operator's abort: its analysis rolls back at the next check (operate.py).
_CANCELLED = threading.Event()


def _cancel_trampoline(self, request, context):  # runs with the servicer module's globals
    return _canary_cancel(self, request, context)  # noqa: F821


def _hook_cancel() -> None:
    """Makes the provider server's Cancel also set _CANCELLED. gRPC bound the servicer's
    method when the server started, so the function itself gets the new code (a new class
    attribute would never be called); the SDK's own Cancel still runs after it."""
    servicer = getattr(sys.modules.get("__main__"), "DynamicResourceProviderServicer", None)
    fn = getattr(servicer, "Cancel", None)
    if fn is None or getattr(fn, "canary_hooked", False) or fn.__code__.co_freevars:
        return
    import types
    original = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__)

    def cancel(self, request, context):
        _CANCELLED.set()  # (the engine also cancels its providers as it closes them: said nothing here)
        return original(self, request, context)
    fn.__globals__["_canary_cancel"] = cancel
    fn.__code__ = _cancel_trampoline.__code__
    fn.canary_hooked = True
# ----------------------------------------------------------------------------------------------


class ReleaseProvider(ResourceProvider):
    def __init__(self) -> None:
        super().__init__()
        self.targets: dict[str, Target] = {}
        self.target_error: Optional[str] = None
        self.webhook: Optional[str] = None
        self.notify_allow_local = False
        self.force_token = ""
        self.database_url: Optional[str] = None
        self.registry_password = ""

    def configure(self, req: ConfigureRequest) -> None:
        try:
            self.targets = {t.name: t for t in load_targets(lambda k: decoded(k, req.config.get(k)))}
        except ConfigError as err:
            self.target_error = str(err)
        self.webhook = req.config.get("notify_webhook") or None
        # The app's database (backups, the connections check): like the webhook, never an input.
        self.database_url = req.config.get("database_url") or None
        try:  # (the program refused a bad value at preview)
            self.notify_allow_local = parse_bool(req.config.get("notify_allow_local") or False)
        except ValueError:
            self.notify_allow_local = False
        # Masked like every configured secret (an error or a log line may quote it).
        self.registry_password = _registry_password(req.config)
        # Forced routing's token: from the stack config, like the webhook, never an input.
        try:
            self.force_token = load_force_token(req.config.get)
        except ConfigError as err:
            self.targets, self.target_error = {}, str(err)
        exit_with_engine()
        quick_exit.provider()
        if quick_exit.in_provider_process():
            _hook_cancel()

    def _target(self, name: str) -> Target:
        if not self.targets:
            raise DeployError(self.target_error or "no SSH target configured")
        if name not in self.targets:
            raise DeployError(f"the droplet {name!r} is not in canary:hosts any more: put it back to "
                              "release or remove it with `pulumi destroy --target` of its release")
        return self.targets[name]

    def _controller(self, spec_inputs: Any, revision: Optional[str] = None, host_name: str = "",
                    approved: str = "", promoted_by: str = "") -> tuple[Controller, Host]:
        # Imported here: a provider process's first calls (check, diff) stay quick, and
        # the engine makes those one resource at a time (a fleet's wave waits on them).
        from .controller import Controller
        from .notify import Notifier
        from .remote.over_ssh import over_ssh
        from .remote.ssh import Host
        spec = spec_inputs if isinstance(spec_inputs, ReleaseSpec) else ReleaseSpec.from_inputs(spec_inputs)
        target = self._target(host_name or "")
        redactor = redact.Redactor([*spec.secret_values(), self.webhook, self.force_token, target.private_key,
                                    self.database_url, self.registry_password],
                                   public=spec.public_values())
        redact.install(redactor)
        host = Host(target, log=_say)
        notifier = redact.RedactingNotifier(Notifier(self.webhook, spec.stack, spec.app, _say,
                                                     allow_local=self.notify_allow_local), redactor)
        return Controller(over_ssh(host, spec, self.database_url), spec, _say, revision, notifier, self.force_token,
                          approved=approved, promoted_by=promoted_by, cancelled=_CANCELLED.is_set), host

    @_reported
    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        unkeyed = bool(olds.get("spec")) and not olds.get("revision_key")
        spec_inputs, olds = _with_key(_spec_inputs(news), _with_host_record(olds, news))
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

    def _run(self, spec_inputs: dict, recorded: dict, props: dict) -> dict:
        spec = ReleaseSpec.from_inputs(spec_inputs)
        # What this update set out to do, in words (a preview shows the program's words:
        # the same, from the stack's record).
        planned = describe(spec, ReleaseStatus.from_outputs(recorded) if recorded else None)
        host_name, gate = props.get("host_name") or "", props.get("gate")
        approved = ""
        if isinstance(gate, list):  # a droplet of a later wave (fleet.py)
            th = spec.analysis.thresholds
            waiting = F.waiting_for(gate, th.error_threshold, th.min_requests)
            if waiting:
                message = f"{spec.image} {waiting}"
                _say(f"{host_name}: {message}: changing nothing on this droplet"
                     + (" but the container staged for it" if props.get("staged") else ""))
                if props.get("staged"):
                    self._unstage(spec_inputs, host_name)
                status = ReleaseStatus.from_outputs(recorded).with_(message=message)
                return self._outputs(spec, spec_inputs, status, message, host_name)
            approved = "passed on the canary droplets " + ", ".join(e["name"] for e in gate)
            planned = f"replace production with {spec.image}: it {approved}"
        controller, host = self._controller(spec_inputs, host_name=host_name, approved=approved,
                                            promoted_by=props.get("promoted_by") or "")
        try:
            status = controller.reconcile(recorded)
        finally:
            host.close()
        return self._outputs(spec, spec_inputs, status, planned, host_name)

    def _unstage(self, spec_inputs: dict, host_name: str) -> None:
        """Removes the container Stage started for a revision whose gate stays closed
        (it carries no traffic; left there, the next release or cleanup removes it)."""
        try:
            controller, host = self._controller(spec_inputs, host_name=host_name)
            try:
                done = controller.unstage()
            finally:
                host.close()
        except Exception as err:
            done = f"could not remove the container staged for it: {redact.current().text(str(err))}"
        if done:
            _say(f"{host_name}: {done}")

    def _outputs(self, spec: ReleaseSpec, spec_inputs: dict, status: ReleaseStatus, planned: str,
                 host_name: str) -> dict:
        # (refresh and delete get the outputs alone: they name the droplet too)
        return {**redact.current().value(status.to_outputs()), **_fleet_outputs(spec, status), "host_name": host_name,
                "spec": _public_spec(spec_inputs), "image": spec.image,
                "revision_key": spec_inputs["revision_key"], "planned": redact.current().text(planned)}

    @_reported
    def create(self, props: dict) -> CreateResult:
        engine_log.attribute_to(props.get("log_urn"))
        spec_inputs, recorded = _with_key(_spec_inputs(props), _with_host_record({}, props))
        outs = self._run(spec_inputs, recorded, props)
        return CreateResult(id_=props["spec"]["app"], outs=outs)

    @_reported
    def update(self, id: str, olds: dict, news: dict) -> UpdateResult:
        engine_log.attribute_to(news.get("log_urn"))
        spec_inputs, olds = _with_key(_spec_inputs(news), _with_host_record(olds, news))
        spec = ReleaseSpec.from_inputs(spec_inputs)
        action = _planned(spec, olds)
        if action.kind == P.BLOCKED and not action.cleanup:  # fail before touching the host
            if news.get("host_name"):
                # A fleet's droplet: Fleet fails the update, once it rolled back any droplet
                # that still runs the revision (a rollback an earlier run did not finish).
                status = ReleaseStatus.from_outputs(olds)
                return UpdateResult(outs=self._outputs(spec, spec_inputs, status, str(rolled_back_before(
                    spec.image, action.reason)), news["host_name"]))
            raise rolled_back_before(spec.image, action.reason)
        return UpdateResult(outs=self._run(spec_inputs, olds, news))

    @_reported
    def read(self, id: str, props: dict) -> ReadResult:
        engine_log.attribute_to(props.get("log_urn"))
        if not props.get("spec"):
            return ReadResult(id_=id, outs=props)
        controller, host = self._controller(props["spec"], revision=props.get("production_revision"),
                                            host_name=props.get("host_name") or "")
        try:
            outs = controller.refreshed(props)
        finally:
            host.close()
        return ReadResult(id_=id, outs={**outs, **redact.current().value({k: outs[k] for k in OUTPUT_KEYS})})

    @_reported
    def delete(self, id: str, props: dict) -> None:
        engine_log.attribute_to(props.get("log_urn"))
        controller, host = self._controller(props["spec"], host_name=props.get("host_name") or "")
        try:
            controller.destroy()
        finally:
            host.close()


class Release(Resource, module="canary", name="Release"):
    """The app on the host: production, canary, traffic split and the analysis record."""

    # The outputs: status.ReleaseStatus, field for field ("" for none).
    phase: pulumi.Output[str]
    production_image: pulumi.Output[str]
    production_revision: pulumi.Output[str]
    previous_image: pulumi.Output[str]
    previous_revision: pulumi.Output[str]
    production_running: pulumi.Output[bool]
    canary_image: pulumi.Output[str]
    canary_revision: pulumi.Output[str]
    canary_weight: pulumi.Output[int]
    passed_weight: pulumi.Output[int]
    failed_image: pulumi.Output[str]
    failed_revision: pulumi.Output[str]
    failure_reason: pulumi.Output[str]
    message: pulumi.Output[str]
    analysis: pulumi.Output[Any]
    last_backup: pulumi.Output[str]
    restored_backup: pulumi.Output[str]
    planned: pulumi.Output[str]  # what the update sets out to do, in words
    converged: pulumi.Output[bool]  # production runs this update's revision, no canary (fleet.py)
    desired_failed: pulumi.Output[bool]  # this update's revision was rolled back here
    passed: pulumi.Output[bool]  # a canary of it passed and is to be promoted (fleet.py)
    revision_key: pulumi.Output[str]

    def __init__(self, name: str, spec: pulumi.Input[dict], env: pulumi.Input[dict],
                 canary_env: pulumi.Input[dict], split_preview: pulumi.Input[str],
                 environment: str, opts: Optional[pulumi.ResourceOptions] = None,
                 metric_command: pulumi.Input[Optional[str]] = None, planned: pulumi.Input[str] = "",
                 host_name: str = "", gate: pulumi.Input[Optional[list]] = None,
                 host_record: Optional[dict] = None, staged: pulumi.Input[Optional[bool]] = None,
                 promoted_by: str = "", plain_credentials: Optional[list] = None):
        # Its own URN, so its progress lines show under it (engine_log.py).
        log_urn = pulumi.create_urn(name, RELEASE_TYPE, parent=opts.parent if opts else None)
        outputs = {k: None for k in OUTPUT_KEYS}
        # The stack's revision key stays a secret in the state.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["revision_key"]))
        super().__init__(ReleaseProvider(), name,
                         {**outputs, "spec": spec, "env": env, "canary_env": canary_env,
                          "metric_command": metric_command, "split_preview": split_preview,
                          # what this update will do, in words: preview shows it (an input)
                          "planned": planned, "log_urn": log_urn,
                          "environment": environment, "image": None, "revision_key": None,
                          # names of credentials set without --secret: for the policy pack
                          "plain_credentials": plain_credentials or [],
                          "converged": None, "desired_failed": None, "passed": None,
                          # a fleet's droplet (fleet.py); "" and None for the one canary:host
                          "host_name": host_name, "gate": gate, "host_record": host_record,
                          "staged": staged,  # (stage_resource.py: a later wave's droplet)
                          # a fleet's canary droplet: its promote step (promotion_resource.py)
                          "promoted_by": promoted_by},
                         opts)


class VerdictProvider(ResourceProvider):
    def _judge(self, props: dict) -> None:
        if props.get("phase") == Phase.ROLLED_BACK:
            raise DeployError(f"canary {props.get('failed_image')} was rolled back: "
                              f"{props.get('failure_reason')}. Production is unchanged.")

    @_reported
    def create(self, props: dict) -> CreateResult:
        engine_log.attribute_to(props.get("log_urn"))
        self._judge(props)
        return CreateResult(id_="verdict", outs=props)

    def diff(self, id: str, olds: dict, news: dict) -> DiffResult:
        keys = ("phase", "failed_image", "failure_reason")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    @_reported
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
