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
from .common import (
    duration,
    items,
    measured,
    named,
    not_measured,
    pct,
    phase_share,
    severity,
    size,
    step_share,
    step_time,
)
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
    """disk_io when storage was read steadily while the steps ran (page-cache hits do not count)."""
    read = (report.signals.get("io") or {}).get("read_bytes")
    wait.evidence["storage_read_bytes"] = measured(read)
    reads = steady_reads(report)
    if reads is None:
        return None
    rate, per_step = reads["read_bytes_per_s"], reads["read_bytes_per_step"]
    if rate < DISK_IO.read_bytes_per_s and per_step < DISK_IO.read_bytes_per_step:
        return None
    return Finding(
        id="disk_io",
        severity=wait.severity,
        summary=(
            f"The data wait is storage-bound: {size(rate)}/s ({size(per_step)} per step) was read from disk "
            f"while the model waited for data {pct(step_share(wait))} of each step."
        ),
        evidence={
            **reads,
            "data_wait_share": wait.share,
            "thresholds": {"read_bytes_per_s": DISK_IO.read_bytes_per_s,
                           "read_bytes_per_step": DISK_IO.read_bytes_per_step, "min_intervals": DISK_IO.min_intervals},
            "dataloaders": wait.evidence["dataloaders"],
            "cpu_available": wait.evidence["cpu_available"],
        },
        bottleneck="disk_io",
        share=wait.share,
    )


def steady_reads(report: Report) -> dict | None:
    """The storage read rate that held while the steps ran, and the bytes per step it makes.

    Reads of the first step are not the data's (a fresh process faults in library pages and
    reads the modules it imports on first use), so they are discounted; and where the sampler
    saw enough intervals after it, the rate is their duration-weighted median, so a burst (a
    module imported mid-run, a checkpoint loaded once) does not pass for reading the data.
    """
    io = report.signals.get("io") or {}
    read = io.get("read_bytes")
    total = step_time(report)
    if read is None or not report.wall_time or not total:
        return None
    discounted = (io.get("first_step_read_bytes") is not None and io.get("first_step_s") is not None
                  and io["first_step_s"] < report.wall_time and report.steps > 1)
    first, since = (io["first_step_read_bytes"], io["first_step_s"]) if discounted else (0, 0.0)
    rates = _interval_rates(report.timeline, since)
    if len(rates) >= DISK_IO.min_intervals:
        rate = _weighted_median(rates)
        per_step, how = rate * total, f"median of {len(rates)} sampler intervals after the first step"
    else:
        after = max(read - first, 0)
        rate, per_step = after / (report.wall_time - since), after / (report.steps - discounted)
        how = "mean after the first step" if discounted else "mean over the run"
    return {
        "read_bytes": read,
        "first_step_read_bytes": measured(io.get("first_step_read_bytes")),
        "read_bytes_per_s": rate,
        "read_bytes_per_step": per_step,
        "rate_from": how,
    }


def _interval_rates(timeline: dict, since: float) -> list[tuple[float, float]]:
    """(seconds, bytes/s) of each sampler interval that began after ``since``."""
    ts, reads = timeline.get("t") or [], timeline.get("read_bytes") or []
    out = []
    for (t0, r0), (t1, r1) in zip(zip(ts, reads), zip(ts[1:], reads[1:])):
        if t0 is not None and t1 is not None and r0 is not None and r1 is not None and t0 >= since and t1 > t0:
            out.append((t1 - t0, (r1 - r0) / (t1 - t0)))
    return out


def _weighted_median(rates: list[tuple[float, float]]) -> float:
    """The rate that at least half of the time ran at or above."""
    half, run = sum(w for w, _ in rates) / 2, 0.0
    for weight, rate in sorted(rates, key=lambda wr: wr[1], reverse=True):
        run += weight
        if run >= half:
            return rate
    return 0.0
