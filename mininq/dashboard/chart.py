"""The dashboard's activity chart (SPEC §11) as inline SVG, drawn on the server.

Pure: takes history points, returns markup. Stacked bars of attempts per
time bucket by outcome (completed, retried, dead) on the left axis, the p99
attempt duration as a line on the right axis. Colours come from the
dashboard's CSS classes (its light and dark variables), never from inline
styles, which the page's CSP forbids. Each chart is drawn twice, wide and
narrow, and CSS shows the one that fits: a viewBox scales its text with its
width, so one drawing can't be readable at both 1280 and 390 px.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from markupsafe import Markup, escape

from mininq.metrics.history import MINUTE_MS, Point


@dataclass(frozen=True)
class Range:
    key: str  # the query value
    label: str  # the switch's text
    buckets: int
    step_ms: int
    per: str  # "per minute"
    span: str  # "the last hour"
    reread_s: float  # how long its data may be reused between polls


# Summing a week of minutes of every queue costs a few hundred ms; a week's
# hourly bars don't need that every two seconds.
RANGES = (
    Range("1h", "1 h", 60, MINUTE_MS, "per minute", "the last hour", 0),
    Range("24h", "24 h", 96, 15 * MINUTE_MS, "per 15 min", "the last 24 hours", 10),
    Range("7d", "7 d", 168, 60 * MINUTE_MS, "per hour", "the last 7 days", 30),
)
_BY_KEY = {r.key: r for r in RANGES}


def parse_range(value: str | None) -> Range:
    """The range a query asks for; the first (1 h) for anything else."""
    return _BY_KEY.get(value or "", RANGES[0])


@dataclass(frozen=True)
class _Size:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    label_every: dict[str, int]  # range key -> buckets between time labels


_WIDE = _Size(960, 240, 46, 58, 14, 26, {"1h": 10, "24h": 12, "7d": 24})
_NARROW = _Size(400, 230, 34, 50, 14, 26, {"1h": 15, "24h": 24, "7d": 48})


def nice_ceiling(value: float, steps: tuple[int, ...] = (2, 5), least: int = 1) -> float:
    """The smallest 1, step or 10 × 10^k at or above `value`, and at least `least`."""
    if value <= least:
        return least
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, *steps, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def count_ceiling(value: float) -> float:
    """Top of the count axis: 2, 4 or 10 × 10^k, so the middle tick is a whole number."""
    return nice_ceiling(value, (2, 4), least=2)


def count_label(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1000:
        return f"{n / 1000:g}k"
    return f"{n:g}"


def ms_label(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def _time_label(start_ms: int, rng: Range) -> str:
    t = time.gmtime(start_ms / 1000)
    if rng.key == "7d":
        return time.strftime("%a %d", t)
    return time.strftime("%H:%M", t)


def _bucket_title(p: Point, rng: Range) -> str:
    t = time.gmtime(p.start / 1000)
    when = time.strftime("%a %d %H:%M UTC" if rng.key == "7d" else "%H:%M UTC", t)
    p99 = p.percentile(0.99)
    text = f"{when}: {p.completed:,} completed, {p.retried:,} retried, {p.dead:,} dead"
    return text + (f", p99 {ms_label(p99)}" if p99 is not None else "")


def summary(points: list[Point]) -> dict[str, int | None]:
    """Totals over the whole range, for the legend: counts and p99 of all attempts."""
    if not points:
        return {"completed": 0, "retried": 0, "dead": 0, "p99": None}
    width = len(points[0].values)
    merged = Point(points[0].start, tuple(sum(p.values[i] for p in points) for i in range(width)))
    return {"completed": merged.completed, "retried": merged.retried, "dead": merged.dead,
            "p99": merged.percentile(0.99)}


def svg(points: list[Point], rng: Range, queue: str | None, narrow: bool = False) -> Markup:
    """One drawing of the chart; `queue` is only named in its title (escaped)."""
    size = _NARROW if narrow else _WIDE
    plot_w = size.width - size.left - size.right
    plot_h = size.height - size.top - size.bottom
    bottom = size.top + plot_h
    n = max(1, len(points))
    slot = plot_w / n
    bar = max(slot * 0.8, 0.6)
    y_max = count_ceiling(max((p.deliveries for p in points), default=0))
    p99s = [p.percentile(0.99) for p in points]
    ms_max = nice_ceiling(max((v for v in p99s if v is not None), default=0))

    def y_count(v: float) -> float:
        return bottom - v / y_max * plot_h

    def y_ms(v: float) -> float:
        return bottom - v / ms_max * plot_h

    suffix = "n" if narrow else "w"
    who = f"queue {queue}" if queue else "all queues"
    title = f"Delivery attempts {rng.per} by outcome and p99 duration, {rng.span}, {who}"
    out: list[str] = [
        (f'<svg class="chart-svg chart-{"narrow" if narrow else "wide"}" '
         f'viewBox="0 0 {size.width} {size.height}" width="100%" role="img" '
         f'aria-labelledby="chart-t-{suffix}" xmlns="http://www.w3.org/2000/svg">'),
        f'<title id="chart-t-{suffix}">{escape(title)}</title>',
    ]
    # Horizontal grid and both axes' labels at 0, half and the top.
    for frac in (0, 0.5, 1):
        y = bottom - frac * plot_h
        out.append(f'<line class="grid" x1="{size.left}" x2="{size.width - size.right}" '
                   f'y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{size.left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{count_label(frac * y_max)}</text>')
        out.append(f'<text class="axis p99-axis" x="{size.width - size.right + 6}" y="{y + 4:.1f}">'
                   f'{ms_label(frac * ms_max)}</text>')
    out.append(f'<text class="axis-title" x="{size.left}" y="{size.top - 4}">attempts {rng.per}</text>')
    out.append(f'<text class="axis-title p99-axis" x="{size.width - size.right}" y="{size.top - 4}" '
               f'text-anchor="end">p99</text>')
    # Stacked bars: one path per outcome keeps the SVG small.
    paths = {"completed": [], "retried": [], "dead": []}
    for i, p in enumerate(points):
        x = size.left + i * slot + (slot - bar) / 2
        base = 0
        for name, value in (("completed", p.completed), ("retried", p.retried), ("dead", p.dead)):
            if value:
                top, low = y_count(base + value), y_count(base)
                paths[name].append(f"M{x:.1f} {top:.1f}h{bar:.1f}v{low - top:.1f}h{-bar:.1f}z")
                base += value
    for name, parts in paths.items():
        if parts:
            out.append(f'<path class="bar-{name}" d="{"".join(parts)}"/>')
    # The p99 line, broken where a bucket had no timed attempt; a lone point is a dot.
    line: list[str] = []
    dots: list[str] = []
    for i, v in enumerate(p99s):
        if v is None:
            continue
        x, y = size.left + (i + 0.5) * slot, y_ms(v)
        joined = i > 0 and p99s[i - 1] is not None
        line.append(f"{'L' if joined else 'M'}{x:.1f} {y:.1f}")
        if not joined and (i + 1 == len(p99s) or p99s[i + 1] is None):
            dots.append(f'<circle class="p99-dot" cx="{x:.1f}" cy="{y:.1f}" r="3"/>')
    if line:
        out.append(f'<path class="p99-line" d="{"".join(line)}"/>')
    out.extend(dots)
    # Time labels on the x axis, at round bucket starts.
    every = size.label_every[rng.key]
    for i, p in enumerate(points):
        if (p.start // rng.step_ms) % every == 0:
            x = size.left + i * slot
            out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}"/>')
            out.append(f'<text class="axis" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
                       f'{_time_label(p.start, rng)}</text>')
    if not any(p.deliveries for p in points):
        out.append(f'<text class="empty-note" x="{size.left + plot_w / 2:.1f}" '
                   f'y="{size.top + plot_h / 2:.1f}" text-anchor="middle">'
                   f'No delivery attempts in {rng.span}</text>')
    # Hover targets with the bucket's numbers, for the buckets that have any
    # (not in the narrow drawing: phones don't hover).
    for i, p in enumerate(points):
        if p.deliveries and not narrow:
            x = size.left + i * slot
            out.append(f'<rect class="hit" x="{x:.1f}" y="{size.top}" width="{slot:.1f}" '
                       f'height="{plot_h}"><title>{escape(_bucket_title(p, rng))}</title></rect>')
    out.append("</svg>")
    return Markup("".join(out))
