"""The analysis as files: a JSON report and an HTML page with charts of the canary
against stable check by check (real traffic's 5xx rate and p95 latency, the health
checks), the limits the verdict used and the decision point.

The page shows text from the app (failure reasons quote container logs) and from config
(the image name): every value is escaped, and a Content-Security-Policy lets the page
run only plotly.js beside it and its own inline scripts, each by its hash, so markup
that ever slipped through could not run."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from .. import redact
from . import report_charts, report_data

# Every template this environment loads is HTML (select_autoescape(["html"]) never
# matched the name report.html.j2: nothing was escaped).
_env = Environment(loader=FileSystemLoader(os.path.join(os.path.dirname(__file__), "..", "templates")),
                   autoescape=True)

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


# Stands for the policy in the rendered page until the page is final (redacted). (No
# secret the redactor masks can match a part of it: those are 4 characters or more, no NUL.)
_CSP_MARK = "\x00csp\x00"
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.DOTALL)
# The page's own inline script: without plotly.js beside it, the tables stay and a note says why.
_PAGE_SCRIPT = ('if (!window.Plotly) { document.getElementById("no-charts").hidden = false;\n'
                ' document.getElementById("charts").hidden = true; }')


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def content_security_policy(scripts: list[str]) -> str:
    """Nothing but plotly.js from the page's folder and the inline `scripts` the page
    itself wrote (by their SHA-256: never one a value smuggled in); styles inline
    (plotly.js sets them as it draws); no plugins, frames, forms, base URL or network."""
    allowed = "'self' " + " ".join(sorted({_sha256(s) for s in scripts})) if scripts else "'none'"
    return (f"default-src 'none'; script-src {allowed}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'")


def render(report: dict, view: report_data.Page, redactor: redact.Redactor | None = None) -> str:
    """The HTML page of a (redacted) report, configured secrets masked by `redactor`.

    The policy names the scripts this function wrote (the charts', the page's own), as
    they are once masked, and is filled in last."""
    redactor = redactor or redact.Redactor()
    charts = [redactor.text(report_charts.html(c, view.decision)) for c in view.charts]
    scripts = [body for chart in charts for body in _INLINE_SCRIPT.findall(chart)]
    page = redactor.text(_env.get_template("report.html.j2").render(
        r={**EMPTY, **report}, view=view, charts=[Markup(c) for c in charts],
        plotly_js=PLOTLY_JS if charts else None, colors=report_charts.DECISION_COLORS, csp=_CSP_MARK,
        page_script=Markup(_PAGE_SCRIPT)))
    return page.replace(_CSP_MARK, content_security_policy([*scripts, _PAGE_SCRIPT] if charts else []), 1)


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
    with open(base + ".html", "w") as f:
        f.write(render(report, view, redact.current()))
    return base + ".json"
