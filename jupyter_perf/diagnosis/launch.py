"""launch_overhead: many small ops or tiny batches, so fixed per-call cost outweighs the math.

Two views of the same problem. Where the phases time the model's own work (a CPU
run, or CUDA phases timed with CUDA events), the time per leaf-module call says
how much of it is fixed cost, paid once per call whatever the batch holds:

* per call: a call that takes little more than calling a module costs (tiny
  layers) is mostly overhead, at any batch size;
* per sample (CPU): at a few samples per step, a call also pays once for reading
  its layer's weights, so a batch-1 transformer's 100-500 µs layer calls are
  mostly fixed cost too (measured: batching such BERT inference gained ×2-×8).
  The fixed part is estimated as the call floor plus the layer's weight bytes
  over the memory bandwidth, against the measured call; big layers fed many
  tokens, or big batches, are compute and stay so.

A data wait too short to be loading is the DataLoader's own per-batch cost and
counts here too, since a bigger batch, not a worker, removes it. Where only host
time is known on a GPU, a starved GPU that no data wait, copy or sync explains
is starved by the host not launching fast enough.
"""

from __future__ import annotations

from typing import Sequence

from ..report import Finding, Report
from .common import (
    duration,
    gpu_util,
    items,
    measured,
    not_measured,
    pct,
    phase_share,
    severity,
    size,
    step_time,
    unexplained_idle,
    uses_cuda,
)
from .thresholds import GPU_UTIL, INPUT_PIPELINE, LAUNCH

#: Findings that already explain a starved GPU.
_EXPLAINED_BY = ("input_pipeline", "disk_io", "host_to_device", "host_sync")

#: Bytes per parameter by the dtype a model reports (float32 where unknown).
_DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "qint8": 1, "uint8": 1}


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    if report.steps < LAUNCH.min_steps:
        return []
    cuda = uses_cuda(report)
    util = gpu_util(report) if cuda else None
    if util is not None:
        explained = any(f.id in _EXPLAINED_BY for f in found)
        return [] if explained else _starved_gpu(report, util)
    if not cuda or report.signals.get("gpu_timing") == "cuda_events":
        return _fixed_cost(report, cuda)
    return [not_measured("launch_overhead", "GPU utilisation", ["signals['gpu'][i]['mean_util']"])]


def _fixed_cost(report: Report, cuda: bool) -> list[Finding]:
    forward = report.signals.get("forward") or {}
    measured_us = forward.get("us_per_leaf_call")
    if measured_us is None:
        return [not_measured("launch_overhead", "Time per layer call", ["signals['forward']['us_per_leaf_call']"])]
    # A call's cost with the CPU to itself: time spent waiting for a core other processes held is neither the
    # call's fixed cost nor its math, and would make every call look long.
    delay = (report.signals.get("cpu") or {}).get("run_delay_share")
    us = measured_us * (1.0 - delay) if delay else measured_us
    total, model_share = step_time(report), phase_share(report, "forward", "backward")
    if total is None or model_share is None:
        return []
    batch = samples_per_step(report)
    weights = None if cuda else weight_bytes_per_leaf_call(report)
    views = []
    if us < LAUNCH.us_per_leaf_call and total < LAUNCH.max_step_s:
        views.append(("per call", LAUNCH.leaf_call_floor_us))
    if not cuda and batch is not None and batch <= LAUNCH.small_batch_samples:
        fixed = LAUNCH.leaf_call_floor_us + (weights or 0.0) / LAUNCH.weight_read_bytes_per_s * 1e6
        if fixed / us >= LAUNCH.small_batch_fixed_fraction:
            views.append(("per sample", fixed))
    if not views:
        return []
    view, fixed = max(views, key=lambda v: v[1])
    overhead = min(1.0, fixed / us)
    loader = _loader_overhead_share(report)
    share = model_share * overhead + loader
    if share < LAUNCH.share:
        return []
    leaves = forward.get("leaf_calls_per_forward")
    call = f"Each layer call takes {us:.0f} µs" + (f" ({leaves:.0f} per forward)" if leaves is not None else "")
    if delay and delay >= 0.05:
        call += f" with the CPU to itself ({measured_us:.0f} µs measured, {pct(delay)} of it waiting for a core)"
    fetch = f" plus {pct(loader)} in the DataLoader's own per-batch cost" if loader else ""
    cost = f"{pct(overhead)} of forward and backward{fetch}: {pct(share)} of the {duration(total)} step."
    if view == "per call":
        summary = (f"{call}, close to the ~{LAUNCH.leaf_call_floor_us:.0f} µs that calling a module costs, so fixed "
                   f"per-call cost is about {cost}")
    else:
        samples = f"{batch:g} sample{'s' if batch != 1 else ''}"
        read = f" and reading its {size(weights)} of weights" if weights else ""
        summary = (f"{call} for {samples} per step; about {fixed:.0f} µs of it (calling the module{read}) is paid "
                   f"once per call whatever the batch holds, so fixed cost is about {cost} {_batching_advice(report)}")
    return [
        _finding(
            share,
            summary,
            {
                "view": view,
                "us_per_leaf_call": measured_us,
                "run_delay_share": measured(delay),
                "us_per_leaf_call_on_cpu": us,
                "leaf_calls_per_forward": measured(leaves),
                "samples_per_step": measured(batch),
                "us_per_sample": measured(total * 1e6 / batch if batch else None),
                "weight_bytes_per_leaf_call": measured(weights),
                "fixed_us_per_leaf_call": fixed,
                "overhead_fraction": overhead,
                "model_share": model_share,
                "loader_overhead_share": loader,
                "step_time_s": total,
                "thresholds": {
                    "us_per_leaf_call": LAUNCH.us_per_leaf_call,
                    "leaf_call_floor_us": LAUNCH.leaf_call_floor_us,
                    "max_step_s": LAUNCH.max_step_s,
                    "small_batch_samples": LAUNCH.small_batch_samples,
                    "weight_read_bytes_per_s": LAUNCH.weight_read_bytes_per_s,
                    "small_batch_fixed_fraction": LAUNCH.small_batch_fixed_fraction,
                },
            },
        )
    ]


def _batching_advice(report: Report) -> str:
    """How to batch: the DataLoader's batch_size where one feeds the model, else by hand."""
    if any(d.get("batch_size") for d in items(report, "dataloaders")):
        return "A larger batch_size spreads it over more samples."
    return ("Batch the inputs: stack several examples into one call (torch.stack or torch.cat, a tokenizer called "
            "on a list with padding=True), or serve them from a DataLoader with a batch_size, so the fixed cost is "
            "paid once per batch.")


def samples_per_step(report: Report) -> float | None:
    """Samples in a step: the median the steps counted, else their mean, else the feeding DataLoader's batch_size."""
    per_step = report.signals.get("samples_per_step")
    if per_step:
        return per_step
    if report.samples and report.steps:
        return report.samples / report.steps
    sizes = [d["batch_size"] for d in items(report, "dataloaders") if d.get("batch_size")]
    return sizes[0] if len(set(sizes)) == 1 else None


def weight_bytes_per_leaf_call(report: Report) -> float | None:
    """Mean parameter bytes per leaf-module call over the models called (weights read once per call)."""
    models = items(report, "models")
    if not models or any(m.get("calls") is None or m.get("parameters") is None or not m.get("leaf_modules")
                         for m in models):
        return None
    calls = [(m["calls"], m["parameters"], m["leaf_modules"], m.get("dtype")) for m in models]
    leaf_calls = sum(c * leaves for c, _, leaves, _ in calls)
    nbytes = sum(c * p * _DTYPE_BYTES.get(str(dtype).replace("torch.", ""), 4) for c, p, _, dtype in calls)
    return nbytes / leaf_calls if leaf_calls else None


def _loader_overhead_share(report: Report) -> float:
    """The data wait when it is too short to be loading (input_pipeline leaves it here), else 0."""
    wait = report.phases.get("data_wait")
    if wait is None or wait >= INPUT_PIPELINE.min_data_wait_s:
        return 0.0
    return phase_share(report, "data_wait") or 0.0


def _starved_gpu(report: Report, util: float) -> list[Finding]:
    idle = unexplained_idle(report, util)
    if util >= GPU_UTIL.starved_util or idle is None or idle < LAUNCH.share:
        return []
    return [
        _finding(
            idle,
            f"The GPU was busy only {util:.0f}% of the time and no data wait, copy or sync explains the "
            f"{pct(idle)} it idled: the host is not issuing work fast enough "
            "(many small kernels, Python between them).",
            {
                "gpu_util": util,
                "unexplained_idle_share": idle,
                "us_per_leaf_call": measured((report.signals.get("forward") or {}).get("us_per_leaf_call")),
                "step_time_s": step_time(report),
                "thresholds": {"gpu_util": GPU_UTIL.starved_util, "share": LAUNCH.share},
            },
        )
    ]


def _finding(share: float, summary: str, evidence: dict) -> Finding:
    return Finding(
        id="launch_overhead",
        severity=severity(share, LAUNCH.share_high),
        summary=summary,
        evidence={"share": share, **evidence},
        bottleneck="launch_overhead",
        share=share,
    )
