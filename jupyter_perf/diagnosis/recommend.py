"""Findings -> ranked Recommendations.

Each finding id maps to the optimizations that address it, with a one-line
reason quoting the finding's evidence and an Amdahl-style expected speedup
where the evidence gives both the share a fix acts on and how much it shrinks
it; None otherwise, rather than a guess. Ranking: fixes for memory_capacity
and memory_leak first (a run that dies of memory gains nothing from speed), then by expected
speedup; fixes whose gain is unknown after those, safe and certain ones before speculative or
numerics-changing ones (each optimization's certainty and cost, catalog.py); one Recommendation
per optimization id, the best-ranked one.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import units
from ..catalog import BATCH_SIZE, CATALOG, CERTAINTY, COST
from ..report import Finding, Recommendation, Report
from . import distributed
from .common import amdahl, backward_calls, items, named, pct, recommendation, size, step_share, uses_cuda
from .compute import amp_fact
from .memory import ACCUMULATION_STEPS, growing_containers, pressure, savings
from .thresholds import COMPUTE, INPUT_PIPELINE, TRANSFERS

#: Findings whose fixes outrank any speedup. A container merely holding graphs (``retained_graphs``,
#: no growth seen in this run) is not one of them: it ranks by expected gain like any other.
_MEMORY_FINDINGS = ("memory_capacity", "memory_leak")

def recommend(report: Report) -> list[Recommendation]:
    recs = [r for f in report.findings for r in _BY_FINDING.get(f.id, _none)(report, f)]
    recs.sort(key=rank)  # stable: equal keys keep their findings' order
    best: dict[str, Recommendation] = {}
    for rec in recs:
        best.setdefault(rec.optimization, rec)
    return list(best.values())


def rank(rec: Recommendation) -> tuple:
    """Memory fixes first: the free ones, then by the bytes each would free; then estimated gains, highest first;
    then unestimated ones by their certainty and cost (catalog.py)."""
    entry = CATALOG[rec.optimization]
    certainty, cost = CERTAINTY.index(entry.certainty), COST.index(entry.cost)
    if rec.finding in _MEMORY_FINDINGS:
        return (0, entry.cost != "free", -(rec.expected_freed_bytes or 0), certainty, cost)
    return (1, rec.expected_speedup is None, -(rec.expected_speedup or 0), certainty, cost)


def _none(report: Report, finding: Finding) -> list[Recommendation]:
    return []


# ------------------------------------------------------------- data loading
def _worker_plan(finding: Finding) -> tuple[dict, int, int] | None:
    """(loader, current workers, proposed workers) for the loader that waited longest."""
    loaders = finding.evidence["dataloaders"]
    current = loaders[0].get("num_workers") if loaders else None
    if current is None:
        return None
    target = max(2 * current, INPUT_PIPELINE.min_suggested_workers)
    cores = finding.evidence["cpu_available"]
    if isinstance(cores, int):
        target = min(target, cores)  # PyTorch warns past one worker per core
    # One worker adds no loading parallelism over the main process.
    return (loaders[0], current, target) if target > max(current, 1) else None


def _input_pipeline(report: Report, f: Finding) -> list[Recommendation]:
    """Workers, with an Amdahl estimate; a disk-bound wait leaves the advice to disk_io."""
    plan = _worker_plan(f)
    if plan is None or report.finding("disk_io"):
        return []
    loader, current, target = plan
    share = step_share(f)
    waited = f"Data wait is {pct(share)} of each step with num_workers={current}"
    if loader.get("dataset") in INPUT_PIPELINE.in_memory_datasets:
        return [recommendation("dataloader.workers", f,
                     f"{waited}, but {loader['dataset']} is already in memory: workers add a "
                     "copy per batch and can lose, so re-measure.", None, num_workers=target)]
    speedup = amdahl(share, target / max(current, 1))
    return [recommendation("dataloader.workers", f, f"{waited}; {target} workers load batches in parallel "
                 f"(about ×{speedup:.2f} if loading scales).", speedup, num_workers=target)]


def _disk_io(report: Report, f: Finding) -> list[Recommendation]:
    """Workers without an estimate: they overlap reads only as far as the storage allows."""
    plan = _worker_plan(f)
    if plan is None:
        return []
    rate = f.evidence["read_bytes_per_s"]
    return [recommendation("dataloader.workers", f,
                 f"{size(rate)}/s is read from storage during a {pct(step_share(f))} data wait; "
                 f"{plan[2]} workers keep more reads in flight (caching the data in RAM or on local SSD removes them).",
                 None, num_workers=plan[2])]


def _host_to_device(report: Report, f: Finding) -> list[Recommendation]:
    pageable = f.evidence.get("pageable_fraction")
    unpinned = [d for d in items(report, "dataloaders") if d.get("pin_memory") is False]
    if pageable is None or pageable < TRANSFERS.pageable_fraction or not unpinned:
        return []
    share = step_share(f)
    copied = f"{pct(pageable)} of the copies ({pct(share)} of the step) come from pageable memory"
    if unpinned[0].get("dataset") in INPUT_PIPELINE.in_memory_datasets:
        return [recommendation("dataloader.pin_memory", f,
                     f"{copied}, but {named(unpinned[0], 'DataLoader')} serves an in-memory "
                     "dataset: pinning adds a host copy per batch (×0.71 measured on an H200); keeping it on the GPU "
                     "is the surer fix.", None, pin_memory=True)]
    speedup = amdahl(share * pageable, TRANSFERS.pinned_speedup)
    return [recommendation("dataloader.pin_memory", f,
                 f"{copied}; pinned batches copy about {TRANSFERS.pinned_speedup:.0f}× "
                 f"faster and can overlap with non_blocking=True (about ×{speedup:.2f}).", speedup, pin_memory=True)]


# ------------------------------------------------------------ launch / math
def _launch_overhead(report: Report, f: Finding) -> list[Recommendation]:
    recs, share = [], step_share(f)
    loader = next((d for d in items(report, "dataloaders") if d.get("batch_size")), None)
    if loader:
        batch, calls = loader["batch_size"], backward_calls(report)
        bigger = BATCH_SIZE.propose(batch, None if calls is None else calls > 0, loader.get("dataset_len"))
        if bigger > batch:
            # The fixed per-step cost is spread over bigger/batch times the samples.
            speedup = amdahl(share, bigger / batch)
            recs.append(recommendation("dataloader.batch_size", f,
                             f"Launch overhead is {pct(share)} of the step; a batch "
                             f"of {bigger} instead of {batch} spreads it over {bigger // batch}× the samples (about "
                             f"×{speedup:.2f} samples/s; in training, revisit the learning rate).", speedup,
                             batch_size=bigger))
    recs.append(recommendation("compile.torch_compile", f,
                     f"Launch overhead is {pct(share)} of the step; torch.compile "
                     "fuses small ops into fewer kernels and drops the Python between them."))
    if uses_cuda(report):
        recs.append(recommendation("compile.cuda_graphs", f,
                         f"The GPU idles {pct(share)} of the step waiting for launches; "
                         "a CUDA graph replays the whole step's kernels with one launch."))
    return recs


#: Measured on an H200 (benchmarks/results/gpu_check_h200.txt): bf16 convolutions in NCHW gained
#: nothing (cuDNN transposes to NHWC and back), ×2.0 with channels_last; so AMP on a conv net says so.
_AMP_WITH_NHWC = ("; on convolutions apply it together with layout.channels_last (measured on an H200: ×0.99 alone "
                  "in NCHW, ×2.0 together)")


def _compute(report: Report, f: Finding) -> list[Recommendation]:
    recs = []
    levers = f.evidence["levers"]
    for opt, fact in levers.items():
        speedup, params = _threads_plan(report, step_share(f)) if opt == "cpu.threads" else (None, {})
        gain = f" (about ×{speedup:.2f} if the math scales)" if speedup else ""
        pairing = _AMP_WITH_NHWC if opt == "precision.amp" and "layout.channels_last" in levers else ""
        recs.append(recommendation(opt, f, f"{fact}; {CATALOG[opt].why}{gain}{pairing}.", speedup, **params))
    return recs


def _threads_plan(report: Report, compute_share: float) -> tuple[float | None, dict]:
    """Too few threads: Amdahl over the model phases, up to the likely physical cores; too many: no estimate."""
    cpu = report.signals["cpu"]
    threads, cores = cpu["torch_threads"], cpu["available"]
    if threads > cores:
        return None, {"threads": cores}
    target = int(cores * COMPUTE.min_thread_fraction)
    return amdahl(compute_share, target / threads), {"threads": target}


# ------------------------------------------------------------------- memory
def _memory_capacity(report: Report, f: Finding) -> list[Recommendation]:
    """Each fix with what it would free where the breakdown says how much the activations hold (memory.savings)."""
    full = "The run ran out of memory" if f.evidence["oom"] else pressure(f)
    freed = savings(report)
    recs = _release_graph(report, f)
    fact = amp_fact(report) if uses_cuda(report) else None
    if fact:
        recs.append(_freeing("precision.amp", f, freed, f"{full}; {fact}, and autocast roughly halves activation "
                             "memory"))
    if backward_calls(report) != 0:  # training, or not known to be inference
        k = ACCUMULATION_STEPS
        recs += [
            _freeing("memory.grad_accumulation", f, freed, f"{full}; 1/{k} of the batch per micro-batch with "
                     f"gradients accumulated over {k} keeps the effective batch and frees {k - 1}/{k} of the "
                     "activations", steps=k),
            _freeing("memory.checkpointing", f, freed, f"{full}; recomputing activations in backward instead of "
                     "storing them trades about a third more compute for most of their memory"),
        ]
        return recs
    if (report.signals.get("forward") or {}).get("grad_enabled_calls"):
        recs.append(_freeing("inference.inference_mode", f, freed, f"{full}; these forwards keep activations for a "
                             "backward that never runs"))
    return recs


def _freeing(optimization: str, finding: Finding, freed: dict[str, float], reason: str,
             **params: Any) -> Recommendation:
    """A memory fix whose reason ends with the bytes it would free, of the activations the breakdown measured."""
    rec = recommendation(optimization, finding, reason, **params)
    rec.expected_freed_bytes = freed.get(optimization)
    held = (finding.evidence.get("memory_breakdown") or {}).get("activations")
    if rec.expected_freed_bytes and held:
        rec.reason += f": about {units.size(rec.expected_freed_bytes)} of the {units.size(held)} of activations"
    rec.reason += "."
    return rec


def _release_graph(report: Report, f: Finding) -> list[Recommendation]:
    """For the container that gained the most graphs during the run; none for containers that did not grow."""
    growing = growing_containers(report)
    if not growing:
        return []
    held = growing[0]
    reason = (f"`{held['name']}` gained {held['gained']} tensors with their autograd graphs in {held['steps']} steps; "
              "storing `.item()` or `.detach()` values frees them")
    if f.id == "memory_leak":
        reason = f.summary.split(";")[0].split(" while ")[0] + "; " + reason
    return [recommendation("memory.release_graph", f, reason + ".", container=held["name"])]


def _inference_with_grad(report: Report, f: Finding) -> list[Recommendation]:
    calls = f.evidence["grad_enabled_calls"]
    return [recommendation("inference.inference_mode", f,
                 f"{calls} forward calls recorded autograd graphs and no backward ran; "
                 "inference_mode skips the recording and frees activations at once.")]


# ---------------------------------------------------------- language models
def _padding_waste(report: Report, f: Finding) -> list[Recommendation]:
    """Length grouping for the loader that fed the padded batches, expected from the padded share of the model's
    math (forward and backward work on every position; the optimizer's does not depend on them)."""
    loader = next((d for d in f.evidence["dataloaders"] if d.get("name")), None)
    if loader is None:
        return []  # the Trainer's own loader: the finding's summary says what to set
    share, model = f.evidence["padding_share"], f.evidence["model_share"]
    speedup = amdahl(model, 1 / (1 - share)) if model is not None and share < 1 else None
    gain = f" (about ×{speedup:.2f} if the model's time follows its positions)" if speedup else ""
    return [recommendation("data.length_grouping", f,
                 f"{pct(share)} of the token positions are padding; batches of similar "
                 f"lengths padded to their longest skip most of them{gain}.", speedup, name=loader["name"])]


def _attention_eager(report: Report, f: Finding) -> list[Recommendation]:
    params = {"model": f.evidence["model"]} if f.evidence["model"] else {}
    how = "a Hugging Face model switches implementation" if f.evidence["implementation"] == "eager" else \
        "the hand-written softmax(q @ kᵀ) @ v becomes one call"
    return [recommendation("attention.sdpa", f, f"Attention runs {f.evidence['implementation']}; "
                 f"scaled_dot_product_attention fuses it into one kernel ({how}).", **params)]


def _generation_no_cache(report: Report, f: Finding) -> list[Recommendation]:
    params = {"model": f.evidence["model"]} if f.evidence["model"] else {}
    return [recommendation("generation.kv_cache", f,
                 f"Each new token recomputes {f.evidence['mean_length']:.0f} positions "
                 f"on average ({units.duration(f.evidence['per_token_s'])} a token); with a KV cache it computes "
                 "one.", **params)]


_BY_FINDING: dict[str, Callable[[Report, Finding], list[Recommendation]]] = {
    "input_pipeline": _input_pipeline,
    "disk_io": _disk_io,
    "host_to_device": _host_to_device,
    "launch_overhead": _launch_overhead,
    "compute": _compute,
    "memory_capacity": _memory_capacity,
    "memory_leak": _release_graph,
    "retained_graphs": _release_graph,
    "inference_with_grad": _inference_with_grad,
    "padding_waste": _padding_waste,
    "attention_eager": _attention_eager,
    "generation_no_cache": _generation_no_cache,
    **distributed.RECOMMENDERS,  # communication, straggler, idle_gpus, data_parallel
}
