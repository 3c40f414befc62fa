"""Distributed runs: communication that blocks the step, stragglers, failed ranks, GPUs left idle.

* ``communication``: the step's exposed communication (time blocked on
  collectives, docs/report.md) over a share of the step. In a merged view the
  share is the transfers' own (``transfer_s``, merging.py: at each step the least
  any rank was blocked): a rank waiting for a slower peer is blocked in a
  collective too, but that wait is the slower rank's cost, not the network's.
* ``straggler``: one rank's own work per step (its step minus its blocked
  time) above the median rank's by a margin, with the other ranks losing a
  share of their step waiting for it; the evidence names the rank, its host,
  what is slower (its data wait, its compute, or its other code) and the time
  the others lose.
* ``rank_failed``: a rank that raised, or that sent no report, named with its
  error (the first one the launcher saw first).
* ``idle_gpus`` / ``data_parallel``: one process while GPUs sit idle, or
  ``nn.DataParallel`` (one process driving every GPU, which PyTorch's
  documentation advises replacing): ``distributed.ddp``.

The recommendations for these findings are here too (``RECOMMENDERS``, read by
recommend.py), since they need the DDP facts the same evidence carries.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Sequence

from ..report import Finding, Recommendation, Report
from .common import (
    amdahl,
    duration,
    items,
    pct,
    phase_share,
    recommendation,
    severity,
    size,
    step_share,
    step_time,
    uses_cuda,
)
from .thresholds import DISTRIBUTED

_MIB = 2**20


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    facts = report.signals.get("distributed")
    if not facts:
        return _single_process(report)
    findings = _failed(facts)
    if report.steps < DISTRIBUTED.min_steps:
        return findings
    rows = [row for row in facts.get("ranks") or [] if (row.get("steps") or 0) >= DISTRIBUTED.min_steps]
    communication = _communication(report, facts, rows)
    straggler = _straggler(rows, facts) if len(rows) > 1 else None
    return findings + [f for f in (communication, straggler) if f is not None]


# ------------------------------------------------------------ communication
def _communication(report: Report, facts: dict[str, Any], rows: list[dict[str, Any]]) -> Finding | None:
    shares = [row["communication_share"] for row in rows if row.get("communication_share") is not None]
    step = step_time(report)
    transfer = facts.get("transfer_s")
    if transfer is not None and step:
        share = transfer / step
    else:
        share = min(shares) if shares else phase_share(report, "communication")
    if share is None or share < DISTRIBUTED.communication_share:
        return None
    ddp = facts.get("ddp") or {}
    collectives = facts.get("collectives") or {}
    bandwidth = {op: c.get("bus_bandwidth_bytes_per_s") for op, c in collectives.items()}
    if ddp.get("bus_bandwidth_bytes_per_s") is not None:
        bandwidth["ddp_buckets"] = ddp["bus_bandwidth_bytes_per_s"]
    per_step = (ddp.get("bytes_per_step") or 0) + sum(c.get("bytes_per_step") or 0 for c in collectives.values())
    world, backend = facts.get("world_size"), facts.get("backend")
    summary = (f"The step is blocked on communication {pct(share)} of the time ({duration(share * step)} of "
               f"{duration(step)}), {size(per_step)} exchanged per step by {world} ranks over "
               f"{backend or 'an unknown backend'}")
    if ddp.get("overlap") is not None:
        summary += f"; {pct(ddp['overlap'])} of DDP's bucket time was hidden behind backward"
    if ddp.get("buckets_per_backward"):
        summary += f", in {ddp['buckets_per_backward']:.0f} bucket(s) per backward"
    return Finding(
        id="communication",
        severity=severity(share, DISTRIBUTED.communication_share_high),
        summary=summary + ".",
        evidence={
            "communication_share": share,
            "mean_communication_share": statistics.fmean(shares) if shares else share,
            "waiting_for_ranks_s": (statistics.fmean(shares) - share) * step if shares else None,
            "communication_s": share * step,
            "step_time_s": step,
            "bytes_per_step": per_step,
            "bus_bandwidth_bytes_per_s": bandwidth,
            "buckets_per_backward": ddp.get("buckets_per_backward"),
            "buckets_per_step": ddp.get("buckets_per_step"),
            "all_reduce_rounds_per_step": ddp["backwards"] / report.steps if ddp.get("backwards") else None,
            "backwards_per_step": ((report.signals.get("backward") or {}).get("calls") or 0) / report.steps,
            "overlap": ddp.get("overlap"),
            "ddp_models": ddp.get("models") or [],
            "compression_error": ddp.get("compression_error"),
            "collectives": collectives,
            "world_size": world,
            "backend": backend,
            "threshold": DISTRIBUTED.communication_share,
        },
        bottleneck="communication",
        share=share,
    )


# ---------------------------------------------------------------- straggler
def _straggler(rows: list[dict[str, Any]], facts: dict[str, Any]) -> Finding | None:
    busy = [row["busy_s"] for row in rows if row.get("busy_s") is not None]
    if len(busy) < 2:
        return None
    median = statistics.median(busy)
    if median <= 0:
        return None
    slow = [row for row in rows if row.get("busy_s") is not None
            and row["busy_s"] >= median * (1 + DISTRIBUTED.straggler_margin)]
    if not slow:
        return None
    worst = max(slow, key=lambda row: row["busy_s"])
    others = [row for row in rows if row is not worst]
    waited = statistics.median(row["communication_s"] or 0.0 for row in others)
    lost = max(0.0, waited - (worst["communication_s"] or 0.0))
    step = statistics.median(row["step_s"] for row in others)
    lost_share = lost / step if step else 0.0
    if lost_share < DISTRIBUTED.straggler_lost_share:
        return None
    margin = worst["busy_s"] / median - 1
    excess = {part: worst[key] - statistics.median(row[key] or 0.0 for row in others)
              for part, key in (("data_wait", "data_wait_s"), ("compute", "compute_s")) if worst.get(key) is not None}
    excess["other"] = (worst["busy_s"] - statistics.median(row["busy_s"] for row in others)) - sum(excess.values())
    slower_in = max(excess, key=excess.__getitem__)
    words = {"data_wait": "its data wait", "compute": "its compute (forward, backward, optimizer)",
             "other": "its own code outside the model's phases"}
    host = f" on {worst['host']}" if worst.get("host") else ""
    summary = (f"Rank {worst['rank']}{host} is a straggler: its own work takes {pct(margin)} longer than the median "
               f"rank's ({duration(worst['busy_s'])} vs {duration(median)} a step), mostly {words[slower_in]} "
               f"(+{duration(excess[slower_in])}); the other ranks lose {duration(lost)} a step ({pct(lost_share)}) "
               "waiting for it in collectives")
    return Finding(
        id="straggler",
        severity="high" if margin >= DISTRIBUTED.straggler_margin_high else "medium",
        summary=summary + ".",
        evidence={
            "rank": worst["rank"],
            "host": worst.get("host"),
            "busy_s": worst["busy_s"],
            "median_busy_s": median,
            "margin": margin,
            "slower_in": slower_in,
            "excess_s": excess,
            "lost_s_per_step": lost,
            "lost_share": lost_share,
            "lost_s_total": lost * (worst.get("steps") or 0),
            "slow_ranks": [row["rank"] for row in sorted(slow, key=lambda r: -r["busy_s"])],
            "world_size": facts.get("world_size"),
            "thresholds": {"margin": DISTRIBUTED.straggler_margin, "lost_share": DISTRIBUTED.straggler_lost_share},
        },
        share=lost_share,
    )


# ------------------------------------------------------------------ failures
def _failed(facts: dict[str, Any]) -> list[Finding]:
    failed, missing = facts.get("failed") or [], facts.get("missing") or []
    if not failed and not missing:
        return []
    if failed:
        first = failed[0]
        rank, error = first["rank"], first["error"]
        last_line = (error["message"].strip().splitlines() or [""])[-1][:200]
        summary = f"Rank {rank}{_on(first)} failed with {error['type']}: {last_line}"
    else:
        first = missing[0]
        rank, error = first["index"], {"type": "no report", "message": f"exit code {first.get('exitcode')}"}
        summary = f"Rank {rank} ended without a report (exit code {first.get('exitcode')})"
    others = len(failed) + len(missing) - 1
    if others:
        summary += f"; {others} other rank(s) failed or sent nothing after it"
    return [Finding(id="rank_failed", severity="high", summary=summary + ".",
                    evidence={"rank": rank, "host": first.get("host"), "error": error,
                              "failed": [{"rank": f["rank"], "error": f["error"]} for f in failed],
                              "missing": missing})]


def _on(row: dict[str, Any]) -> str:
    return f" on {row['host']}" if row.get("host") else ""


# ----------------------------------------------------------- single process
def _single_process(report: Report) -> list[Finding]:
    """One process: GPUs the run left idle, or nn.DataParallel driving them."""
    findings = []
    parallel = [m for m in items(report, "models") if m.get("class") == "DataParallel"]
    if parallel:
        findings.append(Finding(
            id="data_parallel", severity="medium",
            summary=(f"`{parallel[0].get('name') or 'the model'}` is an nn.DataParallel: one process replicates it "
                     "to every GPU each step and gathers the outputs on the first; DistributedDataParallel runs one "
                     "process per GPU, which PyTorch's documentation recommends even on one machine."),
            evidence={"models": parallel}))
    gpus = [g for g in items(report, "gpu") if g.get("mean_util") is not None]
    if len(gpus) < 2 or not uses_cuda(report) or report.steps < DISTRIBUTED.min_steps:
        return findings
    idle = [g for g in gpus if g["mean_util"] < DISTRIBUTED.idle_gpu_util]
    if idle and len(idle) < len(gpus):
        findings.append(Finding(
            id="idle_gpus", severity="medium",
            summary=(f"{len(idle)} of {len(gpus)} GPUs stayed idle through the run (under "
                     f"{DISTRIBUTED.idle_gpu_util:.0f}% utilisation): one process trains on one GPU; DDP with one "
                     f"process per GPU would use all {len(gpus)}."),
            evidence={"gpus": [{k: g.get(k) for k in ("index", "name", "mean_util")} for g in gpus],
                      "idle": [g["index"] for g in idle], "threshold": DISTRIBUTED.idle_gpu_util}))
    return findings


# ---------------------------------------------------------- recommendations
def _recommend_communication(report: Report, f: Finding) -> list[Recommendation]:
    recs, share, e = [], step_share(f), f.evidence
    models = e["ddp_models"]
    ddp = models[0] if models else None
    rounds, backwards = e.get("all_reduce_rounds_per_step") or 0, e.get("backwards_per_step") or 0
    if ddp is not None and rounds >= 1.5:
        k = round(rounds)
        gain = 1 / (1 - share * (k - 1) / k)
        recs.append(recommendation("distributed.no_sync", f,
                         f"Each optimizer step runs {k} backward passes and DDP all-reduces "
                         f"after every one; under model.no_sync() the first {k - 1} accumulate locally and one "
                         f"all-reduce remains (about ×{gain:.2f}).", gain, steps=k))
    elif ddp is not None and backwards < 1.5:  # (more backward passes than all-reduces: no_sync is in use already)
        recs.append(recommendation("distributed.no_sync", f,
                         f"Communication blocks {pct(share)} of each step; accumulating "
                         "gradients locally over 4 batches under model.no_sync() all-reduces once per 4 batches "
                         f"(about ×{amdahl(share, 4):.2f} samples/s; the effective batch grows ×4: revisit the "
                         "learning rate).", amdahl(share, 4), steps=4))
    if ddp is not None and not ddp.get("comm_hook"):
        nccl = e.get("backend") == "nccl"
        dtype = "bfloat16" if nccl else "float16"
        error = (e.get("compression_error") or {}).get(dtype)
        measured = f" (measured on this run's gradients: {error:.2%} relative error)" if error is not None else ""
        outlook = (f"about ×{amdahl(share, 2):.2f} where the transfer is bandwidth-bound" if nccl else
                   "but over gloo the cast and the float16 sums run on the CPU: 2 CPU ranks measured ×0.74 here, so "
                   "re-measure")
        recs.append(recommendation("distributed.comm_hook", f,
                         f"{size(e['bytes_per_step'])} of gradients are all-reduced per "
                         f"step; sending them in {dtype} halves the bytes{measured} ({outlook}).",
                         amdahl(share, 2) if nccl else None, dtype=dtype))
    if ddp is not None and (plan := bucket_plan(ddp, e.get("buckets_per_backward"))):
        what = ", ".join(f"{k}={v}" for k, v in plan.items())
        cpu = "" if e.get("backend") == "nccl" else (" (on CPU ranks the all-reduce needs the cores backward uses: "
                                                     "2 CPU ranks measured ×0.84 here)")
        recs.append(recommendation("distributed.bucket_cap", f,
                         f"DDP hands over {e.get('buckets_per_backward') or 0:.0f} "
                         f"bucket(s) per backward for {size(ddp['gradient_bytes'])} of gradients "
                         f"({pct(e.get('overlap') or 0)} of the bucket time overlapped backward); {what} lets "
                         f"all-reduce start while backward still runs{cpu}.", None, **plan))
    return recs


def bucket_plan(ddp: dict[str, Any], buckets_per_backward: float | None) -> dict[str, Any]:
    """The DDP arguments worth changing, from the measured buckets: a cap that splits the gradients into
    ``DISTRIBUTED.target_buckets`` where they went out in fewer, bucket views where they were copied, a static
    graph where DDP searches for unused parameters every step. A bucket holds whole parameters and closes once
    past its cap, so where one parameter holds half the gradients or more no cap splits them."""
    plan: dict[str, Any] = {}
    gradient_bytes = ddp.get("gradient_bytes") or 0
    splittable = (ddp.get("largest_parameter_bytes") or gradient_bytes) <= gradient_bytes / 2
    if ((buckets_per_backward or 0) < DISTRIBUTED.target_buckets and gradient_bytes >= DISTRIBUTED.min_split_bytes
            and splittable):
        cap = max(1, math.ceil(gradient_bytes / DISTRIBUTED.target_buckets / _MIB))
        if cap * _MIB < (ddp.get("bucket_cap_bytes") or 0):
            plan["bucket_cap_mb"] = cap
    if ddp.get("gradient_as_bucket_view") is False:
        plan["gradient_as_bucket_view"] = True
    if ddp.get("find_unused_parameters") and not ddp.get("static_graph"):
        plan["static_graph"] = True
    return plan


def _recommend_straggler(report: Report, f: Finding) -> list[Recommendation]:
    if f.evidence["slower_in"] != "data_wait":
        return []
    return [recommendation("dataloader.workers", f,
                 f"Rank {f.evidence['rank']} waits longer for its data than the others "
                 f"(+{duration(f.evidence['excess_s']['data_wait'])} a step) and they wait for it; more loader workers "
                 "(on every rank) take the loading off the step.", None)]


def _recommend_ddp(report: Report, f: Finding) -> list[Recommendation]:
    reason = ("one process drives every GPU through nn.DataParallel" if f.id == "data_parallel"
              else f"{len(f.evidence['idle'])} GPU(s) idle")
    return [recommendation("distributed.ddp", f,
                 f"{reason}; DistributedDataParallel with one process per GPU (launched from "
                 "the notebook, before CUDA is initialised in it) trains on all of them.", None)]


RECOMMENDERS: dict[str, Callable[[Report, Finding], list[Recommendation]]] = {
    "communication": _recommend_communication,
    "straggler": _recommend_straggler,
    "idle_gpus": _recommend_ddp,
    "data_parallel": _recommend_ddp,
}
