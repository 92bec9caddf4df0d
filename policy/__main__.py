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


def _steps(spec: dict) -> list[int]:
    return [int(s) for s in spec.get("steps") or []]


def big_canaries_need_review(args: ResourceValidationArgs, report_violation):
    spec = _production_release(args)
    if spec is None:
        return
    steps = _steps(spec)
    # Every step above the limit counts, 100 included when steps before it were analysed
    # (then it is a canary with all the traffic, not a promotion): [60, 100] is a 60 %
    # canary. A lone 100 is the next rule's.
    big = [] if steps == [100] else [s for s in steps if s > MAX_UNATTENDED_PERCENTAGE]
    if big and spec.get("auto_promote"):
        report_violation(
            f"a canary step of {big[0]} % is above {MAX_UNATTENDED_PERCENTAGE} % on production "
            f"(canary_percentage or canary_steps {steps}): set auto_promote false and promote after a review")


def production_promotions_are_analysed(args: ResourceValidationArgs, report_violation):
    spec = _production_release(args)
    if spec is None:
        return
    steps = _steps(spec)
    # Steps only increase, so 100 % is reached with an analysis first exactly when a
    # step below 100 comes before it.
    if steps and steps[0] >= 100:
        report_violation(
            f"canary_percentage or canary_steps {steps} on production reaches 100 % without any analysis: "
            "start with a canary below 100 (e.g. 10, or canary_steps [10, 50]); to go back to the "
            "previous image, set image_tag to it (an instant rollback needs no canary_percentage 100)")


def credentials_are_secrets(args: ResourceValidationArgs, report_violation):
    """A credential set without --secret sits readable in the stack file (git) and the
    config; the release names such keys (never their values) in `plain_credentials`."""
    if args.resource_type != RELEASE or str(args.props.get("environment", "")).lower() not in PRODUCTION:
        return
    for key in args.props.get("plain_credentials") or []:
        report_violation(f"canary:{key} is a credential set in plain text on production: set it with "
                         f"`pulumi config set --secret {key} ...` (a registry user name may be an API token)")


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
            description="On production, a canary step above 50 % (100 after others included) needs "
                        "auto_promote=false.",
            validate=big_canaries_need_review),
        ResourceValidationPolicy(
            name="production-promotions-are-analysed",
            description="On production, reaching 100 % without an analysed step below it is refused.",
            validate=production_promotions_are_analysed),
        ResourceValidationPolicy(
            name="credentials-are-secrets",
            description="On production, credentials (registry login, deploy key, webhook) are set with --secret.",
            validate=credentials_are_secrets),
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
