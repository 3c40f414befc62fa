"""input_pipeline and disk_io: the step waits on the DataLoader.

``data_wait`` is host time blocked in the loader's ``next()``; the device has
nothing queued meanwhile, so that share of the step is what a faster pipeline
wins back. When storage is being read hard during that wait, the pipeline is
waiting on the disk, which more CPU alone does not fix: that is disk_io. A wait
too short to be loading at all is the loader's fixed per-batch cost, which
launch_overhead counts instead.
"""

from __future__ import annotations

from typing import Sequence

from ..report import Finding, Report
from .common import duration, items, measured, named, not_measured, pct, phase_share, severity, size, step_time
from .thresholds import DISK_IO, INPUT_PIPELINE


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    if report.steps < INPUT_PIPELINE.min_steps:
        return []
    share = phase_share(report, "data_wait")
    if share is None:
        return [not_measured("input_pipeline", "Time waiting for data", ["phases['data_wait']"])]
    if share < INPUT_PIPELINE.data_wait_share or report.phases["data_wait"] < INPUT_PIPELINE.min_data_wait_s:
        return []
    wait = _input_pipeline(report, share)
    disk = _disk_io(report, wait)
    return [wait, disk] if disk else [wait]


def _input_pipeline(report: Report, share: float) -> Finding:
    loaders = sorted(items(report, "dataloaders"), key=lambda d: d.get("data_wait_s") or 0.0, reverse=True)
    wait, total = report.phases["data_wait"], step_time(report)
    summary = f"The model waited for data {pct(share)} of each step ({duration(wait)} of {duration(total)})"
    if loaders:
        top = loaders[0]
        workers = top.get("num_workers")
        how = "in the main process (num_workers=0)" if workers == 0 else f"with num_workers={measured(workers)}"
        summary += f"; {named(top, 'DataLoader')} loads batches {how}"
    evidence = {
        "data_wait_share": share,
        "data_wait_s": wait,
        "step_time_s": total,
        "steps": report.steps,
        "threshold": INPUT_PIPELINE.data_wait_share,
        "dataloaders": [
            {k: d.get(k) for k in ("name", "num_workers", "pin_memory", "batch_size", "dataset", "data_wait_s")}
            for d in loaders
        ],
        "cpu_available": measured((report.signals.get("cpu") or {}).get("available")),
    }
    return Finding(
        id="input_pipeline",
        severity=severity(share, INPUT_PIPELINE.data_wait_share_high),
        summary=summary + ".",
        evidence=evidence,
        bottleneck="input_pipeline",
        share=share,
    )


def _disk_io(report: Report, wait: Finding) -> Finding | None:
    """disk_io when the run read real storage bytes (page-cache hits do not count)."""
    read = (report.signals.get("io") or {}).get("read_bytes")
    wait.evidence["storage_read_bytes"] = measured(read)
    if read is None or not report.wall_time:
        return None
    rate, per_step = read / report.wall_time, read / report.steps
    if rate < DISK_IO.read_bytes_per_s and per_step < DISK_IO.read_bytes_per_step:
        return None
    return Finding(
        id="disk_io",
        severity=wait.severity,
        summary=(
            f"The data wait is storage-bound: {size(rate)}/s ({size(per_step)} per step) was read from disk "
            f"while the model waited for data {pct(wait.share)} of each step."
        ),
        evidence={
            "read_bytes": read,
            "read_bytes_per_s": rate,
            "read_bytes_per_step": per_step,
            "data_wait_share": wait.share,
            "thresholds": {"read_bytes_per_s": DISK_IO.read_bytes_per_s, "read_bytes_per_step": DISK_IO.read_bytes_per_step},
            "dataloaders": wait.evidence["dataloaders"],
            "cpu_available": wait.evidence["cpu_available"],
        },
        bottleneck="disk_io",
        share=wait.share,
    )
