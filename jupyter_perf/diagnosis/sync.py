"""host_sync: device-to-host syncs (``.item()``, ``.cpu()``, printing a tensor) starve the GPU.

A sync blocks the host until the GPU drains its queue; the GPU then idles while
the host catches up and launches again, so host and device take turns instead
of overlapping. The signature is both at once: the host blocked a real share of
the step AND the GPU idle for reasons data and copies do not explain. Blocked
with a busy GPU is a GPU-bound run; idle with syncs that return at once is a
host that launches too slowly (launch_overhead). Syncs exist only on CUDA runs.
"""

from __future__ import annotations

from typing import Sequence

from ..report import Finding, Report
from .common import duration, gpu_util, measured, not_measured, pct, severity, step_time, unexplained_idle, uses_cuda
from .thresholds import GPU_UTIL, SYNC


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    if not uses_cuda(report) or report.steps < SYNC.min_steps:
        return []
    syncs = report.signals.get("syncs")
    if syncs is None or syncs.get("count") is None:
        return [not_measured("host_sync", "Device-to-host syncs", ["signals['syncs']"])]
    per_step = syncs["count"] / report.steps
    if per_step < SYNC.syncs_per_step:
        return []
    total, blocked = step_time(report), syncs.get("seconds")
    blocked_share = blocked / report.steps / total if blocked is not None and total else None
    util = gpu_util(report)
    evidence = {
        "syncs_per_step": per_step,
        "by_call": syncs.get("by_call") or {},
        "blocked_share": measured(blocked_share),
        "step_time_s": total,
        "gpu_util": measured(util),
        "thresholds": {"syncs_per_step": SYNC.syncs_per_step, "blocked_share": SYNC.blocked_share,
                       "gpu_util": GPU_UTIL.starved_util, "share": SYNC.share},
    }
    waited = f"The host waited for the GPU {per_step:.1f} times per step{_calls(evidence['by_call'], report.steps)}"
    if blocked_share is not None:
        waited += f", blocked {pct(blocked_share)} of the step ({duration(blocked_share * total)})"
    if util is None or blocked_share is None:
        unknown = " and ".join(w for w, v in (("GPU utilisation", util), ("blocked time", blocked_share)) if v is None)
        return [Finding(id="host_sync", severity="low", evidence=evidence,
                        summary=f"{waited}; {unknown} was not measured, so what they cost is unknown.")]
    idle = unexplained_idle(report, util)
    if util >= GPU_UTIL.starved_util or blocked_share < SYNC.blocked_share or idle is None:
        return []
    share = min(idle, blocked_share)
    if share < SYNC.share:
        return []
    evidence.update(unexplained_idle_share=idle, share=share)
    return [
        Finding(
            id="host_sync",
            severity=severity(share, SYNC.share_high),
            summary=(
                f"{waited}, while the GPU was busy only {util:.0f}% of the time: host and GPU take turns instead of "
                "overlapping. Keep values on the GPU and read them every N steps."
            ),
            evidence=evidence,
            bottleneck="host_sync",
            share=share,
        )
    ]


def _calls(by_call: dict, steps: int) -> str:
    """' (.item() ×2.0, .cpu() ×1.0)' per step, most frequent first."""
    if not by_call:
        return ""
    top = sorted(by_call.items(), key=lambda kv: kv[1], reverse=True)[:3]
    return " (" + ", ".join(f"{name} ×{count / steps:.1f}" for name, count in top) + ")"
