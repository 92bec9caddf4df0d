"""The release's inputs: what the program hands the release provider.

`ReleaseSpec.from_settings` is called by the program; the provider rebuilds the spec
from the stored inputs with `from_inputs`. Everything that decides what runs on the
host is here, so `pulumi preview --diff` shows it. SSH credentials are not: the
provider reads them from the stack config (see provider.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Optional

from .analysis.verdict import Thresholds
from .config import Settings
from .remote.docker import Spec as ContainerSpec
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

    @property
    def checks(self) -> int:
        return max(1, round(self.duration / self.interval))


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

    @classmethod
    def from_settings(cls, s: Settings) -> "ReleaseSpec":
        return cls(
            stack=s.stack, app=s.container_name, image=s.full_image, steps=s.steps,
            auto_promote=s.auto_promote, retry=s.retry, stable_port=s.stable_port,
            canary_port=s.canary_port, container_port=s.container_port, bind_address=s.bind_address,
            restart_policy=s.restart_policy, volumes=s.volumes, env=dict(s.env),
            canary_env=dict(s.canary_env), health_path=s.health_path, probe_url=s.probe_url,
            startup_timeout=s.startup_timeout, drain_timeout=s.drain_timeout, access_log=s.access_log,
            adopt=s.adopt,
            split=SplitSpec.from_settings(s),
            analysis=AnalysisSpec(
                duration=s.monitoring_duration, interval=s.check_interval,
                probes_per_check=s.probes_per_check, metric_command=s.metric_command,
                thresholds=Thresholds(
                    error_threshold=s.error_threshold, max_response_time=s.max_response_time,
                    latency_factor=s.latency_factor, min_requests=s.min_requests,
                    max_error_logs_per_minute=s.max_error_logs_per_minute, metric_max=s.metric_max)))

    def to_inputs(self) -> dict:
        d = asdict(self)
        d["steps"], d["volumes"] = list(self.steps), list(self.volumes)
        return d

    @classmethod
    def from_inputs(cls, d: dict) -> "ReleaseSpec":
        # Numbers come back from the engine as floats: restore the integer fields.
        d = _ints(d, ("stable_port", "canary_port", "container_port"))
        a = _ints(d["analysis"], ("probes_per_check",))
        a["thresholds"] = Thresholds(**_ints(a["thresholds"], (
            "min_requests", "max_error_logs_per_minute", "max_consecutive_failures")))
        d["analysis"] = AnalysisSpec(**a)
        d["split"] = SplitSpec(**_ints(d["split"], ("stable_port", "canary_port")))
        d["steps"] = tuple(int(x) for x in d["steps"])
        d["volumes"] = tuple(d["volumes"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def revision(self) -> str:
        """The image plus everything of the production container's spec: a change of any
        of it is a new revision, analysed as a canary before it reaches production."""
        spec = json.dumps([self.env, list(self.volumes), self.stable_port, self.container_port,
                           self.bind_address, self.restart_policy], sort_keys=True)
        return f"{self.image}#{hashlib.sha256(spec.encode()).hexdigest()[:8]}"

    def container(self, role: str) -> ContainerSpec:
        canary = role == "canary"
        return ContainerSpec(
            name=f"{self.app}-canary" if canary else self.app, image=self.image,
            host_port=self.canary_port if canary else self.stable_port,
            container_port=self.container_port, bind_address=self.bind_address,
            restart_policy=self.restart_policy,
            env={**self.env, **self.canary_env} if canary else dict(self.env),
            volumes=self.volumes,
            labels={"canary.app": self.app, "canary.role": role, "canary.revision": self.revision,
                    "canary.stack": self.stack})
