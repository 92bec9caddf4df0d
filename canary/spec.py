"""The release's inputs: what the program hands the release provider.

`ReleaseSpec.from_settings` is called by the program; the provider rebuilds the spec
from the stored inputs with `from_inputs`. Everything that decides what runs on the
host is here, so `pulumi preview --diff` shows it. SSH credentials are not: the
provider reads them from the stack config (see provider.py).

Values that may be secrets (container env, the metric command) travel as top-level
inputs of their own (SECRET_INPUTS), so the engine keeps them secret in the state, and
`secret_inputs` names those set with `--secret`, so the provider can mask them.

The revision digest is keyed: an HMAC of the container spec with the stack's own random
`revision_key` (a secret output of the release), so a recorded revision cannot be used
to confirm a guessed secret offline. Stacks recorded before the key existed carry
plain-hash (legacy) revisions; `canonical` maps one of the current spec to its keyed
form, so the first keyed update is no change on the host.

The image is keyed by its digest when it comes from a registry (`digest`, looked up by
pulumi-docker): containers run `repo@sha256:...` and the revision names that, so the same
digest under a new tag is the same revision (no canary) and a tag that moved to a new
digest is a new one. The tag (`image`) is what outputs and messages show; it is also a
container label (`canary.image`). Without a digest (an image already on the host) the
revision names the tag, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping, Optional

from .analysis.sources.prometheus import PromMetric
from .analysis.verdict import Thresholds
from .config import Settings
from .render import SplitSpec


def _ints(d: dict, keys: tuple[str, ...]) -> dict:
    return {k: (int(v) if k in keys and v is not None else v) for k, v in d.items()}


@dataclass(frozen=True)
class AnalysisSpec:
    duration: float
    interval: float
    probes_per_check: int
    thresholds: Thresholds
    metric_command: Optional[str] = None
    # The limit of the database connections check (percent), when the stack names a database.
    db_connections_max: Optional[float] = None
    # PromQL queries with limits, and Prometheus as the droplet reaches it (with queries only).
    prometheus_url: Optional[str] = None
    prometheus_metrics: tuple[PromMetric, ...] = ()

    @property
    def checks(self) -> int:
        return max(1, round(self.duration / self.interval))


@dataclass(frozen=True)
class MigrationSpec:
    """The release's database migration (controller: backup, then migrate, then canary)."""
    command: tuple[str, ...]  # the image's argv, word by word
    timeout: float
    backup: bool
    backup_image: str  # whose pg_dump makes the backup ("": the release's image)
    backup_keep: int


@dataclass(frozen=True)
class ContainerSpec:
    """How to run one of the app's containers (remote/docker.py runs it)."""

    name: str
    image: str
    host_port: int
    container_port: int
    bind_address: str
    restart_policy: str
    env: Mapping[str, str]
    volumes: tuple[str, ...]
    labels: Mapping[str, str]


# Inputs of the release kept apart from `spec` (they may hold secrets).
SECRET_INPUTS = ("env", "canary_env", "metric_command")


def new_revision_key() -> str:
    return secrets.token_hex(32)


@dataclass(frozen=True)
class ReleaseSpec:
    stack: str
    app: str
    image: str
    steps: tuple[int, ...]
    auto_promote: bool
    retry: bool
    stable_port: int
    canary_port: int
    container_port: int
    bind_address: str
    restart_policy: str
    volumes: tuple[str, ...]
    env: dict = field(repr=False)
    canary_env: dict = field(repr=False)
    health_path: str = "/web/health"
    probe_url: Optional[str] = None
    startup_timeout: float = 120
    drain_timeout: float = 5
    access_log: str = ""
    adopt: bool = False  # may take over an unlabelled container of the app's name
    split: SplitSpec = None  # type: ignore[assignment]
    analysis: AnalysisSpec = None  # type: ignore[assignment]
    secret_inputs: tuple[str, ...] = ()  # which of SECRET_INPUTS were set with --secret
    digest: str = ""  # the registry's sha256 digest of `image`; "" for an image already on the host
    canary_volumes: tuple[str, ...] = ()  # the canary's own mounts, replacing those of the same path
    promote: bool = False  # canary:promote names this release's tag: promote its held canary
    migration: Optional[MigrationSpec] = None
    restore_backup: str = ""  # a backup to restore first (one-off: the status records it done)
    backup_image: str = ""  # whose pg_restore restores it ("": the release's image)
    # The stack's key for revision digests: never an input, never in plain state.
    revision_key: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        # The split's pin cookies are keyed with the same secret (render.pin).
        if self.split is not None and self.split.pin_key != self.revision_key:
            object.__setattr__(self, "split", replace(self.split, pin_key=self.revision_key))

    @classmethod
    def from_settings(cls, s: Settings) -> "ReleaseSpec":
        return cls(
            stack=s.stack, app=s.container_name, image=s.full_image, steps=s.steps,
            auto_promote=s.auto_promote, retry=s.retry, stable_port=s.stable_port,
            canary_port=s.canary_port, container_port=s.container_port, bind_address=s.bind_address,
            restart_policy=s.restart_policy, volumes=s.volumes, env=dict(s.env),
            canary_env=dict(s.canary_env), health_path=s.health_path, probe_url=s.probe_url,
            startup_timeout=s.startup_timeout, drain_timeout=s.drain_timeout, access_log=s.access_log,
            adopt=s.adopt, canary_volumes=s.canary_volumes, promote=s.promote == s.image_tag,
            migration=MigrationSpec(command=s.migrate_command, timeout=s.migrate_timeout, backup=s.backup,
                                    backup_image=s.backup_image or "", backup_keep=s.backup_keep)
            if s.migrate_command else None,
            restore_backup=s.restore_backup or "", backup_image=s.backup_image or "",
            split=SplitSpec.from_settings(s),
            secret_inputs=tuple(k for k, secret in (("env", s.env_is_secret), ("canary_env", s.env_is_secret),
                                                    ("metric_command", s.metric_command_is_secret)) if secret),
            analysis=AnalysisSpec(
                duration=s.monitoring_duration, interval=s.check_interval,
                probes_per_check=s.probes_per_check, metric_command=s.metric_command,
                db_connections_max=s.max_db_connections if s.database_url else None,
                prometheus_url=s.prometheus_url if s.prometheus_metrics else None,
                prometheus_metrics=s.prometheus_metrics,
                thresholds=Thresholds(
                    error_threshold=s.error_threshold, max_response_time=s.max_response_time,
                    latency_factor=s.latency_factor, min_requests=s.min_requests,
                    max_error_logs_per_minute=s.max_error_logs_per_minute, metric_max=s.metric_max)))

    def to_inputs(self) -> dict:
        d = asdict(self)
        del d["revision_key"]
        (d["split"] or {}).pop("pin_key", None)  # a secret, like revision_key
        d["steps"], d["volumes"] = list(self.steps), list(self.volumes)
        d["canary_volumes"] = list(self.canary_volumes)
        d["secret_inputs"] = list(self.secret_inputs)
        d["analysis"]["prometheus_metrics"] = list(d["analysis"]["prometheus_metrics"])
        if self.migration:
            d["migration"]["command"] = list(self.migration.command)
        return d

    def keyed(self, key: str) -> "ReleaseSpec":
        return replace(self, revision_key=key)

    def secret_values(self) -> list[str]:
        """The values set with --secret (container env, the metric command)."""
        out: list[str] = []
        if "env" in self.secret_inputs:
            out += self.env.values()
        if "canary_env" in self.secret_inputs:
            out += self.canary_env.values()
        if "metric_command" in self.secret_inputs and self.analysis.metric_command:
            out.append(self.analysis.metric_command)
        return out

    def public_values(self) -> list[str]:
        """Names everyone sees anyway (outputs, the host): never masked."""
        return [self.app, f"{self.app}-canary", self.stack, self.image, *self.image.split(":"),
                self.ref, self.digest,
                str(self.stable_port), str(self.canary_port), str(self.container_port)]

    @classmethod
    def from_inputs(cls, d: dict) -> "ReleaseSpec":
        # Numbers come back from the engine as floats: restore the integer fields.
        d = _ints(d, ("stable_port", "canary_port", "container_port"))
        a = _ints(d["analysis"], ("probes_per_check",))
        a["prometheus_metrics"] = tuple(PromMetric(**m) for m in a.get("prometheus_metrics") or ())
        a["thresholds"] = Thresholds(**_ints(a["thresholds"], (
            "min_requests", "max_error_logs_per_minute", "max_consecutive_failures")))
        d["analysis"] = AnalysisSpec(**a)
        d["split"] = SplitSpec(**_ints(d["split"], ("stable_port", "canary_port")))
        d["steps"] = tuple(int(x) for x in d["steps"])
        d["volumes"] = tuple(d["volumes"])
        d["canary_volumes"] = tuple(d.get("canary_volumes") or ())
        d["secret_inputs"] = tuple(d.get("secret_inputs") or ())
        m = d.get("migration")
        d["migration"] = MigrationSpec(**{**_ints(m, ("backup_keep",)), "command": tuple(m["command"])}) if m else None
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})

    def _container_spec(self) -> bytes:
        return json.dumps([self.env, list(self.volumes), self.stable_port, self.container_port,
                           self.bind_address, self.restart_policy], sort_keys=True).encode()

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0]

    @property
    def ref(self) -> str:
        """What Docker runs: the image by digest when the registry's digest is known."""
        return f"{self.repository}@{self.digest}" if self.digest else self.image

    def _keyed_digest(self) -> str:
        return hmac.new(self.revision_key.encode(), self._container_spec(), hashlib.sha256).hexdigest()[:16]

    @property
    def legacy_digest(self) -> str:
        """The plain hash older releases recorded (8 hex digits)."""
        return hashlib.sha256(self._container_spec()).hexdigest()[:8]

    @property
    def revision(self) -> str:
        """The image (by digest when known) plus everything of the production container's
        spec: a change of any of it is a new revision, analysed as a canary before it
        reaches production. Keyed (16 hex digits) when the stack's revision key is known."""
        if not self.revision_key:
            return f"{self.ref}#{self.legacy_digest}"
        return f"{self.ref}#{self._keyed_digest()}"

    def canonical(self, revision: Optional[str]) -> Optional[str]:
        """A revision of this very container spec recorded (or labelled on a container) in
        an older form, in the current one; any other revision unchanged. Older forms: a
        plain hash from before the stack had a key, and the tag from before the image was
        keyed by its digest (taken to be the digest the tag names now)."""
        if not revision or not self.revision_key or "#" not in revision:
            return revision
        image, digest = revision.rsplit("#", 1)
        if image == self.image and digest in (self.legacy_digest, self._keyed_digest()):
            return self.revision  # this tag, recorded before its digest was known
        if digest == self.legacy_digest:  # this spec (of any image), recorded before the key
            return f"{image}#{self._keyed_digest()}"
        return revision

    def mounts(self, role: str) -> tuple[str, ...]:
        """The container's volumes: the canary's own replace those of the same path."""
        if role != "canary" or not self.canary_volumes:
            return self.volumes
        own = {v.split(":")[1] for v in self.canary_volumes}
        return tuple(v for v in self.volumes if v.split(":")[1] not in own) + self.canary_volumes

    def container(self, role: str) -> ContainerSpec:
        """The production, canary or migrate (one-off, production's env and mounts) container."""
        canary = role == "canary"
        return ContainerSpec(
            name=f"{self.app}-{role}" if role in ("canary", "migrate") else self.app, image=self.ref,
            host_port=self.canary_port if canary else self.stable_port,
            container_port=self.container_port, bind_address=self.bind_address,
            restart_policy=self.restart_policy,
            env={**self.env, **self.canary_env} if canary else dict(self.env),
            volumes=self.mounts(role),
            labels={"canary.app": self.app, "canary.role": role, "canary.revision": self.revision,
                    "canary.stack": self.stack, "canary.image": self.image})


def digest_of(revision: Optional[str]) -> str:
    """The sha256 digest a recorded revision runs ("" when it runs a tag)."""
    ident = (revision or "").split("#", 1)[0]
    return ident.split("@", 1)[1] if "@" in ident else ""
