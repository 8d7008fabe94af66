"""A many-parameter sweep drawn as SVG: a parallel-coordinates plot and a parameter-importance bar chart.

Parallel coordinates: one vertical axis per varied parameter and one for the metric; each child is one
`<polyline class="pc-line">` through its values, coloured by the metric (the best end yellow), dashed
when it failed or was killed. A numeric axis is linear, or logarithmic when its values are positive and
span two decades (learning rates); a categorical one spaces its values evenly. A child without a value
on an axis meets it at the `—` mark below the axis, so every child stays one whole line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from .charts import _Scale, fmt
from .data import as_number
from .importance import Importance

# A colour ramp from the worst metric value to the best (viridis' stops: readable, and in grey too).
RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
NO_VALUE = "#94a3b8"
H = 330
# Axes spread over about 720 px, each gap between 110 and 200 px.
PLOT_SPAN, MIN_GAP, MAX_GAP = 720, 110, 200
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 58, 44
MAX_CATEGORY_LABELS = 12


@dataclass
class Line:
    """One child: its parameter values, metric value and how to draw it."""

    label: str
    iteration_id: int
    values: dict[str, str]
    metric: float | None
    dashed: bool = False
    best: bool = False


def _ramp(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(t), len(RAMP) - 2)
    a, b = RAMP[i], RAMP[i + 1]
    mix = [round(int(a[k:k + 2], 16) + (int(b[k:k + 2], 16) - int(a[k:k + 2], 16)) * (t - i)) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in mix)


class _Axis:
    """Where a value sits on one vertical axis (`y` None: the child has no value there)."""

    def __init__(self, key: str, values: Sequence[str | float | None], top: float, bottom: float) -> None:
        self.key = key
        present = [v for v in values if v is not None]
        numbers = [v if isinstance(v, float) else as_number(v) for v in present]
        self.numeric = bool(present) and all(n is not None and math.isfinite(n) for n in numbers)
        self.top, self.bottom = top, bottom
        if self.numeric:
            finite = [float(n) for n in numbers if n is not None]
            lo, hi = min(finite), max(finite)
            self.log = lo > 0 and hi / lo >= 100
            if self.log:
                lo, hi = math.log10(lo), math.log10(hi)
            if lo == hi:
                lo, hi = lo - 1, hi + 1
            self.scale = _Scale(lo, hi, bottom, top, log=self.log)
        else:
            self.log = False
            self.categories = sorted({str(v) for v in present}, key=lambda c: (as_number(c) is None, as_number(c)
                                                                                or 0.0, c))

    def y(self, value: str | float | None) -> float | None:
        if value is None:
            return None
        if self.numeric:
            number = value if isinstance(value, float) else as_number(value)
            return self.scale(number) if number is not None else None
        n = len(self.categories)
        index = self.categories.index(str(value))
        return (self.top + self.bottom) / 2 if n == 1 else self.bottom - index * (self.bottom - self.top) / (n - 1)

    def ticks(self) -> list[tuple[float, str]]:
        if self.numeric:
            return [(self.scale(v), text) for v, text in self.scale.ticks()]
        shown = self.categories
        if len(shown) > MAX_CATEGORY_LABELS:
            shown = shown[:: math.ceil(len(shown) / MAX_CATEGORY_LABELS)]
        return [(y, c[:14]) for c in shown if (y := self.y(c)) is not None]


def parallel_chart(lines: Sequence[Line], keys: Sequence[str], metric: str, goal: str) -> Markup:
    """The parallel-coordinates plot of `lines` over the parameters `keys` and the `metric` axis."""
    gap = max(MIN_GAP, min(MAX_GAP, PLOT_SPAN // max(len(keys), 1)))
    width = LEFT + RIGHT + gap * len(keys)
    top, bottom = TOP, H - BOTTOM
    missing_y = bottom + 22
    axes = [_Axis(k, [line.values.get(k) for line in lines], top, bottom) for k in keys]
    axes.append(_Axis(metric, [line.metric if line.metric is not None and math.isfinite(line.metric) else None
                               for line in lines], top, bottom))
    xs = [LEFT + gap * n for n in range(len(axes))]
    scored = [line.metric for line in lines if line.metric is not None and math.isfinite(line.metric)]
    lo, hi = (min(scored), max(scored)) if scored else (0.0, 1.0)

    def colour(value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return NO_VALUE
        t = 0.5 if hi == lo else (value - lo) / (hi - lo)
        return _ramp(t if goal == "max" else 1 - t)

    parts = [f'<rect class="plot" x="0" y="0" width="{width}" height="{H}"/>']
    parts.append('<g class="pc-lines">')
    # The best child is drawn last, on top of the others.
    for line in sorted(lines, key=lambda ln: ln.best):
        points = []
        for axis, x in zip(axes, xs, strict=True):
            value = line.metric if axis is axes[-1] else line.values.get(axis.key)
            if axis is axes[-1] and (value is None or not math.isfinite(value)):
                value = None
            y = axis.y(value)
            points.append(f"{x:.1f},{(y if y is not None else missing_y):.1f}")
        classes = "pc-line" + (" dashed" if line.dashed else "") + (" best" if line.best else "")
        described = ", ".join(f"{k}={line.values.get(k, '—')}" for k in keys)
        parts.append(f'<polyline class="{classes}" data-iteration="{line.iteration_id}" points="{" ".join(points)}" '
                     f'stroke="{colour(line.metric)}"><title>{escape(line.label)}: {escape(described)}, '
                     f'{escape(metric)}={fmt(line.metric) if line.metric is not None else "—"}</title></polyline>')
    parts.append("</g>")
    for axis, x in zip(axes, xs, strict=True):
        is_metric = axis is axes[-1]
        parts.append(f'<g class="pc-axis{" metric" if is_metric else ""}" data-key="{escape(axis.key)}">')
        parts.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/>')
        name = axis.key if len(axis.key) <= 18 else axis.key[:17] + "…"
        parts.append(f'<text class="axis-label pc-name" x="{x}" y="{top - 34}" text-anchor="middle">'
                     f"<title>{escape(axis.key)}</title>{escape(name)}</text>")
        kind = "log" if axis.log else ("" if axis.numeric else "categorical")
        if kind:
            parts.append(f'<text class="tick" x="{x}" y="{top - 18}" text-anchor="middle">({kind})</text>')
        for y, text in axis.ticks():
            parts.append(f'<line class="tick-mark" x1="{x - 4}" x2="{x}" y1="{y:.1f}" y2="{y:.1f}"/>'
                         f'<text class="tick" x="{x - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
        parts.append(f'<text class="tick" x="{x - 6}" y="{missing_y + 4}" text-anchor="end">—</text></g>')
    # The colour key beside the metric axis: the worst value at the bottom, the best at the top.
    key_x = xs[-1] + 30
    stops = "".join(f'<stop offset="{n / (len(RAMP) - 1):.2f}" stop-color="{c}"/>' for n, c in enumerate(RAMP))
    direction = 'x1="0" y1="1" x2="0" y2="0"' if goal == "max" else 'x1="0" y1="0" x2="0" y2="1"'
    parts.append(f'<defs><linearGradient id="pc-ramp" {direction}>{stops}</linearGradient></defs>'
                 f'<rect class="pc-key" x="{key_x}" y="{top}" width="10" height="{bottom - top}" fill="url(#pc-ramp)">'
                 f"<title>colour: {escape(metric)} ({'highest' if goal == 'max' else 'lowest'} is best, yellow)"
                 "</title></rect>")
    return Markup(
        f'<svg class="chart parallel" viewBox="0 0 {width} {H}" role="img" '
        f'aria-label="{escape(metric)} against {len(keys)} parameters" preserveAspectRatio="xMidYMid meet" '
        f'style="width:{width}px;max-width:100%">' + "".join(parts) + "</svg>"
    )


def importance_chart(result: Importance) -> Markup:
    """Two bars per parameter: its correlation with the metric (-1..1, from the middle) and its
    permutation importance (scaled to the largest), largest importance first."""
    rows = sorted(result.rows, key=lambda r: (-(r.permutation or 0.0), -abs(r.correlation or 0.0), r.key))
    label_w, bar_w, gap, row_h, head = 170, 220, 70, 24, 22
    width = label_w + 2 * bar_w + gap + 60
    height = head + row_h * len(rows) + 6
    biggest = max((r.permutation for r in rows if r.permutation is not None and r.permutation > 0), default=0.0)
    corr_x, imp_x = label_w, label_w + bar_w + gap
    parts = [f'<text class="axis-label" x="{corr_x + bar_w / 2}" y="14" text-anchor="middle">correlation</text>',
             f'<text class="axis-label" x="{imp_x + bar_w / 2}" y="14" text-anchor="middle">importance</text>',
             f'<line class="axis" x1="{corr_x + bar_w / 2}" x2="{corr_x + bar_w / 2}" y1="{head}" y2="{height}"/>',
             f'<line class="axis" x1="{imp_x}" x2="{imp_x}" y1="{head}" y2="{height}"/>']
    for n, row in enumerate(rows):
        y = head + n * row_h
        name = row.key if len(row.key) <= 24 else row.key[:23] + "…"
        parts.append(f'<g class="importance-row" data-key="{escape(row.key)}">'
                     f'<text class="tick" x="{label_w - 8}" y="{y + 16}" text-anchor="end">'
                     f"<title>{escape(row.key)}</title>{escape(name)}</text>")
        if row.correlation is not None:
            half = bar_w / 2 * abs(row.correlation)
            x = corr_x + bar_w / 2 - (half if row.correlation < 0 else 0)
            cls = "positive" if row.correlation >= 0 else "negative"
            parts.append(f'<rect class="bar correlation {cls}" data-value="{row.correlation:.4f}" x="{x:.1f}" '
                         f'y="{y + 5}" width="{half:.1f}" height="{row_h - 10}"/>'
                         f'<text class="tick" x="{corr_x + bar_w + 4}" y="{y + 16}">{row.correlation:+.2f}</text>')
        else:
            parts.append(f'<text class="tick" x="{corr_x + bar_w / 2 + 6}" y="{y + 16}">n/a (categorical)</text>')
        if row.permutation is not None:
            length = bar_w * max(row.permutation, 0.0) / biggest if biggest > 0 else 0.0
            parts.append(f'<rect class="bar permutation" data-value="{row.permutation:.4f}" x="{imp_x}" y="{y + 5}" '
                         f'width="{length:.1f}" height="{row_h - 10}"/>'
                         f'<text class="tick" x="{imp_x + length + 4:.1f}" y="{y + 16}">{row.permutation:.3f}</text>')
        parts.append("</g>")
    return Markup(f'<svg class="chart importance" viewBox="0 0 {width} {height}" role="img" '
                  f'aria-label="parameter importance" style="width:{width}px;max-width:100%">'
                  + "".join(parts) + "</svg>")
