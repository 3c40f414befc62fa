"""host_to_device: copies from host memory stall the step.

A copy from pageable memory is staged through a pinned bounce buffer and blocks
the host, so the step cannot run ahead of it; only CUDA runs copy, so CPU runs
are never judged here.
"""

from __future__ import annotations

from typing import Sequence

from ..report import Finding, Report
from .common import duration, measured, not_measured, pct, phase_share, severity, size, step_time, uses_cuda
from .thresholds import TRANSFERS


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    if not uses_cuda(report) or report.steps < TRANSFERS.min_steps:
        return []
    share = phase_share(report, "host_to_device")
    if share is None:
        return [not_measured("host_to_device", "Host-to-device copy time", ["phases['host_to_device']"])]
    if share < TRANSFERS.h2d_share:
        return []
    copy, total = report.phases["host_to_device"], step_time(report)
    summary = f"Copying inputs to the GPU took {pct(share)} of each step ({duration(copy)} of {duration(total)})"
    evidence = {
        "h2d_share": share,
        "h2d_s": copy,
        "step_time_s": total,
        "steps": report.steps,
        "threshold": TRANSFERS.h2d_share,
    }
    transfers = report.signals.get("transfers")
    if transfers is None:
        evidence["transfers"] = measured(None)
    else:
        evidence.update(_copy_evidence(transfers, report.steps))
        if isinstance(evidence["bytes_per_step"], float):
            summary += f", {size(evidence['bytes_per_step'])} per step"
        if evidence["pageable_fraction"] is not None:
            summary += f", {pct(evidence['pageable_fraction'])} of it from pageable memory"
    return [
        Finding(
            id="host_to_device",
            severity=severity(share, TRANSFERS.h2d_share_high),
            summary=summary + ".",
            evidence=evidence,
            bottleneck="host_to_device",
            share=share,
        )
    ]


def _copy_evidence(transfers: dict, steps: int) -> dict:
    nbytes, seconds, count = transfers.get("bytes"), transfers.get("seconds"), transfers.get("count")
    pageable, pinned = transfers.get("pageable_bytes"), transfers.get("pinned_bytes")
    fraction = None
    if pageable is not None and pinned is not None and pageable + pinned > 0:
        fraction = pageable / (pageable + pinned)
    return {
        "copies_per_step": measured(count / steps if count is not None else None),
        "bytes_per_step": measured(nbytes / steps if nbytes is not None else None),
        "bandwidth_bytes_per_s": measured(nbytes / seconds if nbytes is not None and seconds else None),
        "pageable_bytes": measured(pageable),
        "pinned_bytes": measured(pinned),
        "pageable_fraction": fraction,
        "non_blocking": measured(transfers.get("non_blocking")),
    }
