"""launch_overhead: many small ops, so fixed per-call cost outweighs the math.

Two views of the same problem. Where the phases time the model's own work (a CPU
run, or CUDA phases timed with CUDA events), the mean time per leaf-module call
says it directly: a call that takes little more than calling costs is mostly
overhead; a data wait too short to be loading is the DataLoader's own per-batch
cost and counts here too, since a bigger batch, not a worker, removes it. Where only host time is known on a GPU, a starved GPU that no data
wait, copy or sync explains is starved by the host not launching fast enough.
"""

from __future__ import annotations

from typing import Sequence

from ..report import Finding, Report
from .common import (
    duration, gpu_util, measured, not_measured, pct, phase_share, severity, step_time, unexplained_idle, uses_cuda,
)
from .thresholds import GPU_UTIL, INPUT_PIPELINE, LAUNCH

#: Findings that already explain a starved GPU.
_EXPLAINED_BY = ("input_pipeline", "disk_io", "host_to_device", "host_sync")


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    if report.steps < LAUNCH.min_steps:
        return []
    cuda = uses_cuda(report)
    util = gpu_util(report) if cuda else None
    if util is not None:
        explained = any(f.id in _EXPLAINED_BY for f in found)
        return [] if explained else _starved_gpu(report, util)
    if not cuda or report.signals.get("gpu_timing") == "cuda_events":
        return _tiny_leaves(report)
    return [not_measured("launch_overhead", "GPU utilisation", ["signals['gpu'][i]['mean_util']"])]


def _tiny_leaves(report: Report) -> list[Finding]:
    forward = report.signals.get("forward") or {}
    us = forward.get("us_per_leaf_call")
    if us is None:
        return [not_measured("launch_overhead", "Time per layer call", ["signals['forward']['us_per_leaf_call']"])]
    total, model_share = step_time(report), phase_share(report, "forward", "backward")
    if us >= LAUNCH.us_per_leaf_call or total is None or total >= LAUNCH.max_step_s or model_share is None:
        return []
    overhead = min(1.0, LAUNCH.leaf_call_floor_us / us)
    loader = _loader_overhead_share(report)
    share = model_share * overhead + loader
    if share < LAUNCH.share:
        return []
    leaves = forward.get("leaf_calls_per_forward")
    layers = f" ({leaves:.0f} per forward)" if leaves is not None else ""
    fetch = f" plus {pct(loader)} in the DataLoader's own per-batch cost" if loader else ""
    return [
        _finding(
            share,
            f"Each layer call takes {us:.0f} µs on average{layers}, close to the ~{LAUNCH.leaf_call_floor_us:.0f} µs "
            f"that calling a module costs, so fixed per-call cost is about {pct(overhead)} of forward and backward"
            f"{fetch}: {pct(share)} of the {duration(total)} step.",
            {
                "us_per_leaf_call": us,
                "leaf_calls_per_forward": measured(leaves),
                "overhead_fraction": overhead,
                "model_share": model_share,
                "loader_overhead_share": loader,
                "step_time_s": total,
                "thresholds": {
                    "us_per_leaf_call": LAUNCH.us_per_leaf_call,
                    "leaf_call_floor_us": LAUNCH.leaf_call_floor_us,
                    "max_step_s": LAUNCH.max_step_s,
                },
            },
        )
    ]


def _loader_overhead_share(report: Report) -> float:
    """The data wait when it is too short to be loading (input_pipeline leaves it here), else 0."""
    wait = report.phases.get("data_wait")
    if wait is None or wait >= INPUT_PIPELINE.min_data_wait_s:
        return 0.0
    return phase_share(report, "data_wait")


def _starved_gpu(report: Report, util: float) -> list[Finding]:
    idle = unexplained_idle(report, util)
    if util >= GPU_UTIL.starved_util or idle is None or idle < LAUNCH.share:
        return []
    return [
        _finding(
            idle,
            f"The GPU was busy only {util:.0f}% of the time and no data wait, copy or sync explains the "
            f"{pct(idle)} it idled: the host is not issuing work fast enough (many small kernels, Python between them).",
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


def proposed_batch_size(current: int, trains: bool | None, limit: int | None = None) -> int:
    """The batch dataloader.batch_size proposes: one rule for the advice and the fix (thresholds.LAUNCH)."""
    least = LAUNCH.min_inference_batch if trains is False else LAUNCH.min_training_batch
    size = max(least, LAUNCH.batch_growth * current)
    return min(size, limit) if limit else size
