"""A release's stack outputs as Markdown a person reads (the CI job summary):

    pulumi stack output --json | python -m canary.summary >> "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import json
import sys
from typing import Any

OUTCOMES = {
    "promoted": "Promoted", "stable": "Stable (nothing to do)", "holding": "Holding for manual promotion",
    "inconclusive": "Holding: analysis inconclusive", "rolled_back": "Rolled back",
    "aborted": "Canary removed by hand", "interrupted": "Interrupted (run `pulumi refresh`)",
}


def _cell(value: Any) -> str:
    return str(value if value not in (None, "") else "—").replace("|", "\\|").replace("\n", " ")


def _pct(value: Any) -> str:
    return f"{float(value or 0):.1f} %"


def markdown(out: dict) -> str:
    phase = out.get("phase") or "unknown"
    lines = [f"## Canary release: {OUTCOMES.get(phase, phase)}", ""]
    if out.get("message"):
        lines += [f"> {_cell(out['message'])}", ""]
    rows = [("Configured image", out.get("image")), ("Its digest", out.get("image_digest")),
            ("Production", out.get("production_image")), ("Production digest", out.get("production_digest")),
            ("Previous (instant rollback)", out.get("previous_image")),
            ("Canary", f"{out['canary_image']} at {out.get('canary_weight', 0)} %"
             if out.get("canary_image") else None),
            ("Failed image", out.get("failed_image")), ("Failure reason", out.get("failure_reason"))]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in rows if v not in (None, "")]
    a = out.get("analysis") or {}
    if a.get("decision"):
        c, s = a.get("canary") or {}, a.get("stable") or {}
        lines += ["", f"### Analysis: {a['decision']} at {a.get('weight', '?')} % traffic",
                  f"{_cell(a.get('reason'))}", "",
                  f"{a.get('checks', 0)} checks in {float(a.get('seconds') or 0):.0f} s; health probes: "
                  f"{a.get('probes', 0) - a.get('probe_failures', 0)}/{a.get('probes', 0)} answered 200 "
                  f"({_pct(a.get('error_rate'))} errors)", "",
                  "| real traffic | requests | 5xx rate | p95 |", "|---|---|---|---|",
                  *(f"| {name} | {b.get('requests', 0)} | {_pct(b.get('error_rate'))} | "
                    f"{float(b.get('p95') or 0) * 1000:.0f} ms |" for name, b in (("canary", c), ("stable", s)))]
    if out.get("previous_tag"):
        lines += ["", "Roll back to the previous production in seconds:",
                  f"`pulumi config set image_tag {out['previous_tag']} && pulumi up`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown(json.load(sys.stdin)))
