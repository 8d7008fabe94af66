"""Server-rendered SVG charts: metric curves by step, and a parameter against a metric.

Plain SVG needs no script library and renders before any JavaScript runs. Every drawn series is a
`<path>` with one `M`/`L` command per point and a `data-points` count, so tests and users can check
what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#4f46e5",
           "#a16207"]
# Beyond this many curves, colours stop telling them apart: draw them grey and colour only the highlighted.
MAX_COLOURED = len(PALETTE)
# Markers (with a tooltip each) only where they stay readable.
MAX_MARKERS = 60

W, H = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 34


@dataclass
class Series:
    """One curve: its label, points, and how to draw it."""

    label: str
    points: Sequence[tuple[float, float]]
    colour: str | None = None
    highlight: bool = False
    dashed: bool = False
    iteration_id: int | None = None


def fmt(value: float) -> str:
    """Numbers as a chart tick or a table cell shows them."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    # 1-2-5 steps, as people round axis labels.
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    n = 0
    while first + n * step <= hi + step * 1e-9:
        ticks.append(round(first + n * step, 12))
        n += 1
    return ticks


def _domain(values: list[float], log: bool) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and (not log or v > 0)]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if lo == hi:
        pad = abs(lo) * 0.05 or 0.5
        return (lo - pad, hi + pad)
    pad = (hi - lo) * 0.04
    return (lo - pad, hi + pad)


class _Scale:
    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float, log: bool = False) -> None:
        self.lo, self.hi, self.out_lo, self.out_hi, self.log = lo, hi, out_lo, out_hi, log

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(value)
        return self.out_lo + (value - self.lo) / (self.hi - self.lo) * (self.out_hi - self.out_lo)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            exps = range(math.ceil(self.lo), math.floor(self.hi) + 1)
            return [(10.0**e, fmt(10.0**e)) for e in exps] or [(10**self.lo, fmt(10**self.lo))]
        return [(t, fmt(t)) for t in _ticks(self.lo, self.hi)]


def _frame(
    x: _Scale, y: _Scale, x_label: str, y_label: str, x_ticks: list[tuple[float, str]] | None = None,
    integer_x: bool = False, w: int = W, h: int = H,
) -> list[str]:
    parts = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{w - LEFT - RIGHT}" height="{h - TOP - BOTTOM}"/>']
    for value, label in y.ticks():
        py = y(value)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{w - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for value, label in x_ticks if x_ticks is not None else x.ticks():
        if integer_x and value != int(value):
            continue  # steps are whole numbers
        px = x(value)
        parts.append(f'<line class="grid" y1="{TOP}" y2="{h - BOTTOM}" x1="{px:.1f}" x2="{px:.1f}"/>')
        parts.append(f'<text class="tick" x="{px:.1f}" y="{h - BOTTOM + 14}" text-anchor="middle">'
                     f"{escape(label)}</text>")
    parts.append(f'<text class="axis-label" x="{(LEFT + w - RIGHT) / 2}" y="{h - 4}" text-anchor="middle">'
                 f"{escape(x_label)}</text>")
    parts.append(f'<text class="axis-label" x="12" y="{TOP + (h - TOP - BOTTOM) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + (h - TOP - BOTTOM) / 2})">{escape(y_label)}</text>')
    return parts


def _svg(parts: list[str], title: str, kind: str, w: int = W, h: int = H) -> Markup:
    return Markup(
        f'<svg class="chart {kind}" viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet">' + "".join(parts) + "</svg>"
    )


def line_chart(
    series: Sequence[Series], *, y_label: str, x_label: str = "step", log_y: bool = False, small: bool = False,
    legend: bool = False,
    x_domain: tuple[float, float] | None = None,
) -> Markup:
    """Curves by step. Non-finite values (a diverged loss) break the line rather than wreck the scale;
    `small` draws a compact chart (a DDP rank's card) whose labels stay readable at that size; `legend`
    keys even a single curve (the compare page, where each curve is a run to name); `x_domain` fixes the
    x axis (charts drawn on the same time axis)."""
    w, h = (360, 170) if small else (W, H)
    xs = [p[0] for s in series for p in s.points]
    ys = [p[1] for s in series for p in s.points]
    if not xs:
        return Markup('<p class="empty">No points.</p>')
    log_y = log_y and any(v > 0 for v in ys if math.isfinite(v))
    x = _Scale(*(x_domain or _domain([float(v) for v in xs], False)), LEFT, w - RIGHT)
    y = _Scale(*_domain(ys, log_y), h - BOTTOM, TOP, log=log_y)
    parts = _frame(x, y, x_label, y_label + (" (log)" if log_y else ""), integer_x=True, w=w, h=h)
    coloured = len(series) <= MAX_COLOURED
    # Highlighted curves are drawn last, on top of the others.
    ordered = sorted(enumerate(series), key=lambda pair: pair[1].highlight)
    for n, s in ordered:
        colour = s.colour or (PALETTE[n % len(PALETTE)] if coloured or s.highlight else "#94a3b8")
        commands, drawn, pen_down = [], 0, False
        for step, value in s.points:
            if not math.isfinite(value) or (log_y and value <= 0):
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{x(step):.1f},{y(value):.1f}")
            pen_down, drawn = True, drawn + 1
        classes = "series" + (" highlight" if s.highlight else "") + (" dashed" if s.dashed else "") + (
            "" if coloured or s.highlight else " muted")
        it_attr = f' data-iteration="{s.iteration_id}"' if s.iteration_id is not None else ""
        parts.append(f'<g class="{classes}" data-label="{escape(s.label)}" data-points="{drawn}"{it_attr}>'
                     f"<title>{escape(s.label)}</title>"
                     f'<path d="{" ".join(commands)}" stroke="{colour}"/>')
        if drawn <= MAX_MARKERS and len(series) <= 5:
            for step, value in s.points:
                if math.isfinite(value) and not (log_y and value <= 0):
                    parts.append(f'<circle cx="{x(step):.1f}" cy="{y(value):.1f}" r="2.5" fill="{colour}">'
                                 f"<title>{escape(s.label)}: step {step}, value {fmt(value)}</title></circle>")
        parts.append("</g>")
    svg = _svg(parts, f"{y_label} by {x_label}", "line", w, h)
    if (2 if not legend else 1) <= len(series) <= MAX_COLOURED:
        # Colours only help with a key saying which curve is which.
        keys = "".join(
            f'<span><i style="background:{s.colour or PALETTE[n % len(PALETTE)]}"></i>{escape(s.label)}</span>'
            for n, s in enumerate(series)
        )
        svg += Markup(f'<div class="legend">{keys}</div>')
    return svg


@dataclass
class Dot:
    """One child in a parameter-against-metric chart."""

    x: str
    y: float
    label: str
    highlight: bool = False
    iteration_id: int | None = None


def scatter_chart(dots: Sequence[Dot], *, x_label: str, y_label: str) -> Markup:
    """A parameter (numeric, on a log axis when it spans decades, or categorical) against a metric."""
    dots = [d for d in dots if math.isfinite(d.y)]
    if not dots:
        return Markup('<p class="empty">No child has both values.</p>')
    numbers = [_number(d.x) for d in dots]
    numeric = all(v is not None for v in numbers)
    ys = [d.y for d in dots]
    y = _Scale(*_domain(ys, False), H - BOTTOM, TOP)
    if numeric:
        values = [float(v) for v in numbers if v is not None]
        log_x = min(values) > 0 and max(values) / min(values) >= 100
        x = _Scale(*_domain(values, log_x), LEFT, W - RIGHT, log=log_x)
        positions = [x(v) for v in values]
        parts = _frame(x, y, x_label + (" (log)" if log_x else ""), y_label)
    else:
        categories = sorted({d.x for d in dots})
        slot = (W - LEFT - RIGHT) / len(categories)
        where = {c: LEFT + slot * (n + 0.5) for n, c in enumerate(categories)}
        positions = [where[d.x] for d in dots]
        x = _Scale(0, 1, LEFT, W - RIGHT)
        shown = categories if len(categories) <= 12 else categories[:: math.ceil(len(categories) / 12)]
        ticks = [((where[c] - LEFT) / (W - LEFT - RIGHT), c[:14]) for c in shown]
        parts = _frame(x, y, x_label, y_label, x_ticks=ticks)
    parts.append('<g class="dots">')
    for d, px in sorted(zip(dots, positions, strict=True), key=lambda pair: pair[0].highlight):
        cls = "dot highlight" if d.highlight else "dot"
        it_attr = f' data-iteration="{d.iteration_id}"' if d.iteration_id is not None else ""
        parts.append(f'<circle class="{cls}" cx="{px:.1f}" cy="{y(d.y):.1f}" r="{6 if d.highlight else 4}"{it_attr}>'
                     f"<title>{escape(d.label)}: {escape(x_label)}={escape(d.x)}, {escape(y_label)}={fmt(d.y)}"
                     "</title></circle>")
    parts.append("</g>")
    return _svg(parts, f"{y_label} against {x_label}", "scatter")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
