"""Small line charts as inline SVG strings, standard library only.

The summary is shown in frontends without widgets or JS and saved into
standalone HTML files, so its charts must be plain markup: no
scripts, no external assets. Text and lines use ``currentColor`` so a chart
follows the surrounding theme, light or dark.
"""

from __future__ import annotations

import math
from html import escape
from itertools import cycle

#: A few hundred pixels wide cannot show more points than this; more only bloats the output.
MAX_POINTS = 600

#: Each phase's colour, the same in the summary's phase bar, the live view and the bokeh step band.
PHASE_COLORS = {
    "data_wait": "#e45756",
    "host_to_device": "#f58518",
    "forward": "#4c78a8",
    "backward": "#72b7b2",
    "communication": "#b279a2",
    "optimizer": "#54a24b",
    "other": "#9d9d9d",
}
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d")

_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 44, 8, 22, 28
#: Gridlines an axis aims for; the top one is at or above the highest value, so the axis reads its scale.
_TICKS = 4


def line_chart(
    series: dict[str, list[float | None]],
    x: list[float | None],
    title: str,
    unit: str = "",
    width: int = 320,
    height: int = 130,
    y_max: float | None = None,
) -> str:
    """One chart of several series against ``x`` (seconds since the start).

    ``None`` (or NaN) is a gap: the line breaks there instead of dropping to
    zero, because an unobserved sample is not a zero one. Series longer than
    ``MAX_POINTS`` are reduced to the maximum of each bucket so that short
    peaks, the thing a profile is read for, survive. The y axis starts at
    zero and ends at a round tick at or above the highest value (``y_max``
    fixes it instead: percentages end at 100); it is labelled with ``unit``,
    the x axis with seconds.
    """
    xs, ys = _downsample(x, series)
    valid_x = [v for v in xs if _finite(v)]
    values = [v for col in ys.values() for v in col if _finite(v)]
    heading = title + (f" ({unit})" if unit else "")
    # the legend shares the title's line where both fit, else it gets a line of its own and the chart grows
    legend_y = 12 if _text_width(heading, 6.6) + _legend_width(list(ys)) <= width - _PAD_LEFT - _PAD_RIGHT else 25
    top = _PAD_TOP + legend_y - 12
    height += legend_y - 12
    head = (
        f'<svg class="jp-perf-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="{_PAD_LEFT}" y="12" font-size="11" font-weight="bold" fill="currentColor">'
        f"{escape(heading)}</text>"
    )
    if not valid_x or not values:
        return head + (
            f'<text x="{_PAD_LEFT}" y="{height // 2}" font-size="11" fill="currentColor" opacity="0.6">'
            "no data</text></svg>"
        )

    x0, x1 = min(valid_x), max(valid_x)
    lo = min(0.0, min(values))
    ticks = _ticks(lo, y_max if y_max is not None else max(values))
    hi = ticks[-1]
    x1 = x1 if x1 > x0 else x0 + 1
    plot_w = width - _PAD_LEFT - _PAD_RIGHT
    plot_h = height - top - _PAD_BOTTOM

    def px(v: float) -> float:
        return _PAD_LEFT + (v - x0) / (x1 - x0) * plot_w

    def py(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    bottom, right = top + plot_h, width - _PAD_RIGHT
    grid = "".join(f'<line x1="{_PAD_LEFT}" y1="{py(t):.1f}" x2="{right}" y2="{py(t):.1f}"/>' for t in ticks)
    labels = "".join(
        f'<text x="{_PAD_LEFT - 4}" y="{py(t) + 3:.1f}" text-anchor="end">{_short(t)}</text>' for t in ticks
    )
    parts = [
        head,
        _legend(list(ys), width, legend_y),
        f'<g stroke="currentColor" stroke-opacity="0.2" stroke-width="1">{grid}</g>',
        f'<g font-size="10" fill="currentColor" opacity="0.75">{labels}'
        f'<text x="{_PAD_LEFT}" y="{bottom + 12}">{_short_time(x0)}</text>'
        f'<text x="{right}" y="{bottom + 12}" text-anchor="end">{_short_time(x1)}</text>'
        f'<text x="{(_PAD_LEFT + right) / 2:.0f}" y="{height - 3}" text-anchor="middle">time (s)</text></g>',
    ]
    for color, col in zip(cycle(PALETTE), ys.values()):
        d = _path(xs, col, px, py)
        if d:
            parts.append(
                f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5" '
                f'stroke-linejoin="round" stroke-linecap="round"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(lo: float, hi: float) -> list[float]:
    """Round values from ``lo`` (0 or below) up to the first at or above ``hi``: 1, 2, 2.5 or 5 times a power
    of ten apart, about ``_TICKS`` of them."""
    span = hi - lo
    if not span > 0:
        return [lo, lo + 1]
    raw = span / _TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [first + i * step for i in range(count + 1)]


def _path(xs, col, px, py) -> str:
    """SVG path data with a new subpath after every gap; a lone point becomes a dot (``h0``)."""
    segments: list[list[str]] = []
    pen_down = False
    for a, b in zip(xs, col):
        if not (_finite(a) and _finite(b)):
            pen_down = False
            continue
        point = f"{px(a):.1f},{py(b):.1f}"
        if pen_down:
            segments[-1].append(point)
        else:
            segments.append([point])
            pen_down = True
    return "".join("M" + "L".join(seg) + ("h0" if len(seg) == 1 else "") for seg in segments)


def _downsample(x: list[float | None], series: dict[str, list[float | None]]):
    """Keep at most MAX_POINTS buckets: the bucket's first x, and each series' max (None if all missing)."""
    n = len(x)
    step = max(1, math.ceil(n / MAX_POINTS))
    starts = range(0, n, step)
    xs = [x[i] for i in starts]
    ys: dict[str, list[float | None]] = {}
    for name, col in series.items():
        ys[name] = []
        for i in starts:
            bucket = [v for v in col[i : i + step] if v is not None and _finite(v)]
            ys[name].append(max(bucket) if bucket else None)
    return xs, ys


def _legend(names: list[str], width: int, y: int = 12) -> str:
    """Series names in their colours, right-aligned on the line at ``y`` (the title's, where they fit)."""
    if len(names) < 2:
        return ""
    parts, x = [], float(width - _PAD_RIGHT)
    for name, color in reversed(list(zip(names, cycle(PALETTE)))):
        parts.append(f'<text x="{x:g}" y="{y}" font-size="10" text-anchor="end" fill="{color}">{escape(name)}</text>')
        x -= _text_width(name, 6) + 10
    return "".join(parts)


def _legend_width(names: list[str]) -> float:
    return sum(_text_width(name, 6) + 10 for name in names) if len(names) > 1 else 0.0


def _text_width(text: str, per_char: float) -> float:
    """About how wide ``text`` draws: SVG text does not wrap or measure itself, so the layout estimates."""
    return per_char * len(text)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _short(v: float) -> str:
    """A tick label: ``0``, ``2.5``, ``250``, ``1,500``."""
    return f"{v:,.0f}" if abs(v) >= 1000 or float(v).is_integer() else f"{v:.3g}"


def _short_time(seconds: float) -> str:
    """A time-axis label: the first sample, taken microseconds after the start, reads "0", not "2.06e-06"."""
    return "0" if abs(seconds) < 0.005 else _short(seconds)
