"""Guard rails a team wants on its canary releases (Pulumi CrossGuard).

    pulumi preview --policy-pack policy      # or: pulumi up --policy-pack policy

Rules read the inputs of the program's resources: the release's `environment` (the stack
name) tells production from the rest.
"""

import json

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationArgs, ResourceValidationPolicy

RELEASE = "pulumi-python:dynamic/canary:Release"
COMMAND = "command:remote:Command"
DOCKER_PROVIDER = "pulumi:providers:docker"
PRODUCTION = ("production", "prod")
MIN_PRODUCTION_MONITORING_SECONDS = 10 * 60
MAX_UNATTENDED_PERCENTAGE = 50


def _production_release(args: ResourceValidationArgs):
    if args.resource_type != RELEASE:
        return None
    props = args.props
    if str(props.get("environment", "")).lower() not in PRODUCTION:
        return None
    return props.get("spec") or {}


def big_canaries_need_review(args: ResourceValidationArgs, report_violation):
    spec = _production_release(args)
    if spec is None:
        return
    top = max(int(s) for s in spec.get("steps") or [0])
    if top > MAX_UNATTENDED_PERCENTAGE and top < 100 and spec.get("auto_promote"):
        report_violation(
            f"canary_percentage {top} is above {MAX_UNATTENDED_PERCENTAGE} on production: "
            "set auto_promote false and promote after a review")


def production_promotions_are_analysed(args: ResourceValidationArgs, report_violation):
    spec = _production_release(args)
    if spec is None:
        return
    if [int(x) for x in spec.get("steps") or []] == [100]:
        report_violation(
            "canary_percentage 100 on production promotes the image without any analysis: use a "
            "canary (e.g. 10) or canary_steps; to go back to the previous image, set image_tag to "
            "it (an instant rollback needs no canary_percentage 100)")


def production_monitors_long_enough(args: ResourceValidationArgs, report_violation):
    spec = _production_release(args)
    if spec is None:
        return
    seconds = float((spec.get("analysis") or {}).get("duration") or 0)
    if seconds < MIN_PRODUCTION_MONITORING_SECONDS:
        report_violation(
            f"monitoring_duration is {seconds / 60:g} minutes on production; at least "
            f"{MIN_PRODUCTION_MONITORING_SECONDS // 60} are required")


def host_keys_are_pinned(args: ResourceValidationArgs, report_violation):
    if args.resource_type == DOCKER_PROVIDER and str(args.props.get("host") or "").startswith("ssh://"):
        opts = args.props.get("sshOpts") or []
        if isinstance(opts, str):  # provider inputs arrive JSON-encoded
            opts = json.loads(opts)
        if "StrictHostKeyChecking=yes" not in opts or not any(
                str(o).startswith("UserKnownHostsFile=") for o in opts):
            report_violation("the docker provider over ssh:// must pin the host key (sshOpts with "
                             "UserKnownHostsFile=... and StrictHostKeyChecking=yes)")
        return
    if args.resource_type != COMMAND:
        return
    connection = args.props.get("connection") or {}
    if not connection.get("hostKey"):
        report_violation("remote commands must pin the host key (connection.hostKey): "
                         "without it any host key is accepted")


PolicyPack(
    name="canary-guard-rails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="big-canaries-need-review",
            description="On production, a canary above 50 % needs auto_promote=false.",
            validate=big_canaries_need_review),
        ResourceValidationPolicy(
            name="production-promotions-are-analysed",
            description="On production, canary_percentage 100 (promotion without analysis) is refused.",
            validate=production_promotions_are_analysed),
        ResourceValidationPolicy(
            name="production-monitors-long-enough",
            description="On production, monitoring_duration is at least 10 minutes.",
            validate=production_monitors_long_enough),
        ResourceValidationPolicy(
            name="host-keys-are-pinned",
            description="Remote commands and the docker provider pin the SSH host key.",
            validate=host_keys_are_pinned),
    ],
)
