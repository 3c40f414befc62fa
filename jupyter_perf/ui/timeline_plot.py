"""The live timelines as bokeh figures, built once and streamed in the browser.

Python builds the figures (CPU %, GPU utilisation, host RSS, GPU memory, with
step markers) and hands them to the browser as ``json_item``s, one per panel;
from then on rows are streamed into each panel's ColumnDataSources by the
dashboard's script, with ``rollover`` so a long run keeps at most ``ROLLOVER``
points per line in the browser. Nothing here runs while the profiled cell runs except
:func:`plot_row`, a few dict lookups per sample.

Importing this module imports bokeh (≈ 0.4–0.8 s), so it is imported when the
first dashboard is drawn, never at ``%load_ext``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import bokeh
from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, DataRange1d, Range1d
from bokeh.plotting import figure

from .svg import PALETTE

#: Points per line the browser keeps (60 s at the default 10 Hz sampling).
ROLLOVER = 600
#: Step markers the browser keeps.
MARK_ROLLOVER = 200
GiB = 2**30
ROWS_SOURCE = "jp_perf_rows"
MARKS_SOURCE = "jp_perf_marks"


def plot_columns(gpus: list[int]) -> dict[str, str]:
    """Every plotted column (besides the time ``t``) and the legend label of its line."""
    cols = {"cpu": "machine", "proc": "this kernel + workers", "rss": "kernel", "rssc": "workers"}
    for i in gpus:
        cols[f"util{i}"] = f"GPU{i}"
        cols[f"used{i}"] = f"GPU{i} used"
    if gpus:
        every = " (all GPUs)" if len(gpus) > 1 else ""  # the sampler sums torch's allocator over devices
        cols["alloc"] = "torch allocated" + every
        cols["resv"] = "torch reserved" + every
    return cols


def plot_row(row: dict[str, float | None], cores: int, gpus: list[int]) -> dict[str, float | None]:
    """One sampled Timeline row as plot values: percents of the machine, bytes in GiB; None is a gap."""
    proc = row.get("proc_cpu_percent")
    out: dict[str, float | None] = {
        "t": row.get("t"),
        "cpu": row.get("cpu_percent"),
        "proc": proc / cores if proc is not None and cores else None,
        "rss": _gib(row.get("rss")),
        "rssc": _gib(row.get("rss_children")),
    }
    for i in gpus:
        out[f"util{i}"] = row.get(f"gpu{i}_util")
        out[f"used{i}"] = _gib(row.get(f"gpu{i}_mem_used"))
    if gpus:
        out["alloc"] = _gib(row.get("cuda_allocated"))
        out["resv"] = _gib(row.get("cuda_reserved"))
    return out


def build_timeline(gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One panel per quantity: its title, its series (column, label, colour) and its bokeh ``json_item``.

    ``gpus`` are the sampler's NVML devices (may be empty: no GPU panels). Titles and legends are
    left to the dashboard's HTML: drawn by bokeh they are re-laid out at every streamed row, which
    doubled the browser's cost of a live panel. Building the panels costs ≈ 0.1 s, so they are made
    once per set of devices and reused: each browser view makes its own documents from them.
    """
    return _panels(tuple((int(d["index"]), d.get("mem_total") or 0) for d in gpus))


@lru_cache(maxsize=4)
def _panels(gpus: tuple[tuple[int, float], ...]) -> list[dict[str, Any]]:
    indices = [index for index, _ in gpus]
    labels = plot_columns(indices)
    gpu_total = max((total for _, total in gpus), default=0) / GiB  # one device's capacity: the limit to watch
    specs = [
        ("CPU", "% of machine", Range1d(0, 105), ["cpu", "proc"]),
        ("host RSS", "GiB", DataRange1d(start=0, range_padding=0.15), ["rss", "rssc"]),
    ]
    if indices:
        specs.insert(1, ("GPU utilisation", "%", Range1d(0, 105), [f"util{i}" for i in indices]))
        specs.append(
            (
                "GPU memory",
                "GiB",
                Range1d(0, max(gpu_total, 1) * 1.05),
                [f"used{i}" for i in indices] + ["alloc", "resv"],
            )
        )
    panels = []
    for n, (title, unit, y_range, columns) in enumerate(specs):
        last = n == len(specs) - 1
        rows = ColumnDataSource({name: [] for name in ["t", *columns]}, name=ROWS_SOURCE)
        marks = ColumnDataSource({"t": [], "y": [], "label": []}, name=MARKS_SOURCE)
        # Every stream repaints the whole panel, so it carries only what is read live: no tools, no
        # fills or outline (transparent: it sits on the notebook's own background), no minor ticks,
        # three y ticks, no vertical grid lines (the step markers mark time). Each of these is a
        # renderer or a visual bokeh re-styles and re-measures at every paint.
        p = figure(
            height=118 if last else 92,
            sizing_mode="stretch_width",
            x_range=DataRange1d(range_padding=0.01),
            y_range=y_range,
            tools="",
            toolbar_location=None,
            x_axis_label="seconds" if last else None,
            output_backend="canvas",
            min_border_left=48,
            min_border_top=4,
            min_border_bottom=4,
            border_fill_color=None,
            background_fill_color=None,
            outline_line_color=None,
        )
        p.axis.major_label_text_font_size = "9px"
        p.axis.minor_tick_line_color = None
        p.yaxis.ticker.desired_num_ticks = 3
        p.xaxis.axis_label_text_font_size = "10px"
        p.xaxis.visible = last
        p.xgrid.visible = False
        p.vspan(x="t", source=marks, line_color="#888888", line_alpha=0.45, line_dash="dashed", line_width=1)
        series, lines = [], []
        for color, col in zip(PALETTE, columns):
            lines.append(p.line("t", col, source=rows, color=color, line_width=1.5))
            series.append({"column": col, "label": labels[col], "color": color})
        # Time spans the lines' rows only: markers kept longer (MARK_ROLLOVER) must not stretch it.
        p.x_range.renderers = lines
        if n == 0:
            p.text("t", "y", text="label", source=marks, text_font_size="9px", text_color="#666666",
                   text_baseline="bottom", text_align="right", x_offset=-2)  # fmt: skip
        panels.append({"title": title, "unit": unit, "series": series, "item": json_item(p)})
    return panels


def step_interval(rate: float) -> int:
    """Steps between two markers: a power of ten leaving about one marker a second or fewer."""
    n = 1
    while n < rate:
        n *= 10
    return n


@lru_cache(maxsize=1)
def bokehjs() -> str:
    """BokehJS core (≈ 1.3 MB), the same version as the Python package, read from its static files."""
    return (Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh.min.js").read_text(encoding="utf-8")


def bokeh_version() -> str:
    return bokeh.__version__


def _gib(value: float | None) -> float | None:
    return None if value is None else value / GiB
