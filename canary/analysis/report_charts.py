"""The report's charts, drawn with Plotly from report_data's charts.

Plotly (the PyPI package, kept by its authors, with plotly.js bundled in it) needs no
build step and no network: report.py writes its JS once beside the reports and every
page loads it from there, so a report works offline (laptop, CI artifact) at tens of KB
instead of carrying 4.8 MB of JS each.
"""

from __future__ import annotations

import html as html_module
import math
import textwrap

import plotly.graph_objects as go

from .report_data import Chart, Decision

# Colour-blind safe (Okabe-Ito); no other element of a chart uses these two, so a
# screenshot can tell the series apart by colour.
COLORS = {"stable": "#0072B2", "canary": "#D55E00"}
DECISION_COLORS = {"pass": "#009E73", "fail": "#B00020", "inconclusive": "#E69F00"}
PLOT_BG = "#F3F5F9"
LIMIT_COLOR, RELATIVE_COLOR = "#444444", "#CC79A7"
HEIGHT = 400
# No mode bar (drag zooms, a double click resets); the width follows the page.
CONFIG = {"displayModeBar": False, "responsive": True}

# Stable below as a wide solid line with large circles, the canary on top dashed with
# smaller diamonds: equal values still show both.
_STYLE = {
    "stable": {"line": {"width": 3.5}, "marker": {"symbol": "circle", "size": 13}},
    "canary": {"line": {"width": 2.5, "dash": "dash"}, "marker": {"symbol": "diamond", "size": 9}},
    "secondary": {"line": {"width": 1.5, "dash": "dot"}, "marker": {"symbol": "triangle-up", "size": 8}},
}


def _series_traces(c: Chart) -> list[go.Scatter]:
    traces = []
    for s in sorted(c.series, key=lambda s: s.role != "stable"):  # stable first: beneath
        style = _STYLE["secondary" if s.secondary else s.role]
        colour = COLORS[s.role]
        size = style["marker"]["size"] * (1 if len(c.checks) <= 15 else 0.7)  # many checks: smaller
        traces.append(go.Scatter(
            x=c.checks, y=s.y, customdata=c.seconds, name=s.name, mode="lines+markers", cliponaxis=False,
            line={**style["line"], "color": colour},
            marker={**style["marker"], "size": size, "color": colour, "line": {"width": 1, "color": "white"}},
            hovertemplate=f"{s.name}: %{{y:.3~f}} {c.unit}<br>check %{{x}} (%{{customdata:.0f}} s)<extra></extra>"))
    return traces


def _limit_traces(c: Chart) -> list[go.Scatter]:
    traces = []
    lo, hi = c.checks[0] - 0.5, c.checks[-1] + 0.5
    for lim in c.limits:
        if all(v is None for v in lim.y):
            continue
        if lim.relative:  # one short tick a check, joined: visible with a single check too
            traces.append(go.Scatter(
                x=c.checks, y=lim.y, name=lim.name, mode="lines+markers",
                line={"color": RELATIVE_COLOR, "width": 2, "dash": "dot"},
                marker={"symbol": "line-ew", "size": 18, "line": {"width": 3, "color": RELATIVE_COLOR}},
                hovertemplate=f"limit {lim.name}: %{{y:.3~f}} {c.unit}<extra></extra>"))
        else:  # a fixed threshold spans the whole chart
            value = next(v for v in lim.y if v is not None)
            traces.append(go.Scatter(
                x=[lo, hi], y=[value, value], name=lim.name, mode="lines",
                line={"color": LIMIT_COLOR, "width": 1.5, "dash": "longdash"},
                hovertemplate=f"{lim.name}<extra></extra>"))
    return traces


def _y_axis(c: Chart) -> dict:
    values = [v for s in c.series for v in s.y if v is not None]
    values += [v for lim in c.limits for v in lim.y if v is not None]
    axis = {"title": {"text": c.y_title}, "gridcolor": "white", "zeroline": False,
            "ticksuffix": f" {c.unit}" if c.unit == "%" else ""}
    if c.log:
        positive = [v for v in values if v > 0]
        if c.note:  # no series value (no traffic): the limits with two decades below them
            positive.append(10.0)
        lo, hi = min(positive) / 1.6, max(positive) * 1.4
        # 1-2-5 ticks in plain numbers: plotly's own log ticks label 2 and 5 without their decade.
        steps = (1, 2, 5) if math.log10(hi / lo) <= 2 else (1, 3)
        ticks = [m * 10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in steps if lo <= m * 10 ** e <= hi]
        axis.update(type="log", range=[math.log10(lo), math.log10(hi)], tickvals=ticks,
                    ticktext=[f"{t:g}" for t in ticks])
    else:
        top = max(values + [1.0]) * 1.18
        axis.update(range=[-top * 0.04, top])  # a 0 marker clear of the tick labels
    return axis


def _x_axis(c: Chart) -> dict:
    axis = {"title": {"text": "check", "standoff": 6}, "showgrid": False, "zeroline": False,
            "range": [c.checks[0] - 0.5, c.checks[-1] + 0.5]}
    if len(c.checks) <= 20:  # every check labelled, with its time
        axis.update(tickvals=c.checks, ticktext=[f"{n}<br><span style='color:#777'>{t:.0f} s</span>"
                                                 for n, t in zip(c.checks, c.seconds)])
        axis["title"]["text"] = "check (seconds since the analysis started)"
    return axis


def _mark_decision(fig: go.Figure, d: Decision) -> None:
    if d.check is None:
        return
    colour = DECISION_COLORS.get(d.status, LIMIT_COLOR)
    fig.add_vline(x=d.check, line={"color": colour, "width": 3, "dash": "dash"}, layer="below")
    # Plotly reads a label as a subset of HTML (links included): the reason quotes the
    # app's logs, so it is shown as text, escaped line by line.
    label = html_module.escape(d.label, quote=False)
    fig.add_annotation(
        x=d.check, xref="x", y=1, yref="paper", yanchor="bottom", xanchor="right" if d.check > 1 else "left",
        text=f"<b>{label}</b>", showarrow=False, font={"color": colour, "size": 12},
        hovertext="<br>".join(html_module.escape(line, quote=False) for line in textwrap.wrap(d.reason, 70))
        or label)


def figure(c: Chart, d: Decision) -> go.Figure:
    fig = go.Figure(_limit_traces(c) + _series_traces(c))
    fig.update_layout(
        template="none", height=HEIGHT, plot_bgcolor=PLOT_BG, paper_bgcolor="white",
        font={"family": "system-ui, sans-serif", "size": 12, "color": "#222"},
        title={"text": c.title, "x": 0, "xanchor": "left", "y": 0.97, "font": {"size": 15}},
        margin={"l": 70, "r": 20, "t": 56, "b": 118},
        legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom",
                "font": {"size": 11}},
        hovermode="closest",
        xaxis=_x_axis(c),
        yaxis=_y_axis(c))
    if c.unjudged:
        fig.add_vrect(x0=c.checks[0] - 0.5, x1=c.checks[0] - 0.5 + c.unjudged, fillcolor="#888888",
                      opacity=0.14, line_width=0, layer="below")
        fig.add_annotation(x=c.checks[0] - 0.5, xref="x", xanchor="left", y=1, yref="paper", yanchor="bottom",
                           text=c.unjudged_why, showarrow=False, font={"size": 10, "color": "#555"})
    if c.note:
        fig.add_annotation(x=0.5, xref="paper", y=0.5, yref="paper", text=c.note, showarrow=False,
                           font={"size": 14, "color": "#666"})
    _mark_decision(fig, d)
    return fig


def html(c: Chart, d: Decision) -> str:
    """The chart as an HTML fragment; plotly.js is loaded by the page."""
    return figure(c, d).to_html(full_html=False, include_plotlyjs=False, div_id=c.key, config=CONFIG)
