"""Many rank Reports → one: the merged view a notebook shows for a distributed run.

``merge(ranks, into)`` fills a Report (the cell's own, or a new one for
``load(dir)``) from its ranks' Reports, in rank order, without diagnosing them
again (each rank diagnosed itself when it ended); ``diagnose()`` then reads the
merged Report like any other, ``diagnosis/distributed.py`` adding what needs
every rank (stragglers, failed ranks). The figures:

* ``ranks``: the rank Reports, rank order;
* ``steps``: the median rank's; ``phases``: each phase's mean over the ranks
  that ran steps, so they still sum to the (mean) step time; ``step_time_total``
  = steps × that step time;
* ``samples`` and ``throughput['samples_per_s']`` (and tokens): summed over the
  ranks, the job's rate; ``steps_per_s``: from the merged step time;
* the loop's signals (models, loaders, optimizers, forward, backward ...),
  ``compute``, ``memory_breakdown``, ``step_series``: rank 0's (the first rank
  with steps), as one representative; the cell's own timeline, peaks, CPU and
  GPU signals stay the launching process's, whose process tree holds the ranks;
* ``signals['distributed']``: world size, backend, launcher; one compact row per
  rank (``rank_row``: host, steps, step time, busy/data/compute/communication
  seconds per step, throughput, peak memory, CPU/GPU use, error); the
  communication the transfers themselves cost a step (``transfer_s``: at each
  step the least any rank was blocked, the rest being waits for a slower rank); ranks that
  failed (``failed``: the launcher's ``first_failed`` first) and ranks that sent
  nothing (``missing``); rank 0's collectives and DDP buckets.

Plain dicts and one pass over the ranks: 1,000 ranks merge in milliseconds
(benchmarks/distributed_overhead.py).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from ..report import PHASES, Report

#: Signals that describe the training loop rather than the machine: the merged view takes rank 0's.
LOOP_SIGNALS = ("dataloaders", "data_functions", "models", "forward", "backward", "optimizers", "tokens",
                "samples_per_step", "transfers", "syncs", "retained_graphs", "gpu_timing")
#: Phases of a step a rank spends on its own work (the rest of its step is communication).
COMPUTE_PHASES = ("forward", "backward", "optimizer")


def rank_row(report: Report) -> dict[str, Any]:
    """One rank in numbers the straggler rule and the per-rank table read (seconds are per step)."""
    facts = report.signals.get("distributed") or {}
    phases = report.phases or {}
    step = report.step_time
    comm = phases.get("communication", 0.0)
    gpu = [g.get("mean_util") for g in report.signals.get("gpu") or [] if g.get("mean_util") is not None]
    ddp = facts.get("ddp") or {}
    return {
        "rank": facts.get("rank"),
        "host": facts.get("host"),
        "pid": facts.get("pid"),
        "steps": report.steps,
        "step_s": step,
        "busy_s": step - comm if step is not None else None,
        "data_wait_s": phases.get("data_wait"),
        "compute_s": sum(phases.get(p, 0.0) for p in COMPUTE_PHASES) if phases else None,
        "communication_s": comm if phases else None,
        "communication_share": comm / step if step else None,
        "buckets_per_step": ddp.get("buckets_per_step"),
        "steps_per_s": report.throughput.get("steps_per_s"),
        "samples_per_s": report.throughput.get("samples_per_s"),
        "peak_rss_bytes": report.peaks.get("rss_total_bytes"),
        "cpu_util": (report.signals.get("cpu") or {}).get("proc_mean_util"),
        "gpu_util": max(gpu) if gpu else None,
        "bottleneck": report.bottleneck,
        "error": {"type": report.error["type"], "message": report.error["message"][:500]} if report.error else None,
        "interrupted": report.interrupted,
    }


def merge(ranks: list[Report], into: Report | None = None, missing: Sequence[dict[str, Any]] = (),
          failed_first: int | None = None) -> Report:
    """Fill ``into`` (a new Report by default) with the merged view of ``ranks`` (module docstring)."""
    report = into if into is not None else Report()
    rows = [rank_row(r) for r in ranks]
    order = sorted(range(len(ranks)), key=lambda i: (rows[i]["rank"] is None, rows[i]["rank"] or 0))
    ranks, rows = [ranks[i] for i in order], [rows[i] for i in order]
    report.ranks = ranks
    stepped = [r for r in ranks if r.steps]
    if stepped:
        _merge_steps(report, stepped)
    first = stepped[0] if stepped else (ranks[0] if ranks else None)
    facts = (first.signals.get("distributed") or {}) if first else {}
    failed = [row for row in rows if row["error"] and row["error"]["type"] != "Terminated"]
    failed.sort(key=lambda row: row.get("rank") != failed_first)
    report.signals["distributed"] = {
        "world_size": facts.get("world_size") or len(ranks) + len(missing),
        "ranks_reported": len(ranks),
        "backend": facts.get("backend"),
        "launcher": facts.get("launcher"),
        "hosts": len({row["host"] for row in rows}),
        "ranks": rows,
        "failed": failed,
        "first_failed": failed_first,
        "missing": list(missing),
        "transfer_s": _transfer(stepped),
        "collectives": facts.get("collectives"),
        "ddp": facts.get("ddp"),
        "function": facts.get("function"),
    }
    for row in failed:
        report.notes.append(f"rank {row['rank']} failed: {row['error']['type']}: {row['error']['message'][:200]}")
    for gone in missing:
        how = "still running" if gone.get("alive") else f"exit code {gone.get('exitcode')}"
        report.notes.append(f"rank {gone['index']} sent no report ({how})")
    if any(r.interrupted for r in ranks):
        report.interrupted = True
    return report


def _transfer(stepped: list[Report]) -> float | None:
    """Seconds per step the communication itself blocked: at each step, the least any rank was blocked.

    Ranks step in lockstep, and each waits in its collectives for the last to arrive: the last one waits for
    the transfer alone, the others also for it. Where ranks take turns being last (jitter on a busy machine),
    every rank's *mean* blocked time holds some waiting for the others; the per-step minimum does not.
    """
    columns = [r.step_series.get("communication") or [] for r in stepped]
    if len(columns) < 2 or not all(columns):
        return None
    rows = min(len(c) for c in columns)
    least = [min(v for c in columns if (v := c[i]) is not None) for i in range(rows)
             if any(c[i] is not None for c in columns)]
    return statistics.fmean(least) if least else None


def _merge_steps(report: Report, stepped: list[Report]) -> None:
    """Steps, phases, throughput and the loop's signals from the ranks that ran steps (module docstring)."""
    first = stepped[0]
    report.steps = int(statistics.median_low([r.steps for r in stepped]))
    report.phases = {p: statistics.fmean(r.phases.get(p, 0.0) for r in stepped) for p in PHASES}
    report.step_time_total = report.steps * sum(report.phases.values())
    report.phase_totals = {p: v * report.steps for p, v in report.phases.items()}
    report.step_anchor = first.step_anchor
    samples = [r.samples for r in stepped if r.samples is not None]
    report.samples = sum(samples) if len(samples) == len(stepped) else None
    report.throughput = {"steps_per_s": report.steps / report.step_time_total if report.step_time_total else None}
    for key in ("samples_per_s", "tokens_per_s", "real_tokens_per_s"):
        values = [r.throughput.get(key) for r in stepped]
        if any(v is not None for v in values):
            report.throughput[key] = sum(v for v in values if v is not None)
    for key in LOOP_SIGNALS:
        if key in first.signals:
            report.signals[key] = first.signals[key]
    report.compute, report.memory_breakdown = first.compute, first.memory_breakdown
    report.step_series = first.step_series


def load(directory: str | Path) -> Report:
    """The merged, diagnosed Report of the rank Reports ``rank_profile()`` wrote to ``directory``."""
    from ..diagnosis import diagnose

    path = Path(directory)
    files = sorted(path.glob("rank-*.json"))
    if not files:
        raise FileNotFoundError(f"no rank reports (rank-*.json) in {path}")
    ranks = []
    for file in files:
        try:
            ranks.append(Report.from_dict(json.loads(file.read_text(encoding="utf-8"))))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{file} is not a rank report: {exc}") from None
    report = merge(ranks)
    report.source = f"# rank reports in {path}"
    world = report.signals["distributed"]["world_size"]
    seen = {row["rank"] for row in report.signals["distributed"]["ranks"]}
    if isinstance(world, int) and len(seen) < world:
        report.notes.append(f"{world - len(seen)} of {world} ranks left no report in {path}: "
                            f"{', '.join(str(r) for r in sorted(set(range(world)) - seen)[:20])}")
    # No process watched the machine for this view: the ranks' own timeline (rank 0's) and their largest peaks.
    report.wall_time = max((r.wall_time for r in ranks), default=0.0)
    report.started_at = min((r.started_at for r in ranks if r.started_at), default="")
    report.environment, report.timeline = report.ranks[0].environment, report.ranks[0].timeline
    keys = {k for r in ranks for k in r.peaks}
    report.peaks = {key: max(r.peaks[key] for r in ranks if key in r.peaks) for key in keys}
    diagnose(report)
    return report
