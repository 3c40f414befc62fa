"""What the live timelines show: their panels, and each sampled row as plot values.

Python decides what is plotted (CPU, GPU utilisation, host RSS, GPU memory,
with step markers) and how each panel's y axis behaves; the browser draws the
lines itself on a canvas (``labextension/src/live/strip.ts``) and keeps at
most ``ROLLOVER`` points per line, so a long run stays light. Nothing here runs while the
profiled cell runs except :func:`plot_row` and :func:`step_interval`, a few
dict lookups per sample.

One unit system with the summary (``units.py``): CPU in percent of the
machine's cores, for the machine and for this kernel alike, and sizes in bytes
that the browser shows in the binary unit the panel's top calls for (KiB, MiB,
GiB: ``units.ts``'s ``sizeUnit``, the twin of ``units.size_unit``), so 300 MiB
reads 0–400 MiB, not 0.0–0.4 GiB.

The panels were bokeh figures streamed in the browser until a measurement on
the 2-core development machine showed each streamed repaint of a bokeh panel
costing ≈ 3.5 ms of the browser's main thread even bare: two panels at 8
redraws a second took 0.08 of the machine's two cores from the training loop
(the whole dashboard 0.18), against ≈ 0.025 for a canvas redrawn as often in
the same JupyterLab page. Bokeh draws the settled timelines after the run
(``bokeh_timelines.py``). See docs/dashboard.md, "Costs, measured".
"""

from __future__ import annotations

from typing import Any

from .svg import PALETTE

#: Points per line the browser keeps (60 s at the default 10 Hz sampling).
ROLLOVER = 600
#: Step markers the browser keeps.
MARK_ROLLOVER = 200
#: Headroom above the highest value on an axis that follows the data (host RSS), before rounding up to a tick.
AUTO_PADDING = 0.1
#: The CPU scale of every view, live and settled: 100 % is every core of the machine busy.
CPU_UNIT = "% of the machine's cores"


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


def machine_share(proc_percent: float | None, cores: int) -> float | None:
    """A process's CPU (100 = one core busy) as a percent of the machine's cores."""
    return proc_percent / cores if proc_percent is not None and cores else None


def plot_row(row: dict[str, float | None], cores: int, gpus: list[int]) -> dict[str, float | None]:
    """One sampled Timeline row as plot values: percents of the machine's cores, sizes in bytes; None is a gap."""
    out: dict[str, float | None] = {
        "t": row.get("t"),
        "cpu": row.get("cpu_percent"),
        "proc": machine_share(row.get("proc_cpu_percent"), cores),
        "rss": row.get("rss"),
        "rssc": row.get("rss_children"),
    }
    for i in gpus:
        out[f"util{i}"] = row.get(f"gpu{i}_util")
        out[f"used{i}"] = row.get(f"gpu{i}_mem_used")
    if gpus:
        out["alloc"] = row.get("cuda_allocated")
        out["resv"] = row.get("cuda_reserved")
    return out


def build_timeline(gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One panel per quantity: title, unit, y axis and series (column, label, colour), top to bottom.

    ``gpus`` are the sampler's NVML devices (may be empty: no GPU panels). ``unit`` is a label, or
    ``"bytes"`` for sizes the browser writes in the binary unit the axis's top calls for. A y axis is
    either fixed (``{"min", "max"}``: percents, and GPU memory up to one device's capacity, the limit to
    watch) or follows the data from zero (``{"min": 0, "padding"}``, its top rounded up to a tick). The
    last panel carries the time axis.
    """
    indices = [int(d["index"]) for d in gpus]
    labels = plot_columns(indices)
    gpu_total = max((d.get("mem_total") or 0 for d in gpus), default=0)
    specs = [
        ("CPU", CPU_UNIT, {"min": 0, "max": 100}, ["cpu", "proc"]),
        ("host memory (RSS)", "bytes", {"min": 0, "padding": AUTO_PADDING}, ["rss", "rssc"]),
    ]
    if indices:
        specs.insert(1, ("GPU utilisation", "%", {"min": 0, "max": 100}, [f"util{i}" for i in indices]))
        gpu_y = {"min": 0, "max": gpu_total} if gpu_total else {"min": 0, "padding": AUTO_PADDING}
        specs.append(("GPU memory", "bytes", gpu_y, [*(f"used{i}" for i in indices), "alloc", "resv"]))
    return [
        {
            "title": title,
            "unit": unit,
            "y": y,
            "time_axis": n == len(specs) - 1,
            "step_labels": n == 0,
            "series": [{"column": col, "label": labels[col], "color": color} for color, col in zip(PALETTE, columns)],
        }
        for n, (title, unit, y, columns) in enumerate(specs)
    ]


def step_interval(rate: float) -> int:
    """Steps between two markers: a power of ten leaving about one marker a second or fewer."""
    n = 1
    while n < rate:
        n *= 10
    return n
