"""The Pulumi program: stack config -> rendered nginx site -> remote site command ->
release (containers, split, analysis) -> verdict, and the stack outputs. A fleet
(canary:hosts) has these per droplet, in waves (fleet.py), and one Fleet verdict."""

from __future__ import annotations

import re
from dataclasses import replace
from importlib.metadata import version
from typing import Any

import pulumi
import pulumi_command as command
from pulumi.runtime.config import get_config, is_config_secret

from . import docker_resources, quick_exit, render
from .config import ConfigError, load
from .config_fields import FIELD, SECRET_KEYS, decoded
from .fleet import waves
from .planned import describe
from .fleet_resource import Fleet, entries
from .promotion_resource import Promotion
from .provider import PROVIDER_CONFIG_KEYS, Release, Verdict
from .remote import preflight
from .spec import ReleaseSpec, digest_of
from .stage_resource import Stage
from .status import EXPORTED, RECORD_KEYS, ReleaseStatus

NAMESPACE = "canary"


def _raw(key: str) -> Any:
    """A config value as stored: text, or parsed JSON for the structured keys."""
    return decoded(key, get_config(f"{NAMESPACE}:{key}"))


def main() -> None:
    quick_exit.program()
    stack = pulumi.get_stack()
    try:
        secret = frozenset(k for k in SECRET_KEYS if is_config_secret(f"{NAMESPACE}:{k}"))
        s = load(_raw, stack, secret)
        # A fleet: every droplet reached (and its journal read) before anything is declared.
        records = preflight.journals(s.fleet, s.container_name, stack) if s.is_fleet else {}
    except (ConfigError, preflight.Unreachable) as err:
        # Before any resource exists: nothing reaches the host.
        raise pulumi.RunError(str(err)) from None

    if s.canary_database_keys:
        pulumi.log.warn(f"canary_env sets {', '.join(s.canary_database_keys)}: the canary uses a database of its "
                        "own, so what the users it serves write there is lost at promotion. Canary and stable "
                        "share one database by default (migrations: canary:migrate_command)")
    # The image is looked up once (the first droplet's engine asks the registry).
    targets = {t.name: t for t in s.fleet}
    docker_hosts = {name: docker_resources.provider(s, t) for name, t in targets.items()}
    digest = docker_resources.registry_digest(s, next(iter(docker_hosts.values())))

    spec = ReleaseSpec.from_settings(s).to_inputs()
    spec["digest"] = digest
    # Container env is an input of its own (top level), so a secret value stays secret in
    # the state: the engine re-marks secrets per top-level input of a dynamic resource.
    env = {"env": spec.pop("env"), "canary_env": spec.pop("canary_env")}
    if s.env_is_secret:
        env = {k: pulumi.Output.secret(v) for k, v in env.items()}
    # So is the metric command (it may hold a password): secret when set with --secret.
    metric = spec["analysis"].pop("metric_command")
    metric = pulumi.Output.secret(metric) if s.metric_command_is_secret else metric
    first = s.steps[0]
    preview = render.split_preview(s, first) if first else ""  # force token as a placeholder
    # A preview says what the update will do; the update itself says what it set out to do.
    planned = _planned(replace(ReleaseSpec.from_settings(s), digest=digest)) if pulumi.runtime.is_dry_run() else ""

    # Per droplet: the image and volumes there, its nginx site, its release. A wave's
    # droplets run in parallel; a later wave waits on the outputs of the ones before it.
    # With later waves, a canary droplet's release ends at the verdict, and a promote step
    # of its own promotes it beside the later waves (promotion_resource.py): only where the
    # canary ran production's own settings. With canary_env or canary_volumes, production's
    # were never started, so the later waves wait until a canary droplet's production runs.
    in_waves = waves(list(targets), s.canary_hosts, s.wave_size)
    verdict_gate = len(in_waves) > 1 and not s.canary_env and not s.canary_volumes
    releases: dict[str, Release] = {}
    final: dict[str, Release | Promotion] = {}  # what each droplet ends with (its outputs)
    processes: dict[str, pulumi.ProviderResource] = {}
    canary_steps: list = []  # the canary droplets' images and sites (see _own_process)
    sites = _site_provider(next(iter(docker_hosts.values())))
    for i, wave in enumerate(in_waves):
        earlier = list(releases.values())
        gate = entries(releases, s.canary_hosts) if i else None
        for name in wave:
            t = targets[name]
            promoter = docker_resources.named("promote", t) if not i and verdict_gate else ""
            inputs = dict(spec=spec, **env, metric_command=metric, split_preview=preview, environment=stack,
                          plain_credentials=_plain_credentials(secret),
                          planned=planned if not releases else "", host_name=name, gate=gate,
                          host_record=records.get(name), promoted_by=promoter)
            releases[name], processes[name], steps = _droplet(s, t, docker_hosts[name], digest, inputs, earlier,
                                                              canary_steps, sites)
            final[name] = releases[name]
            if promoter:
                final[name] = Promotion(promoter, releases[name], spec=spec, **env, host_name=name,
                                        metric_command=metric, opts=pulumi.ResourceOptions(provider=processes[name]))
            if not i:
                canary_steps += steps
    release = next(iter(final.values()))  # the (first) canary droplet's: the stack's headline outputs
    # The verdict runs in the (first) canary droplet's provider process, running by then:
    # no process to start at the end.
    process = next(iter(processes.values()))
    if s.is_fleet:
        Fleet("fleet", final, s.canary_hosts, spec=spec, **env,
              opts=pulumi.ResourceOptions(depends_on=[*releases.values(), *final.values()], provider=process))
        pulumi.export("hosts", {name: {k: getattr(r, k) for k in HOST_EXPORTS} for name, r in final.items()})
    else:
        Verdict("verdict", release, opts=pulumi.ResourceOptions(depends_on=[release], provider=process))

    for key in EXPORTED:
        output = getattr(release, key)
        pulumi.export(key, output.apply(_summary) if key == "analysis" else output)
    pulumi.export("image", s.full_image)
    pulumi.export("image_digest", digest)
    pulumi.export("production_digest", release.production_revision.apply(digest_of))
    pulumi.export("previous_tag", release.previous_image.apply(_tag_of))
    # (a release with no change keeps its outputs: a preview shows its own words)
    pulumi.export("planned", planned if pulumi.runtime.is_dry_run() else next(iter(releases.values())).planned)
    # What the next preview plans from (secret: it holds the stack's revision key).
    pulumi.export("release_record", pulumi.Output.secret(pulumi.Output.all(
        *[getattr(release, k) for k in RECORD_KEYS], release.revision_key).apply(
            lambda values: dict(zip((*RECORD_KEYS, "revision_key"), values)))))


# What the stack exports per droplet of a fleet (output `hosts`).
HOST_EXPORTS = ("phase", "production_image", "canary_weight", "message", "converged")


def _droplet(s, t, docker_host, digest: str, inputs: dict, earlier: list, canary_steps: list,
             sites: command.Provider) -> tuple[Release, pulumi.ProviderResource, list]:
    """One droplet's resources: the image and volumes on it, its nginx site (a remote
    command), and its release, which changes nothing before all of them are in place
    (a failed pull changes nothing) and the droplets of earlier waves are done; and the
    release's provider. A later wave's droplet also has a Stage, which starts its new
    container without traffic while the canary droplets analyse (stage_resource.py).
    Returns the release, its provider, and the steps the release waits for here."""
    connection = command.remote.ConnectionArgs(
        host=t.host, port=t.port, user=t.user, host_key=t.host_key,
        private_key=pulumi.Output.secret(s.private_key), dial_error_limit=5)
    ready = [docker_resources.image(s, t, docker_host, digest), *docker_resources.volumes(s, t, docker_host)]
    site = command.remote.Command(
        docker_resources.named("site", t), connection=connection,
        create=render.site_apply_script(s), delete=render.site_delete_script(s),
        opts=pulumi.ResourceOptions(depends_on=ready, provider=sites))
    # A canary droplet's provider process starts beside its image step: declared an
    # event-loop turn after the image, which waits on the same Docker provider id, so
    # the engine hands out the image step first. A later wave's starts once its site and
    # the canary droplets' are in place. See _own_process.
    process = _own_process(t, after=[_once_up(docker_host)] if inputs["gate"] is None
                           else [site, *canary_steps])
    after = [site, *ready, *earlier]
    if inputs["gate"] is not None:  # a later wave: its new container starts meanwhile
        stage = Stage(docker_resources.named("stage", t), host_name=t.name, spec=inputs["spec"], env=inputs["env"],
                      canary_env=inputs["canary_env"], opts=pulumi.ResourceOptions(
                          depends_on=[site, *ready], provider=process))
        inputs, after = {**inputs, "staged": stage.staged}, [*after, stage]
    return Release(docker_resources.named("release", t), **inputs, opts=pulumi.ResourceOptions(
        depends_on=after, provider=process)), process, [site, *ready]


def _site_provider(docker_host) -> command.Provider:
    """The nginx sites' `command` provider, declared explicitly so that the engine starts
    its process beside the image step (declared an event-loop turn after the image, as
    _own_process explains) rather than when the first site registers, after the image:
    that start (about 0.05 s) came between the image and the release. One for every
    droplet (each process the engine starts holds its further steps back). Aliased to the
    default provider that earlier versions used, so stacks deployed by them keep their
    sites as they are (a site replaced would run its delete script)."""
    return command.Provider("command", opts=pulumi.ResourceOptions(
        aliases=[pulumi.Alias(name=default_provider_name(version("pulumi_command")))],
        depends_on=[_once_up(docker_host)]))


def _once_up(docker_host: pulumi.ProviderResource) -> pulumi.Output:
    """The Docker provider, once the engine has it: what a provider declared beside the
    image step depends on (the image waits on the same id, so it registers first)."""
    return docker_host.id.apply(lambda _: docker_host)


def default_provider_name(version: str) -> str:
    """The name the engine gives a package's default provider of `version`."""
    return "default_" + re.sub(r"[.+-]", "_", version)


def _own_process(t, after: list) -> pulumi.ProviderResource:
    """A droplet's release runs in a dynamic provider process of its own, declared
    explicitly. In a fleet: one process serves at most 4 calls at a time (the SDK's gRPC
    pool) and its threads share one interpreter lock, so a shared one would run a wave
    of 5 droplets partly one after the other. For any droplet: the engine starts a
    default provider only when the release registers, after its image and site steps;
    an explicit one starts when declared, beside those steps. An explicit provider gets
    no stack config of its own: it is given the keys the release provider reads
    (secrets stay secret in the state).

    The engine starts provider processes one at a time, about 0.3 s each, before it goes
    on to any further step: six of them declared at once held every image step back by
    1.7 s. So a canary droplet's starts when its image step has been handed out
    (declared first, or beside the image, it held that step back by the same 0.2 s); a
    later droplet's once its steps `after` are done: its own site and the canary
    droplets' images and sites, which is when the canary droplets' releases are handed
    out (a later droplet's started as soon as its own site was in place held the
    canary's release back by about 1 s on 6 droplets)."""
    config = {}
    for full in (f"{NAMESPACE}:{key}" for key in PROVIDER_CONFIG_KEYS):
        value = get_config(full)
        if value is not None:
            config[full] = pulumi.Output.secret(value) if is_config_secret(full) else value
    return pulumi.ProviderResource("pulumi-python", docker_resources.named("dynamic", t), config,
                                   opts=pulumi.ResourceOptions(depends_on=after))


def _planned(spec: ReleaseSpec) -> pulumi.Output[str]:
    """What this update will do, in words (preview and the PR comment show it): plan.py
    asked with the stack's last record, read back through a reference to this stack.
    Previews only: during an update the stack's checkpoint is being written (a file
    backend's reads it half-written), and the release provider says the same from its
    own record."""
    org = pulumi.get_organization() or "organization"  # (a DIY backend's one organization)
    me = pulumi.StackReference(f"{org}/{pulumi.get_project()}/{pulumi.get_stack()}")

    def words(args: list) -> str:
        record, phase = args
        if not record:
            return (describe(spec, None) if not phase else "the planned action shows from the next update on "
                    "(the stack's record predates it)")
        return describe(spec.keyed(record.get("revision_key") or ""), ReleaseStatus.from_outputs(record))
    # The record is secret (the revision key); the words are not.
    return pulumi.Output.unsecret(pulumi.Output.all(me.get_output("release_record"), me.get_output("phase"))
                                  .apply(words))


def _plain_credentials(secret: frozenset[str]) -> list[str]:
    """The credentials set in plain text (keys whose value should be a secret): the release
    carries their names, never their values, so the policy pack can refuse them on
    production (a stack file in git would hold them readable)."""
    return [k for k in SECRET_KEYS if FIELD[k].secret == "should" and k not in secret
            and get_config(f"{NAMESPACE}:{k}") not in (None, "")]


def _tag_of(image: Any) -> str:
    """The tag of `repo[:port]/path:tag` ("" when none): the rollback recipe's value."""
    last = str(image or "").rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def _summary(analysis: Any) -> Any:
    """The analysis without its per-check series (that goes to the report file)."""
    if not isinstance(analysis, dict):
        return analysis
    return {k: v for k, v in analysis.items() if k != "series"}
