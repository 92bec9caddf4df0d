"""The release's status: what the stack records after each update (its outputs).

One frozen type, so a mistyped field is an error rather than a silently dropped key. It
drives the release's declared outputs (provider.py), the stack exports (program.py), the
host journal (controller.py) and what plan.py reads back (`recorded`).

Outputs are never null: an absent output is unknown in previews, which would make an
unchanged stack look changed. Inside the program "none" is None; in the outputs it is ""
(0 for weights, false for production_running, {} for the analysis).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional

from . import plan as P
from .phases import Phase


@dataclass(frozen=True)
class ReleaseStatus:
    phase: Phase = Phase.STABLE
    production_image: Optional[str] = None  # the tag production was started for
    production_revision: Optional[str] = None  # image (by digest when known) + spec digest
    previous_image: Optional[str] = None  # what production ran before the last promotion
    previous_revision: Optional[str] = None
    production_running: bool = False
    canary_image: Optional[str] = None
    canary_revision: Optional[str] = None
    canary_weight: int = 0  # percent of new clients the split sends to the canary
    passed_weight: int = 0  # the highest weight the canary passed its analysis at
    failed_image: Optional[str] = None
    failed_revision: Optional[str] = None
    failure_reason: Optional[str] = None
    message: Optional[str] = None
    analysis: dict = field(default_factory=dict)  # the last analysis' summary
    last_backup: Optional[str] = None  # the database dump made before the last migration (path on the host)
    restored_backup: Optional[str] = None  # the backup last restored (canary:restore_backup, one-off)

    # -- to and from the stack's outputs ------------------------------------------------
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_outputs(cls, outputs: dict) -> "ReleaseStatus":
        """From recorded outputs (or a journal record): unknown keys ignored, "" read as
        none, numbers the engine returns as floats read as integers."""
        get = lambda k: outputs.get(k) or None  # noqa: E731
        return cls(
            phase=Phase(get("phase") or Phase.STABLE),
            production_image=get("production_image"), production_revision=get("production_revision"),
            previous_image=get("previous_image"), previous_revision=get("previous_revision"),
            # (records from before the field existed: production ran)
            production_running=bool(outputs.get("production_running", True)),
            canary_image=get("canary_image"), canary_revision=get("canary_revision"),
            canary_weight=int(get("canary_weight") or 0), passed_weight=int(get("passed_weight") or 0),
            failed_image=get("failed_image"), failed_revision=get("failed_revision"),
            failure_reason=get("failure_reason"), message=get("message"),
            analysis=dict(get("analysis") or {}), last_backup=get("last_backup"),
            restored_backup=get("restored_backup"))

    def to_outputs(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Phase):
                v = v.value
            elif v is None:  # only the text fields may be none
                v = ""
            out[f.name] = v
        return out

    def journal_record(self) -> dict:
        """The status as the host journal keeps it: without the analysis' per-check series."""
        record = self.to_outputs()
        record["analysis"] = {k: v for k, v in self.analysis.items() if k != "series"}
        return record

    # -- changes ------------------------------------------------------------------------
    def with_(self, **changes: Any) -> "ReleaseStatus":
        """A copy with `changes` (a field that does not exist raises TypeError)."""
        return replace(self, **changes)

    def without_canary(self, **changes: Any) -> "ReleaseStatus":
        return replace(self, canary_revision=None, canary_image=None, canary_weight=0,
                       passed_weight=0, **changes)

    def as_observed(self) -> P.Observed:
        """What the host is taken to run when only the record is at hand (diff, preview):
        what was recorded (`pulumi refresh` corrects the record)."""
        return P.Observed(
            production_revision=self.production_revision, production_running=self.production_running,
            canary_revision=self.canary_revision, canary_running=True,
            split_weight=self.canary_weight or None)

    def recorded(self) -> P.Recorded:
        """What plan.py reads of the record."""
        return P.Recorded(
            phase=self.phase, previous_revision=self.previous_revision,
            canary_revision=self.canary_revision, canary_weight=self.canary_weight,
            passed_weight=self.passed_weight, failed_revision=self.failed_revision,
            failure_reason=self.failure_reason)


OUTPUT_KEYS = ReleaseStatus.keys()

# The fields naming a revision (spec.canonical maps older forms of them).
REVISION_KEYS = ("production_revision", "canary_revision", "previous_revision", "failed_revision")

# What a preview plans from (the stack's `release_record` output, with the revision key).
RECORD_KEYS = tuple(k for k in OUTPUT_KEYS if k not in ("analysis", "message"))

# The release outputs the stack exports under the same name (program.py adds more).
EXPORTED = ("phase", "production_image", "previous_image", "canary_image", "canary_weight",
            "failed_image", "failure_reason", "message", "analysis", "last_backup", "restored_backup")
