"""The analysis as files: a JSON report and an HTML page with charts of the canary
against stable check by check (real traffic's 5xx rate and p95 latency, the health
checks), the limits the verdict used and the decision point."""

from __future__ import annotations

import json
import os
import time

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from .. import redact
from . import report_charts, report_data

_env = Environment(loader=FileSystemLoader(os.path.join(os.path.dirname(__file__), "..", "templates")),
                   autoescape=select_autoescape(["html"]))

_NO_TRAFFIC = {"requests": 0, "errors": 0, "error_rate": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
# What the page shows for a canary that never got to its analysis (it did not start).
EMPTY = {"seconds": 0, "checks": 0, "probes": 0, "probe_failures": 0, "error_rate": 0.0,
         "canary": _NO_TRAFFIC, "stable": _NO_TRAFFIC}
# plotly.js, written once beside the reports; named by its version, so a report written
# by another version keeps the one it was drawn with.
PLOTLY_JS = f"plotly-{get_plotlyjs_version()}.min.js"


def write_plotly_js(directory: str) -> str:
    path = os.path.join(directory, PLOTLY_JS)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"  # whole or absent: another run may read it now
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(get_plotlyjs())
        os.replace(tmp, path)
    return path


def render(report: dict, view: report_data.Page) -> str:
    """The HTML page of a (redacted) report."""
    charts = [Markup(report_charts.html(c, view.decision)) for c in view.charts]
    return _env.get_template("report.html.j2").render(
        r={**EMPTY, **report}, view=view, charts=charts, plotly_js=PLOTLY_JS if charts else None,
        colors=report_charts.DECISION_COLORS)


def write(directory: str, stack: str, image: str, summary: dict, outcome: str,
          threshold: float) -> str:
    """Writes REPORT.json and REPORT.html (configured secrets masked), and plotly.js
    beside them when the page has charts; returns the JSON path."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(directory, f"{stack}-{stamp}-{image.replace('/', '_').replace(':', '_')}")
    report = redact.current().value({"stack": stack, "image": image, "outcome": outcome, "at": stamp,
                                     **summary})
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2)
    view = report_data.page(report, threshold)
    if view.charts:
        write_plotly_js(directory)
    page = render(report, view)
    with open(base + ".html", "w") as f:
        f.write(redact.current().text(page))
    return base + ".json"
