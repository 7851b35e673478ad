"""The activity chart's SVG (pure drawing) and its fragment from a real server:
well-formed, small, the outcome bars and the p99 line where the data says, and
user text escaped (a queue filter holding <script>)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
from support import ApiClient

from mininq.dashboard import chart
from mininq.metrics import history as h

XSS = "<script>alert(1)</script>"
SVG = "{http://www.w3.org/2000/svg}"
START = 1_764_000_000_000 - 1_764_000_000_000 % (7 * 86_400_000)


def _point(start: int, completed: int = 0, retried: int = 0, dead: int = 0,
           *durations: int) -> h.Point:
    hist = [0] * len(h.HIST)
    for d in durations:
        hist[h.bucket_of(d)] += 1
    return h.Point(start, (0, completed, retried, dead, *hist))


def _points(rng: chart.Range, filled: bool) -> list[h.Point]:
    return [
        _point(START + i * rng.step_ms, 100 + i, i % 3, i % 5, 40, 90, 2000) if filled
        else _point(START + i * rng.step_ms)
        for i in range(rng.buckets)
    ]


@pytest.mark.parametrize("rng", chart.RANGES, ids=lambda r: r.key)
@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("filled", [False, True])
def test_every_drawing_is_well_formed_and_small(rng: chart.Range, narrow: bool, filled: bool):
    text = str(chart.svg(_points(rng, filled), rng, None, narrow))
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("width") == "100%"
    assert root.get("viewBox").startswith("0 0 ")
    assert "style=" not in text, "inline styles are refused by the dashboard's CSP"
    assert len(text) < 40_000, f"{rng.key}: {len(text)} bytes"
    labels = [t.text for t in root.iter(f"{SVG}text") if "axis" in t.get("class").split()]
    assert len(labels) >= 6 + 3, labels  # both axes' ticks and some times
    assert (root.find(f"{SVG}path[@class='p99-line']") is not None) == filled
    assert any("No delivery attempts" in (t.text or "") for t in root.iter(f"{SVG}text")) != filled


def test_bars_stack_by_outcome_and_the_line_breaks_on_gaps():
    rng = chart.RANGES[0]
    points = [_point(START + i * h.MINUTE_MS) for i in range(rng.buckets)]
    points[10] = _point(points[10].start, 8, 2, 0, 30, 40)
    points[11] = _point(points[11].start, 4, 0, 0, 50)
    points[40] = _point(points[40].start, 0, 0, 1)  # dead without a duration: no p99
    points[59] = _point(points[59].start, 1, 0, 0, 900)  # a lone p99 point
    root = ET.fromstring(str(chart.svg(points, rng, None)))
    d = {p.get("class"): p.get("d") for p in root.iter(f"{SVG}path")}
    assert d["bar-completed"].count("M") == 3 and d["bar-retried"].count("M") == 1
    assert d["bar-dead"].count("M") == 1
    assert d["p99-line"].count("M") == 2 and d["p99-line"].count("L") == 1
    assert len(root.findall(f"{SVG}circle")) == 1
    tips = [t.text for r in root.iter(f"{SVG}rect") for t in r.iter(f"{SVG}title")]
    assert len(tips) == 4 and "8 completed, 2 retried, 0 dead" in tips[0]
    # Minute 10's completed part: 8 attempts on a scale up to 10, of a 200-unit plot.
    heights = [float(v) for v in re.findall(r"v(-?[0-9.]+)", d["bar-completed"])]
    assert max(heights) == pytest.approx(200 * 8 / 10, abs=0.2)


def test_queue_name_in_the_drawing_is_escaped():
    rng = chart.RANGES[0]
    text = str(chart.svg(_points(rng, True), rng, XSS))
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    ET.fromstring(text)


def test_labels():
    assert [chart.nice_ceiling(v) for v in (0, 1, 3, 10, 11, 260, 999, 1001)] == [
        1, 1, 5, 10, 20, 500, 1000, 2000]
    assert [chart.count_ceiling(v) for v in (0, 1, 3, 5, 10, 11, 260, 4001)] == [
        2, 2, 4, 10, 10, 20, 400, 10000]
    assert chart.count_label(2500) == "2.5k" and chart.ms_label(1500) == "1.5 s"
    assert chart.parse_range("7d").buckets == 168 and chart.parse_range("bogus").key == "1h"


# -- the fragment and the page from a real server --------------------------------------


def _html(api: ApiClient, path: str) -> str:
    resp = api.request("GET", path, headers={"Accept": "text/html"})
    assert resp.status == 200, f"GET {path}: HTTP {resp.status}: {resp.text[:500]}"
    return resp.text


def test_chart_fragment_escapes_the_queue_filter(api: ApiClient):
    text = _html(api, f"/dashboard/fragments/chart?range=24h&chart_queue={quote(XSS)}")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "attempts per 15 min" in text and "Completed <b>0</b>" in text


def test_page_shows_the_chart_above_the_queues(api: ApiClient):
    text = _html(api, "/dashboard?range=7d")
    assert text.index('id="chart"') < text.index('id="queues"')
    assert re.search(r'value="7d" checked', text) and "attempts per hour" in text
