"""memory_capacity and memory_leak: the run is near the end of its memory, or walking there.

Both outrank any time-based finding: a run that dies of memory gains nothing from
running faster. Capacity is a level, not a rate, so it needs no minimum of steps;
a leak is a trend, fitted as a line of memory against steps completed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .. import units
from ..report import Finding, Report
from ..trend import after_warmup, fit_line
from .common import items, measured, not_measured, pct, size, uses_cuda
from .thresholds import MEMORY_CAPACITY, MEMORY_LEAK

#: Error types that are an out-of-memory even where the Report's ``oom`` flag is absent.
_OOM_TYPES = ("OutOfMemoryError", "MemoryError")

#: Timeline columns a leak is fitted on, and how a sentence names them.
#: Series fitted against steps. RSS misses a leak that refills memory freed earlier in the
#: process (no growth, same pages); malloc's bytes in use (``heap_in_use``) see it.
_LEAK_SERIES = {"rss_total": "Host", "heap_in_use": "Host heap", "cuda_allocated": "GPU"}


# ------------------------------------------------------------------ capacity
def check_capacity(report: Report, found: Sequence[Finding]) -> list[Finding]:
    error = report.error or {}
    oom = bool(error.get("oom")) or error.get("type") in _OOM_TYPES
    pressures = _gpu_pressure(report) + _host_pressure(report)
    full = [p for p in pressures if p["fraction"] >= MEMORY_CAPACITY.capacity_fraction]
    if not (oom or full):
        if uses_cuda(report) and not any(p["where"].startswith("GPU") for p in pressures):
            return [not_measured("memory_capacity", "GPU memory headroom", ["signals['gpu'] mem_total / peaks"])]
        return []
    message = (error.get("message") or error.get("type") or "").strip()
    first = message.splitlines()[0].rstrip(".") if message else ""
    first = first if len(first) <= 160 else first[:159] + "…"  # torch's OOM messages run on
    parts = [f"The run ran out of memory{': ' + first if first else ''}"] if oom else []
    parts += [f"{p['where']} memory peaked at {size(p['peak_bytes'])} of {size(p['total_bytes'])} "
              f"({pct(p['fraction'])})" for p in full]
    held = composition(report)
    return [
        Finding(
            id="memory_capacity",
            severity="high",
            summary="; ".join(parts) + "." + (f" {held}." if held else ""),
            evidence={"oom": oom, "error": error or None, "memory": pressures,
                      "memory_breakdown": report.memory_breakdown or None, "savings": savings(report),
                      "threshold": MEMORY_CAPACITY.capacity_fraction},
            bottleneck="memory_capacity",
        )
    ]


def _gpu_pressure(report: Report) -> list[dict[str, Any]]:
    """Peak over total for each GPU this process used (NVML counts every process on it)."""
    out = []
    for gpu in items(report, "gpu"):
        i = gpu.get("index")
        peak = gpu.get("peak_mem_used") or report.peaks.get(f"gpu{i}_mem_used_bytes")
        total = gpu.get("mem_total")
        if report.peaks.get(f"gpu{i}_proc_mem_bytes") == 0 or not peak or not total:
            continue
        out.append({"where": f"GPU {i}", "peak_bytes": peak, "total_bytes": total, "fraction": peak / total})
    return out


def _host_pressure(report: Report) -> list[dict[str, Any]]:
    """The machine's peak used memory (total - available), which is what pushes a run into swap."""
    used = [(tot - avail, tot) for tot, avail in zip(report.timeline.get("mem_total") or [],
                                                      report.timeline.get("mem_available") or [])
            if tot and avail is not None]
    if not used:
        return []
    peak, total = max(used)
    return [{"where": "Host", "peak_bytes": peak, "total_bytes": total, "fraction": peak / total,
             "process_peak_bytes": measured(report.peaks.get("rss_total_bytes"))}]


# ------------------------------------------------------------- what is held
#: How a sentence names each part of the breakdown (the optimizer's class stands in for "optimizer").
_PART_NAMES = {"activations": "activations", "optimizer_state": "optimizer state", "gradients": "gradients",
               "parameters": "parameters", "other": "other (allocated before the run)"}
_HELD = "Of the"
#: Micro-batches a grad-accumulation recommendation proposes: each holds 1/k of the batch's activations.
ACCUMULATION_STEPS = 2


def composition(report: Report) -> str | None:
    """What filled the peak, largest first: "Of the 5.10 GiB peak (GPU): activations 2.30 GiB, AdamW state 1.90 GiB
    (2.0× the parameters), ..."; None without a breakdown (docs/report.md, "FLOPs and MFU")."""
    parts = report.memory_breakdown or {}
    peak, params = parts.get("peak"), parts.get("parameters") or 0
    if not peak:
        return None
    optimizer = next((o.get("class") for o in items(report, "optimizers") if o.get("class")), None)
    pieces = []
    for part in sorted(_PART_NAMES, key=lambda p: -(parts.get(p) or 0)):
        held = parts.get(part) or 0
        if held:
            name = f"{optimizer} state" if part == "optimizer_state" and optimizer else _PART_NAMES[part]
            ratio = f" ({held / params:.1f}× the parameters)" if part == "optimizer_state" and params else ""
            pieces.append(f"{name} {units.size(held)}{ratio}")
    where = "GPU" if parts.get("device") == "cuda" else "process"
    return f"{_HELD} {units.size(peak)} peak ({where}): " + ", ".join(pieces)


def pressure(finding: Finding) -> str:
    """A memory_capacity finding's first sentences, without what the peak held: "GPU 0 memory peaked at ..."."""
    return finding.summary.partition(" " + _HELD)[0].rstrip(".")


def savings(report: Report) -> dict[str, float]:
    """Bytes each memory fix would free at the peak, estimated from the breakdown's activations: checkpointing
    keeps one input per repeated block of n, so frees about (n-1)/n of them; accumulation over k micro-batches
    frees (k-1)/k; autocast stores them in 16 bits, about half; inference_mode keeps none. Empty without a
    breakdown."""
    activations = (report.memory_breakdown or {}).get("activations")
    if not activations:
        return {}
    k = ACCUMULATION_STEPS
    out = {"memory.grad_accumulation": activations * (k - 1) / k, "precision.amp": activations / 2,
           "inference.inference_mode": float(activations)}
    blocks = max((m.get("repeated_blocks") or 0 for m in items(report, "models")), default=0)
    if blocks >= 2:
        out["memory.checkpointing"] = activations * (blocks - 1) / blocks
    return out


# ---------------------------------------------------------------------- leak
@dataclass(frozen=True)
class Fit:
    """Least-squares line of memory (bytes) against steps completed."""

    per_step_bytes: float
    growth_bytes: float
    r2: float
    samples: int
    from_step: float
    to_step: float


def check_leak(report: Report, found: Sequence[Finding]) -> list[Finding]:
    """A line fitted through memory against steps; or, where no fit can be made (a short run, too few
    samples), memory that grew over the run while a container gained graphs step after step."""
    containers = growing_containers(report)
    fits: dict[str, Fit | None] = {}
    if report.steps >= MEMORY_LEAK.min_steps:
        if "rss_total" not in report.timeline or "steps" not in report.timeline:
            return [not_measured("memory_leak", "Memory over steps", ["timeline['rss_total']/['steps']"]),
                    *_retained(containers)]
        fits = {col: fit_growth(report.timeline["steps"], report.timeline[col])
                for col in _LEAK_SERIES if col in report.timeline}
        growing = {col: f for col, f in fits.items()
                   if f and f.growth_bytes >= MEMORY_LEAK.min_growth_bytes and f.r2 >= MEMORY_LEAK.min_r2}
        if growing:
            col, fit = max(growing.items(), key=lambda kv: kv[1].growth_bytes)
            summary = (f"{_LEAK_SERIES[col]} memory grew {size(fit.per_step_bytes)} per step ({size(fit.growth_bytes)} "
                       f"from step {fit.from_step:.0f} to {fit.to_step:.0f}, R² {fit.r2:.2f})")
            summary += f"; {_culprits(containers)}." if containers else (
                "; nothing in the namespace gained autograd graphs step after step, so look for growing lists, "
                "dicts or caches.")
            return [_leak(summary, fits, containers, run_growth(report))]
    grown = {col: b for col, b in run_growth(report).items() if b >= MEMORY_LEAK.min_growth_bytes}
    if containers and grown:
        col = max(grown, key=grown.__getitem__)
        summary = (f"{_LEAK_SERIES[col]} memory grew {size(grown[col])} over the {report.steps}-step run while "
                   f"{_culprits(containers)}.")
        return [_leak(summary, fits, containers, run_growth(report))]
    return _retained(containers)


def _leak(summary: str, fits: dict[str, Fit | None], containers: list[dict], growth: dict[str, float]) -> Finding:
    return Finding(
        id="memory_leak",
        severity="high",
        summary=summary,
        evidence={
            "fits": {c: vars(f) if f else "too few samples after warm-up" for c, f in fits.items()}
            or "too few steps for a fit",
            "run_growth_bytes": growth,
            "retained_graphs": containers,
            "thresholds": {"min_growth_bytes": MEMORY_LEAK.min_growth_bytes, "min_r2": MEMORY_LEAK.min_r2,
                           "warmup_fraction": MEMORY_LEAK.warmup_fraction,
                           "min_graphs_gained": MEMORY_LEAK.min_graphs_gained,
                           "graphs_per_step": MEMORY_LEAK.graphs_per_step},
        },
        bottleneck="memory_leak",
    )


def growing_containers(report: Report) -> list[dict[str, Any]]:
    """Namespace containers whose graph-holding tensors grew with the steps, most gained first.

    ``signals['retained_graphs']`` lists every container holding graphs at the end; one
    rebound each step (an RNN's hidden state, a ModelOutput) gains none and is no leak.
    """
    census = items(report, "retained_graphs")
    growing = [c for c in census if (c.get("gained") or 0) >= MEMORY_LEAK.min_graphs_gained
               and (c.get("per_step") or 0.0) >= MEMORY_LEAK.graphs_per_step]
    return sorted(growing, key=lambda c: c["gained"], reverse=True)


def run_growth(report: Report) -> dict[str, float]:
    """Memory at the last sample minus the first, per leak series: growth even where too short to fit."""
    out = {}
    for col in _LEAK_SERIES:
        values = [v for v in report.timeline.get(col) or [] if v is not None]
        if len(values) >= 2:
            out[col] = values[-1] - values[0]
    return out


def _retained(containers: list[dict]) -> list[Finding]:
    """Containers gaining graphs are a leak in waiting even before memory visibly grows."""
    if not containers:
        return []
    return [Finding(id="retained_graphs", severity="low", summary=_culprits(containers) + ".",
                    evidence={"retained_graphs": containers,
                              "thresholds": {"min_graphs_gained": MEMORY_LEAK.min_graphs_gained,
                                             "graphs_per_step": MEMORY_LEAK.graphs_per_step}})]


def _culprits(containers: list[dict]) -> str:
    held = ", ".join(f"`{c.get('name')}` gained {c['gained']} tensors with autograd graphs in "
                     f"{c['steps']} steps ({c['per_step']:.1f} per step)" for c in containers)
    return f"{held}, each keeping its step's graph and activations alive"


def fit_growth(steps: list, values: list) -> Fit | None:
    """Fit memory against steps after warm-up (trend.py); None with too few samples to call it a trend."""
    pairs = after_warmup(steps, values, MEMORY_LEAK.warmup_fraction)
    line = fit_line(pairs) if len(pairs) >= MEMORY_LEAK.min_samples else None
    if line is None:
        return None
    return Fit(line.slope, line.slope * (line.x_to - line.x_from), line.r2, line.n, line.x_from, line.x_to)
