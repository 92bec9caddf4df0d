"""The analysis as files: a JSON report and a small HTML page with charts of the canary
against stable (error rate and p95 latency, check by check)."""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Sequence

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import redact

_env = Environment(loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
                   autoescape=select_autoescape(["html"]))

WIDTH, HEIGHT, PAD = 640, 200, 36
_NO_TRAFFIC = {"requests": 0, "errors": 0, "error_rate": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
# What the page shows for a canary that never got to its analysis (it did not start).
EMPTY = {"seconds": 0, "checks": 0, "probes": 0, "probe_failures": 0, "error_rate": 0.0,
         "canary": _NO_TRAFFIC, "stable": _NO_TRAFFIC}


def _polyline(points: Sequence[tuple[float, float]], x_max: float, y_max: float) -> str:
    sx = (WIDTH - 2 * PAD) / max(x_max, 1e-9)
    sy = (HEIGHT - 2 * PAD) / max(y_max, 1e-9)
    return " ".join(f"{PAD + x * sx:.1f},{HEIGHT - PAD - y * sy:.1f}" for x, y in points)


def chart(series: list[dict], key: str, unit: str, scale: float = 1.0, limit: float | None = None) -> dict:
    """An SVG-ready description of one chart: canary and stable lines over time."""
    canary = [(p["t"], p[f"canary_{key}"] * scale) for p in series]
    stable = [(p["t"], p[f"stable_{key}"] * scale) for p in series]
    values = [v for _, v in canary + stable] + ([limit] if limit is not None else [])
    y_max = max(values + [1e-9]) * 1.15
    x_max = max([t for t, _ in canary] + [1.0])
    return {
        "width": WIDTH, "height": HEIGHT, "pad": PAD, "unit": unit, "y_max": y_max, "x_max": x_max,
        "canary": _polyline(canary, x_max, y_max), "stable": _polyline(stable, x_max, y_max),
        "limit_y": None if limit is None else HEIGHT - PAD - limit * (HEIGHT - 2 * PAD) / y_max,
        "limit": limit,
    }


def write(directory: str, stack: str, image: str, summary: dict, outcome: str,
          threshold: float) -> str:
    """Writes REPORT.json and REPORT.html (configured secrets masked); returns the JSON path."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(directory, f"{stack}-{stamp}-{image.replace('/', '_').replace(':', '_')}")
    report = redact.current().value({"stack": stack, "image": image, "outcome": outcome, "at": stamp,
                                     **summary})
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2)
    series = summary.get("series") or []
    page = _env.get_template("report.html.j2").render(
        r={**EMPTY, **report}, esc=html.escape,
        charts=[("5xx error rate", chart(series, "error_rate", "%", limit=threshold)),
                ("p95 latency", chart(series, "p95", "ms", scale=1000))] if series else [])
    with open(base + ".html", "w") as f:
        f.write(redact.current().text(page))
    return base + ".json"
