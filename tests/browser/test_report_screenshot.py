"""The analysis report as a person sees it: rendered by headless Chromium, its charts
checked from the screenshot's pixels (series colours inside the plot areas, which are
found by their background colour), and hostile text from the app shown as text (the
document Chromium built, read back). Screenshots are kept as artifacts."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from canary.analysis import report
from canary.analysis.report_charts import COLORS, DECISION_COLORS, PLOT_BG
from tests import analysis_fixtures as fx

from .conftest import keep

WIDTH, HEIGHT = 1280, 1700
TOLERANCE = 12  # per channel: a line's or marker's core pixels are its exact colour


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def screenshot(html: Path, png: Path) -> Image.Image:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: scripts/setup installs it"
    # --virtual-time-budget: the page's scripts (plotly drawing the charts) run to
    # completion before the picture is taken. Root needs --no-sandbox.
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--no-first-run", f"--user-data-dir={png.parent / 'chromium-profile'}",
           f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=15000", f"--screenshot={png}",
           html.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and png.is_file(), r.stderr[-2000:]
    shutil.rmtree(png.parent / "chromium-profile", ignore_errors=True)
    keep(png)
    return Image.open(png).convert("RGB")


def _runs(flags: list[bool], min_length: int, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) runs of True at least min_length long, bridging gaps up to max_gap
    (grid and threshold lines cross a plot area)."""
    runs, start, last = [], None, None
    for i, on in enumerate(flags):
        if not on:
            continue
        if start is None or i - last > max_gap + 1:
            if start is not None:
                runs.append((start, last + 1))
            start = i
        last = i
    if start is not None:
        runs.append((start, last + 1))
    return [(a, b) for a, b in runs if b - a >= min_length]


def plot_areas(img: Image.Image) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the charts' plot areas, row by row."""
    bg = rgb(PLOT_BG)
    w, h = img.size
    px = img.load()
    mask = [[px[x, y] == bg for x in range(w)] for y in range(h)]
    boxes = []
    for top, bottom in _runs([sum(row) >= 150 for row in mask], min_length=60, max_gap=8):
        columns = [sum(mask[y][x] for y in range(top, bottom)) >= (bottom - top) // 3 for x in range(w)]
        boxes += [(left, top, right, bottom) for left, right in _runs(columns, min_length=200, max_gap=8)]
    return boxes


def count(img: Image.Image, box, colour: str) -> int:
    target = rgb(colour)
    region = img.crop(box)
    return sum(1 for p in region.get_flattened_data() if all(abs(a - b) <= TOLERANCE for a, b in zip(p, target)))


def render(summary: dict, folder: Path) -> Path:
    json_path = report.write(str(folder), "production", "odoo:v2", summary, outcome=summary["decision"],
                             threshold=5)
    return Path(json_path).with_suffix(".html")


def colours_per_chart(img, boxes):
    """(stable, canary) pixels in each plot area."""
    return [(count(img, b, COLORS["stable"]), count(img, b, COLORS["canary"])) for b in boxes]


def assert_both_series(per_chart, pixels):
    """Four plot areas; both series drawn in each chart that has both (the health-check
    failures chart, the third, has the canary alone: stable is probed for latency only)."""
    assert len(per_chart) == 4, per_chart
    for i in (0, 1, 3):
        stable, canary = per_chart[i]
        assert stable >= pixels and canary >= pixels, (i, per_chart)


def test_report_charts_show_stable_and_canary(artifacts):
    img = screenshot(render(fx.slow_canary(), artifacts), artifacts / "slow-canary.png")
    boxes = plot_areas(img)
    per_chart = colours_per_chart(img, boxes)
    print("plot areas:", boxes, "stable/canary pixels:", per_chart)
    # Row by row: real traffic 5xx, real traffic p95, health-check failures, health-check latency.
    assert_both_series(per_chart, 150)
    assert per_chart[2][1] >= 150 and per_chart[2][0] == 0, per_chart
    # The decision (fail at check 6) drawn in every chart.
    assert all(count(img, b, DECISION_COLORS["fail"]) >= 30 for b in boxes)


def test_one_check_report_draws_markers(artifacts):
    img = screenshot(render(fx.one_check_pass(), artifacts), artifacts / "one-check.png")
    per_chart = colours_per_chart(img, plot_areas(img))
    print("stable/canary pixels:", per_chart)
    # One point each: no line, so these pixels are markers (a circle of 11 px, a diamond of 9 px).
    assert_both_series(per_chart, 15)
    assert per_chart[2][1] >= 15


def test_the_check_fails_when_the_charts_do_not_render(artifacts):
    """Without plotly.js beside the page (copied without it) no chart is drawn, and the
    pixel checks above would see it."""
    html = render(fx.slow_canary(), artifacts)
    (artifacts / report.PLOTLY_JS).unlink()
    img = screenshot(html, artifacts / "without-plotly-js.png")
    assert plot_areas(img) == []
    whole = (0, 0) + img.size
    assert count(img, whole, COLORS["stable"]) == count(img, whole, COLORS["canary"]) == 0


def test_a_canary_that_never_started_has_a_report_without_charts(artifacts):
    img = screenshot(render(fx.NEVER_STARTED, artifacts), artifacts / "never-started.png")
    assert plot_areas(img) == []
    assert count(img, (0, 0) + img.size, DECISION_COLORS["fail"]) > 500  # the banner says fail


def test_equal_series_both_stay_visible(artifacts):
    """A canary exactly as good as stable: its line lies on stable's, and both show."""
    s = fx.slow_canary()
    for p in s["series"]:
        p.update(canary_error_rate=p["stable_error_rate"], canary_p95=p["stable_p95"],
                 probe_p50=p["stable_probe_p50"])
    img = screenshot(render(s, artifacts), artifacts / "equal-series.png")
    per_chart = colours_per_chart(img, plot_areas(img))
    print("stable/canary pixels:", per_chart)
    assert_both_series(per_chart, 150)


# What a container may log (quoted in a failure reason) or a hostile config may name.
HOSTILE = ('<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
           '<a href="javascript:document.title=\'pwned\'">click</a><b>bold?</b> &amp; done')
TITLE = "Canary analysis: odoo:v2 (fail)"


def dump_dom(html: Path) -> str:
    """The document as Chromium built it, once the page's scripts ran."""
    chromium = shutil.which("chromium")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={html.parent / 'chromium-dom-profile'}", "--virtual-time-budget=15000", "--dump-dom",
           html.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    shutil.rmtree(html.parent / "chromium-dom-profile", ignore_errors=True)
    assert r.returncode == 0 and "<body" in r.stdout, r.stderr[-2000:]
    return r.stdout


class Document(HTMLParser):
    """The elements of a document (tag names, in order), its title and the text of its
    decision box."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.title = self.decision = ""
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        cls = dict(attrs).get("class") or ""
        self._in.append("decision" if "decision" in cls.split() else tag)

    def handle_endtag(self, tag):
        if self._in:
            self._in.pop()

    def handle_data(self, data):
        if self._in and self._in[-1] == "title":
            self.title += data
        if "decision" in self._in:
            self.decision += data


def test_hostile_text_is_shown_as_text(artifacts):
    summary = {**fx.slow_canary(), "reason": f"the canary exited; its log: {HOSTILE}"}
    html = render(summary, artifacts)
    doc = Document(dump_dom(html))
    img = screenshot(html, artifacts / "hostile-text.png")
    print("title:", doc.title, "decision:", doc.decision[:300])
    assert doc.title == TITLE  # no injected script ran
    assert "img" not in doc.tags and "a" not in doc.tags  # no element made of the log line
    assert HOSTILE in " ".join(doc.decision.split())  # the markup, as text (its &amp; too)
    assert len(plot_areas(img)) == 4  # the page's own scripts still draw every chart


def test_the_pages_policy_stops_markup_that_slipped_through(artifacts):
    """Defense in depth: markup pasted into the page as it is (as an escaping bug would
    leave it) does not run: the page's Content-Security-Policy allows its own scripts only."""
    html = render(fx.slow_canary(), artifacts)
    injected = html.with_name("injected.html")
    injected.write_text(html.read_text().replace("</body>", HOSTILE + "</body>"))
    doc = Document(dump_dom(injected))
    img = screenshot(injected, artifacts / "injected.png")
    assert "img" in doc.tags and "script" in doc.tags  # there, as a bug would leave them...
    assert doc.title == TITLE  # ...but neither the script nor the handler ran
    assert len(plot_areas(img)) == 4
