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

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d")

_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 44, 8, 20, 16


def line_chart(
    series: dict[str, list[float | None]],
    x: list[float],
    title: str,
    unit: str = "",
    width: int = 320,
    height: int = 120,
) -> str:
    """One chart of several series against ``x`` (seconds since the start).

    ``None`` (or NaN) is a gap: the line breaks there instead of dropping to
    zero, because an unobserved sample is not a zero one. Series longer than
    ``MAX_POINTS`` are reduced to the maximum of each bucket so that short
    peaks, the thing a profile is read for, survive.
    """
    xs, ys = _downsample(x, series)
    valid_x = [v for v in xs if _finite(v)]
    values = [v for col in ys.values() for v in col if _finite(v)]
    head = (
        f'<svg class="jp-perf-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="{_PAD_LEFT}" y="12" font-size="11" font-weight="bold" fill="currentColor">'
        f"{escape(title)}{f' ({escape(unit)})' if unit else ''}</text>"
    )
    if not valid_x or not values:
        return head + (
            f'<text x="{_PAD_LEFT}" y="{height // 2}" font-size="11" fill="currentColor" opacity="0.6">'
            "no data</text></svg>"
        )

    x0, x1 = min(valid_x), max(valid_x)
    lo, hi = min(0.0, min(values)), max(values)
    x1 = x1 if x1 > x0 else x0 + 1
    hi = hi if hi > lo else lo + 1
    plot_w = width - _PAD_LEFT - _PAD_RIGHT
    plot_h = height - _PAD_TOP - _PAD_BOTTOM

    def px(v: float) -> float:
        return _PAD_LEFT + (v - x0) / (x1 - x0) * plot_w

    def py(v: float) -> float:
        return _PAD_TOP + (hi - v) / (hi - lo) * plot_h

    parts = [head, _legend(list(ys), width)]
    bottom, top = _PAD_TOP + plot_h, _PAD_TOP
    parts.append(
        f'<g stroke="currentColor" stroke-opacity="0.25" stroke-width="1">'
        f'<line x1="{_PAD_LEFT}" y1="{top}" x2="{width - _PAD_RIGHT}" y2="{top}"/>'
        f'<line x1="{_PAD_LEFT}" y1="{bottom}" x2="{width - _PAD_RIGHT}" y2="{bottom}"/></g>'
        f'<g font-size="10" fill="currentColor" opacity="0.7">'
        f'<text x="{_PAD_LEFT - 4}" y="{top + 4}" text-anchor="end">{_short(hi)}</text>'
        f'<text x="{_PAD_LEFT - 4}" y="{bottom + 3}" text-anchor="end">{_short(lo)}</text>'
        f'<text x="{_PAD_LEFT}" y="{height - 3}">{_short_time(x0)} s</text>'
        f'<text x="{width - _PAD_RIGHT}" y="{height - 3}" text-anchor="end">{_short_time(x1)} s</text></g>'
    )
    for color, col in zip(cycle(PALETTE), ys.values()):
        d = _path(xs, col, px, py)
        if d:
            parts.append(
                f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5" '
                f'stroke-linejoin="round" stroke-linecap="round"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


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


def _downsample(x: list[float], series: dict[str, list[float | None]]):
    """Keep at most MAX_POINTS buckets: the bucket's first x, and each series' max (None if all missing)."""
    n = len(x)
    step = max(1, math.ceil(n / MAX_POINTS))
    starts = range(0, n, step)
    xs = [x[i] for i in starts]
    ys = {}
    for name, col in series.items():
        ys[name] = []
        for i in starts:
            bucket = [v for v in col[i : i + step] if _finite(v)]
            ys[name].append(max(bucket) if bucket else None)
    return xs, ys


def _legend(names: list[str], width: int) -> str:
    """Series names in their colours, right-aligned on the title line."""
    if len(names) < 2:
        return ""
    parts, x = [], width - _PAD_RIGHT
    for name, color in reversed(list(zip(names, cycle(PALETTE)))):
        parts.append(f'<text x="{x}" y="12" font-size="10" text-anchor="end" fill="{color}">{escape(name)}</text>')
        x -= 6 * len(name) + 10
    return "".join(parts)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _short(v: float) -> str:
    return f"{v:.3g}"


def _short_time(seconds: float) -> str:
    """A time-axis label: the first sample, taken microseconds after the start, reads "0", not "2.06e-06"."""
    return "0" if abs(seconds) < 0.005 else _short(seconds)
