"""The settled timelines as interactive bokeh figures, drawn by the JupyterLab extension over the static charts.

When a run ends its summary (``summary.py``) carries, beside its HTML, one more part:
``TIMELINES_MIME``, a bokeh document (``bokeh.embed.json_item``) of the run's timelines:

* a **steps** band: each step (or, past ``MAX_STEP_BARS``, each group of steps) a bar as long as the
  step, stacked by the share of each phase, with the step's number, wall time and phases on hover;
* **CPU** (percent of the machine's cores, the machine and this kernel alike), **host memory** and,
  with GPUs, **GPU utilisation** and **GPU memory**, in the binary unit their peak calls for, with
  the time, the step number and every line's exact value on hover;
* one linked x axis (seconds on the timeline's clock): a box zoom (the drag), pan and wheel zoom
  act on every panel at once, and dashed markers at round step numbers cross them all.

The document holds data and models only, never BokehJS: the JupyterLab extension loads BokehJS once
per page (``labextension/src/timelines.ts``, BokehJS ``BOKEHJS`` bundled as a lazy chunk) and
draws the figures in place of the static SVG charts, which stay in the HTML for every view
without it (GitHub, nbviewer, nbconvert, ``--export x.html``, VS Code, Colab). A notebook grows by
tens of KB per profiled cell for it, ≤ 300 KB (docs/dashboard.md, tested).

bokeh's import (≈ 0.5–0.7 s here) and the document (0.1–0.3 s, ``benchmarks/bokeh_summary.py``)
would break the profiled cell's budget (issue 11: the first ≤ 0.5 s extra, later ones ≤ 20 ms) if
every summary paid them, so the figures are drawn only where they cost at most ``IMPORT_SHARE``
(10 %) of the run: runs of ``MIN_RUN_FOR_IMPORT_S`` (10 s) or more, or of ``MIN_RUN_IMPORTED_S``
(3 s) or more once bokeh is imported (by the user's own plots, or an earlier summary). Otherwise
the summary keeps its static SVG charts. bokeh is never imported by ``%load_ext`` or while a cell
runs, and a terminal or plain IPython, which shows text, never imports it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from .. import state
from ..report import PHASES, Report
from ..units import size_unit
from .frontend_detect import current_shell
from .svg import PALETTE, PHASE_COLORS
from .timeline_panels import AUTO_PADDING, CPU_UNIT, machine_share

#: The summary's part the JupyterLab extension draws (labextension/src/timelines.ts).
TIMELINES_MIME = "application/vnd.jupyter-perf.timelines+json"
#: The BokehJS the extension bundles (labextension/package.json): documents must come from this minor.
BOKEHJS = "3.9"
#: The shared x range's name: the extension follows it (the shown stretch of time, on the figures' element).
X_RANGE = "jp-perf-x"
#: Points per line: every sample of a 100-s run at the default 10 Hz; longer runs keep each bucket's peak.
MAX_POINTS = 1000
#: Bars in the steps band: past it, consecutive steps are drawn as one bar of their mean phases.
MAX_STEP_BARS = 600
#: Step markers over the whole run: the step interval is the smallest power of ten giving at most this many.
MAX_MARKS = 10
#: Text and lines that read on a light and a dark notebook alike (the figures' background is the page's).
INK, GRID = "#888888", "rgba(136, 136, 136, 0.25)"
PERCENT = (1.0, "%")
WIDTH, BAND_HEIGHT, PANEL_HEIGHT = 900, 96, 160
#: Steps on a y axis that follows the data, at most; its headroom above the peak is the live view's.
AXIS_TICKS = 4
#: What the figures cost the kernel, seconds, on the 2-core development machine (``benchmarks/bokeh_summary.py``):
#: importing bokeh (0.5–0.7 s idle, a cold page cache or a loaded machine more) and building and serialising
#: the document (0.1–0.3 s idle, ≈ 170 bokeh models; up to 0.7 s with the machine's cores busy elsewhere).
BOKEH_IMPORT_S, DRAW_S = 0.7, 0.3
#: The largest share of a run the figures may add to it: 10 %, so a run of 10 s or more pays for the import,
#: and once bokeh is imported (by the user or an earlier summary) a run of 3 s or more gets figures.
IMPORT_SHARE = 0.10
MIN_RUN_FOR_IMPORT_S = (BOKEH_IMPORT_S + DRAW_S) / IMPORT_SHARE
MIN_RUN_IMPORTED_S = DRAW_S / IMPORT_SHARE


def worth_drawing(report: Report) -> bool:
    """Whether the figures cost at most IMPORT_SHARE of this run: the import (unless already paid) and the drawing.

    The first profiled cell must cost ≤ 0.5 s beyond itself and a later one ≤ 20 ms (issue 11); the figures
    alone cost more than either, so a short run keeps its static charts, which show the same lines.
    """
    least = MIN_RUN_IMPORTED_S if "bokeh" in sys.modules else MIN_RUN_FOR_IMPORT_S
    return (report.wall_time or 0.0) >= least


def interactive_timelines(report: Report) -> dict[str, Any]:
    """The summary's bokeh part, ``{TIMELINES_MIME: {...}}``, or ``{}`` where nothing would draw it.

    Nothing where the run has no timeline, where no Jupyter frontend shows the summary (a terminal:
    bokeh is not even imported), where importing bokeh would cost too much of a short run
    (:func:`worth_drawing`), where the kernel learned that the frontend has no jupyter-perf
    extension, or without bokeh: the summary's static charts are all there is, said once.
    """
    if len(report.timeline.get("t") or []) < 2 or getattr(current_shell(), "kernel", None) is None:
        return {}
    if not worth_drawing(report):
        return {}
    kernel = state.current()
    if kernel.shell is not None and kernel.channel.comm is None:  # opened at %load_ext, closed by the frontend
        kernel.say_once("no-labextension-timelines", "the jupyter-perf JupyterLab extension is not in this "
                        "frontend: the timelines are static charts (interactive ones need JupyterLab or Notebook 7 "
                        "with the extension)")
        return {}
    try:
        import bokeh
        from bokeh.embed import json_item
    except ImportError:
        kernel.say_once("no-bokeh", "bokeh is not installed: the timelines are static charts (pip install bokeh)")
        return {}
    if not bokeh.__version__.startswith(BOKEHJS + "."):
        kernel.say_once("bokeh-version", f"bokeh {bokeh.__version__} is installed but the extension draws bokeh "
                        f"{BOKEHJS} documents: the timelines are static charts (pip install 'bokeh~={BOKEHJS}.0')")
        return {}
    return {TIMELINES_MIME: {"bokeh": bokeh.__version__, "item": json_item(figures(report))}}


def figures(report: Report) -> Any:
    """The timelines of ``report`` as one bokeh layout: the steps band, then a panel per quantity."""
    from bokeh.layouts import gridplot
    from bokeh.models import Range1d

    tl = report.timeline
    t = [v for v in tl["t"] if v is not None]
    end = max(t[-1], *_step_ends(report)) if report.step_series.get("start") else t[-1]
    x_range = Range1d(start=0, end=end, bounds=(0, end), name=X_RANGE)
    samples = _samples(report)
    panels = [
        _line_panel(x_range, samples, f"CPU · {CPU_UNIT}", PERCENT, {"cpu": "machine", "proc": "this kernel + workers"},
                    (0, 100)),
        _line_panel(x_range, samples, "host memory (RSS)", _size_unit(samples, ("rss", "rssc")),
                    {"rss": "kernel", "rssc": "workers"}),
    ]
    gpus = _gpus(tl)
    if gpus:
        panels.insert(1, _line_panel(x_range, samples, "GPU utilisation", PERCENT,
                                     {f"gpu{i}_util": f"GPU{i}" for i in gpus}, (0, 100)))
        memory = {**{f"gpu{i}_mem_used": f"GPU{i} used" for i in gpus},
                  "cuda_allocated": "torch allocated", "cuda_reserved": "torch reserved"}
        panels.append(_line_panel(x_range, samples, "GPU memory", _size_unit(samples, tuple(memory)), memory))
    panels = [p for p in panels if p is not None]
    band = _steps_band(x_range, report)
    if band is not None:
        panels.insert(0, band)
    _mark_steps(panels, report)
    for p in panels[:-1]:
        p.xaxis.visible = False
    panels[-1].height += 28
    panels[-1].xaxis.axis_label = "seconds since the start"
    grid = gridplot([[p] for p in panels], merge_tools=True, toolbar_location="right", sizing_mode="stretch_width")
    grid.max_width = WIDTH
    return grid


# ------------------------------------------------------------------ data
def _samples(report: Report) -> dict[str, list[float]]:
    """The sampled columns the panels plot, at most MAX_POINTS long (each bucket's peak), NaN for a gap."""
    tl = report.timeline
    cores = report.environment.get("cpu_count") or 1
    columns: dict[str, list[float | None]] = {
        "t": tl["t"],
        "step": tl.get("steps") or [None] * len(tl["t"]),
        "cpu": tl.get("cpu_percent") or [],
        "proc": [machine_share(v, cores) for v in tl.get("proc_cpu_percent") or []],
    }
    for key, values in tl.items():
        if key in ("rss", "rss_children", "cuda_allocated", "cuda_reserved") or key.startswith("gpu"):
            columns["rssc" if key == "rss_children" else key] = values
    return _downsample({k: v for k, v in columns.items() if v}, MAX_POINTS)


def _downsample(columns: dict[str, list[float | None]], limit: int) -> dict[str, list[float]]:
    """Columns cut into at most ``limit`` buckets: the first ``t`` and step of each, every other column's peak."""
    n = len(columns["t"])
    width = max(1, math.ceil(n / limit))
    out: dict[str, list[float]] = {}
    for key, values in columns.items():
        buckets = [values[i:i + width] for i in range(0, n, width)]
        if key in ("t", "step"):
            out[key] = [_number(b[0]) for b in buckets]
        else:
            out[key] = [max((_number(v) for v in b if v is not None), default=math.nan) for b in buckets]
    return out


def _array(values: list[float]) -> Any:
    """A column as float32: carried in the document as base64 (≈ 5 bytes a value against ≈ 18 as JSON text)."""
    import numpy as np

    return np.asarray(values, dtype=np.float32)


def _number(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _gpus(timeline: dict[str, list]) -> list[int]:
    return sorted({int(k[3:].split("_")[0]) for k in timeline if k.startswith("gpu") and k.endswith("_util")})


def axis_ticks(top: float, count: int = AXIS_TICKS) -> list[float]:
    """Ticks from 0 to a round number at or above ``top``, at most ``count`` steps of 1, 2, 2.5 or 5 × 10ⁿ.

    The live view's axes (``series.ts``'s ``niceTicks``) and the summary's do the same: 363 MiB reads
    0–400 MiB in steps of 100, the top labelled.
    """
    if not top > 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(n + 1)]


def _size_unit(samples: dict[str, list[float]], keys: tuple[str, ...]) -> tuple[float, str]:
    """(scale, label) of the binary unit the columns' peak calls for: 300 MiB reads 0–300 MiB, not 0.0–0.3 GiB."""
    peak = max((v for k in keys for v in samples.get(k, []) if not math.isnan(v)), default=0.0)
    return size_unit(peak)


def _step_rows(report: Report) -> list[dict[str, Any]]:
    """A bar per step, or per group of consecutive steps: its edges, the steps it covers, its mean phases."""
    series = report.step_series
    starts, walls = series.get("start") or [], series.get("wall") or []
    n = len(starts)
    if not n or not report.steps:
        return []
    per_row = report.steps / n  # a stored row stands for this many steps (the series halves past its capacity)
    group = max(1, math.ceil(n / MAX_STEP_BARS))
    # (start, wall) of each row measured; the others (None: not measured) leave a gap in the band
    timed = {i: (start, wall) for i, (start, wall) in enumerate(zip(starts, walls)) if start is not None and wall}
    rows = []
    for first in range(0, n, group):
        idx = [i for i in range(first, min(n, first + group)) if i in timed]
        if not idx:
            continue
        (first_start, first_wall), (last_start, last_wall) = timed[idx[0]], timed[idx[-1]]
        left = first_start - (per_row - 1) * first_wall / 2  # a row's start is its steps' mean start
        right = last_start + (per_row + 1) * last_wall / 2
        wall = sum(timed[i][1] for i in idx) / len(idx)
        phases = {p: sum(series.get(p, [0.0] * n)[i] or 0.0 for i in idx) / len(idx) for p in PHASES}
        steps = (round(first * per_row) + 1, round((idx[-1] + 1) * per_row))
        rows.append({"left": max(0.0, left), "right": right, "wall": wall, "phases": phases, "steps": steps})
    return rows


def _step_ends(report: Report) -> list[float]:
    return [row["right"] for row in _step_rows(report)[-1:]]


# ---------------------------------------------------------------- figures
def _figure(x_range: Any, title: str, y_label: str, height: int, ticks: list[float]) -> Any:
    """A panel on the shared x range, its y axis from the first to the last of ``ticks``, each labelled."""
    from bokeh.models import BoxZoomTool, FixedTicker, PanTool, Range1d, ResetTool, WheelZoomTool
    from bokeh.models.annotations import Title
    from bokeh.plotting import figure

    zoom = BoxZoomTool(dimensions="width")
    p = figure(x_range=x_range, height=height, sizing_mode="stretch_width",
               title=Title(text=title, text_color=INK, text_font_size="11px"),
               tools=[zoom, PanTool(dimensions="width"), WheelZoomTool(dimensions="width"), ResetTool()],
               background_fill_color=None, border_fill_color=None, outline_line_color=None,
               min_border_left=64, min_border_right=12)
    p.toolbar.active_drag = zoom  # drag to zoom in on a stretch; reset (or double-click) to come back
    p.toolbar.active_scroll = None  # the wheel scrolls the notebook unless the wheel zoom is picked
    p.toolbar.logo = None
    p.yaxis.axis_label = y_label
    p.y_range = Range1d(start=ticks[0], end=ticks[-1])
    p.yaxis.ticker = FixedTicker(ticks=ticks)  # the top is a labelled tick: the axis reads its scale
    for axis in (p.xaxis, p.yaxis):
        axis.axis_label_text_color = axis.major_label_text_color = INK
        axis.axis_line_color = axis.major_tick_line_color = axis.minor_tick_line_color = INK
        axis.axis_label_text_font_style = "normal"
        axis.axis_label_text_font_size = axis.major_label_text_font_size = "10px"
    p.grid.grid_line_color = GRID
    return p


def _line_panel(x_range: Any, samples: dict[str, list[float]], title: str, unit: tuple[float, str],
                labels: dict[str, str], y_range: tuple[float, float] | None = None) -> Any:
    """One panel of lines with a vertical hover listing every line's value, the time and the step."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.models.annotations import Legend, LegendItem

    labels = {k: v for k, v in labels.items() if any(not math.isnan(x) for x in samples.get(k, []))}
    if not labels:
        return None
    scale, label = unit
    data = {"t": samples["t"], "step": samples["step"], **{k: [v / scale for v in samples[k]] for k in labels}}
    source = ColumnDataSource({k: _array(v) for k, v in data.items()})
    if y_range is None:
        peak = max((v for k in labels for v in data[k] if not math.isnan(v)), default=0.0)
        ticks = axis_ticks(peak * (1 + AUTO_PADDING))
    else:
        ticks = [y_range[0], (y_range[0] + y_range[1]) / 2, y_range[1]]
    p = _figure(x_range, title, label, PANEL_HEIGHT, ticks)
    lines = [p.line("t", key, source=source, color=color, line_width=1.5)
             for color, key in zip(PALETTE, labels)]
    value = "{0.0}%" if unit == PERCENT else "{0.00} " + label
    p.add_tools(HoverTool(renderers=lines[:1], mode="vline", tooltips=[
        ("time", "@t{0.00} s"), ("step", "@step{0,0}"), *((name, f"@{key}{value}") for key, name in labels.items()),
    ]))
    legend = Legend(items=[LegendItem(label=label, renderers=[line]) for line, label in zip(lines, labels.values())],
                    orientation="horizontal", location="top_left", label_text_font_size="10px", label_text_color=INK,
                    background_fill_alpha=0.0, border_line_color=None, click_policy="hide", margin=2,
                    glyph_width=14, label_standoff=4, spacing=12)
    p.add_layout(legend, "above")  # above the lines, never over them; a click hides a line
    return p


def _steps_band(x_range: Any, report: Report) -> Any:
    """Each step a bar as long as it lasted, stacked by its phases' shares; hover names the step and its phases."""
    from bokeh.models import ColumnDataSource, HoverTool

    rows = _step_rows(report)
    if not rows:
        return None
    present = [p for p in PHASES if any(r["phases"][p] > 0 for r in rows)]
    data: dict[str, list[Any]] = {
        "x": [(r["left"] + r["right"]) / 2 for r in rows],
        "width": [r["right"] - r["left"] for r in rows],
        "steps": [f"{a:,}" if a == b else f"{a:,}–{b:,}" for a, b in (r["steps"] for r in rows)],
        "wall": [r["wall"] * 1e3 for r in rows],
    }
    for p in present:
        data[p] = [100 * r["phases"][p] / r["wall"] if r["wall"] else 0.0 for r in rows]  # share of the step
        data[f"{p}_ms"] = [r["phases"][p] * 1e3 for r in rows]
    band = _figure(x_range, "steps: each step's phases", "% of step", BAND_HEIGHT, [0, 50, 100])
    source = ColumnDataSource({k: v if k == "steps" else _array(v) for k, v in data.items()})
    bars = band.vbar_stack(present, x="x", width="width", source=source,
                           color=[PHASE_COLORS[p] for p in present])  # (outlined in their colour: no seams)
    band.add_tools(HoverTool(renderers=bars, tooltips=[
        ("step", "@steps"), ("wall", "@wall{0.000} ms"),
        *((p, f"@{{{p}_ms}}{{0.000}} ms (@{{{p}}}{{0.0}}%)") for p in present),
    ]))
    band.ygrid.grid_line_color = None
    return band


def _mark_steps(panels: list[Any], report: Report) -> None:
    """Dashed lines across every panel where the step count passes a round number, labelled in the top panel."""
    from bokeh.models import ColumnDataSource
    from bokeh.models.annotations import Span

    rows = _step_rows(report)
    if not rows or not panels:
        return
    total = rows[-1]["steps"][1]
    every = 1
    while total / every > MAX_MARKS:
        every *= 10
    marks = []
    for row in rows:
        first, last = row["steps"]
        for n in range((first + every - 1) // every * every, last + 1, every):
            if n:  # the end of step n, inside the bar: its steps are of equal length
                marks.append((row["left"] + (row["right"] - row["left"]) * (n - first + 1) / (last - first + 1), n))
    for p in panels:
        for x, _n in marks:
            p.add_layout(Span(location=x, dimension="height", line_color=INK, line_dash="dashed", line_alpha=0.6))
    labels = {"x": [x for x, _n in marks], "label": [f"step {n:,}" for _x, n in marks]}
    top = panels[0]  # white with a dark outline: legible over the steps' colours, on a light or a dark page
    top.text(x="x", y=top.y_range.end, text="label", source=ColumnDataSource(labels), text_font_size="10px",
             text_color="#ffffff", text_outline_color="#333333", text_align="right", text_baseline="top",
             x_offset=-3, y_offset=2)
