"""Findings -> ranked Recommendations.

Each finding id maps to the optimizations that address it, with a one-line
reason quoting the finding's evidence and an Amdahl-style expected speedup
where the evidence gives both the share a fix acts on and how much it shrinks
it; None otherwise, rather than a guess. Ranking: fixes for memory_capacity
and memory_leak first (a run that dies of memory gains nothing from speed), then by expected
speedup, unestimated ones last in the order their findings were ranked; one
Recommendation per optimization id, the best-ranked one.
"""

from __future__ import annotations

from typing import Any, Callable

from ..report import OPTIMIZATIONS, Finding, Recommendation, Report
from . import distributed
from .common import backward_calls, items, named, pct, size, uses_cuda
from .compute import amp_fact
from .launch import proposed_batch_size
from .thresholds import COMPUTE, INPUT_PIPELINE, TRANSFERS

#: Findings whose fixes outrank any speedup. A container merely holding graphs (``retained_graphs``,
#: no growth seen in this run) is not one of them: it ranks by expected gain like any other.
_MEMORY_FINDINGS = ("memory_capacity", "memory_leak")


def recommend(report: Report) -> list[Recommendation]:
    recs = [r for f in report.findings for r in _BY_FINDING.get(f.id, _none)(report, f)]
    recs.sort(key=lambda r: (r.finding not in _MEMORY_FINDINGS, r.expected_speedup is None, -(r.expected_speedup or 0)))
    best: dict[str, Recommendation] = {}
    for rec in recs:
        best.setdefault(rec.optimization, rec)
    return list(best.values())


def amdahl(fraction: float, factor: float) -> float:
    """Whole-step speedup when ``fraction`` of the step runs ``factor`` times faster."""
    return 1.0 / ((1.0 - fraction) + fraction / factor)


def _rec(optimization: str, finding: Finding, reason: str, speedup: float | None = None,
         **params: Any) -> Recommendation:
    if optimization not in OPTIMIZATIONS:
        raise ValueError(f"unknown optimization id {optimization!r}")
    return Recommendation(optimization, reason, speedup, finding.id, params)


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
    waited = f"Data wait is {pct(f.share)} of each step with num_workers={current}"
    if loader.get("dataset") in INPUT_PIPELINE.in_memory_datasets:
        return [_rec("dataloader.workers", f, f"{waited}, but {loader['dataset']} is already in memory: workers add a "
                     "copy per batch and can lose, so re-measure.", None, num_workers=target)]
    speedup = amdahl(f.share, target / max(current, 1))
    return [_rec("dataloader.workers", f, f"{waited}; {target} workers load batches in parallel "
                 f"(about ×{speedup:.2f} if loading scales).", speedup, num_workers=target)]


def _disk_io(report: Report, f: Finding) -> list[Recommendation]:
    """Workers without an estimate: they overlap reads only as far as the storage allows."""
    plan = _worker_plan(f)
    if plan is None:
        return []
    rate = f.evidence["read_bytes_per_s"]
    return [_rec("dataloader.workers", f, f"{size(rate)}/s is read from storage during a {pct(f.share)} data wait; "
                 f"{plan[2]} workers keep more reads in flight (caching the data in RAM or on local SSD removes them).",
                 None, num_workers=plan[2])]


def _host_to_device(report: Report, f: Finding) -> list[Recommendation]:
    pageable = f.evidence.get("pageable_fraction")
    unpinned = [d for d in items(report, "dataloaders") if d.get("pin_memory") is False]
    if pageable is None or pageable < TRANSFERS.pageable_fraction or not unpinned:
        return []
    copied = f"{pct(pageable)} of the copies ({pct(f.share)} of the step) come from pageable memory"
    if unpinned[0].get("dataset") in INPUT_PIPELINE.in_memory_datasets:
        return [_rec("dataloader.pin_memory", f, f"{copied}, but {named(unpinned[0], 'DataLoader')} serves an in-memory "
                     "dataset: pinning adds a host copy per batch (×0.71 measured on an H200); keeping it on the GPU "
                     "is the surer fix.", None, pin_memory=True)]
    speedup = amdahl(f.share * pageable, TRANSFERS.pinned_speedup)
    return [_rec("dataloader.pin_memory", f, f"{copied}; pinned batches copy about {TRANSFERS.pinned_speedup:.0f}× "
                 f"faster and can overlap with non_blocking=True (about ×{speedup:.2f}).", speedup, pin_memory=True)]


# ------------------------------------------------------------ launch / math
def _launch_overhead(report: Report, f: Finding) -> list[Recommendation]:
    recs = []
    loader = next((d for d in items(report, "dataloaders") if d.get("batch_size")), None)
    if loader:
        batch, calls = loader["batch_size"], backward_calls(report)
        bigger = proposed_batch_size(batch, None if calls is None else calls > 0, loader.get("dataset_len"))
        if bigger > batch:
            # The fixed per-step cost is spread over bigger/batch times the samples.
            speedup = amdahl(f.share, bigger / batch)
            recs.append(_rec("dataloader.batch_size", f, f"Launch overhead is {pct(f.share)} of the step; a batch "
                             f"of {bigger} instead of {batch} spreads it over {bigger // batch}× the samples (about "
                             f"×{speedup:.2f} samples/s; in training, revisit the learning rate).", speedup,
                             batch_size=bigger))
    recs.append(_rec("compile.torch_compile", f, f"Launch overhead is {pct(f.share)} of the step; torch.compile "
                     "fuses small ops into fewer kernels and drops the Python between them."))
    if uses_cuda(report):
        recs.append(_rec("compile.cuda_graphs", f, f"The GPU idles {pct(f.share)} of the step waiting for launches; "
                         "a CUDA graph replays the whole step's kernels with one launch."))
    return recs


_LEVER_WHY = {
    "precision.amp": "autocast runs matmuls and convolutions in 16-bit on tensor cores",
    "precision.tf32": "TF32 runs float32 matmuls on tensor cores with a 10-bit mantissa",
    "layout.channels_last": "NHWC lets cuDNN pick its fastest convolution kernels",
    "optimizer.fused": "a fused step updates every parameter in one kernel",
    "compile.torch_compile": "torch.compile fuses ops and removes per-op Python overhead",
    "cpu.threads": "one intra-op thread per physical core uses the CPU without contention",
    "compression.quantize_dynamic": "dynamic int8 quantization speeds up Linear/LSTM inference on the CPU",
}


#: Measured on an H200 (benchmarks/results/gpu_check_h200.txt): bf16 convolutions in NCHW gained
#: nothing (cuDNN transposes to NHWC and back), ×2.0 with channels_last; so AMP on a conv net says so.
_AMP_WITH_NHWC = ("; on convolutions apply it together with layout.channels_last (measured on an H200: ×0.99 alone "
                  "in NCHW, ×2.0 together)")


def _compute(report: Report, f: Finding) -> list[Recommendation]:
    recs = []
    levers = f.evidence["levers"]
    for opt, fact in levers.items():
        speedup, params = _threads_plan(report, f.share) if opt == "cpu.threads" else (None, {})
        gain = f" (about ×{speedup:.2f} if the math scales)" if speedup else ""
        pairing = _AMP_WITH_NHWC if opt == "precision.amp" and "layout.channels_last" in levers else ""
        recs.append(_rec(opt, f, f"{fact}; {_LEVER_WHY[opt]}{gain}{pairing}.", speedup, **params))
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
    full = "The run ran out of memory" if f.evidence["oom"] else f.summary.rstrip(".")
    recs = _release_graph(report, f)
    fact = amp_fact(report) if uses_cuda(report) else None
    if fact:
        recs.append(_rec("precision.amp", f, f"{full}; {fact}, and autocast roughly halves activation memory."))
    if backward_calls(report) != 0:  # training, or not known to be inference
        recs += [
            _rec("memory.grad_accumulation", f, f"{full}; half the batch per step with gradients accumulated over 2 "
                 "steps keeps the effective batch and halves activation memory.", steps=2),
            _rec("memory.checkpointing", f, f"{full}; recomputing activations in backward instead of storing them "
                 "trades about a third more compute for most of their memory."),
        ]
        return recs
    if (report.signals.get("forward") or {}).get("grad_enabled_calls"):
        recs.append(_rec("inference.inference_mode", f, f"{full}; these forwards keep activations for a backward "
                         "that never runs."))
    return recs


def _release_graph(report: Report, f: Finding) -> list[Recommendation]:
    graphs = report.signals.get("retained_graphs") or []
    if not graphs:
        return []
    held = graphs[0]
    reason = (f"`{held.get('name')}` holds {held.get('tensors')} tensors with their autograd graphs; storing "
              "`.item()` or `.detach()` values frees them")
    if f.id == "memory_leak":
        reason = f.summary.split(";")[0] + "; " + reason
    return [_rec("memory.release_graph", f, reason + ".", container=held.get("name"))]


def _inference_with_grad(report: Report, f: Finding) -> list[Recommendation]:
    calls = f.evidence["grad_enabled_calls"]
    return [_rec("inference.inference_mode", f, f"{calls} forward calls recorded autograd graphs and no backward ran; "
                 "inference_mode skips the recording and frees activations at once.")]


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
    **distributed.RECOMMENDERS,  # communication, straggler, idle_gpus, data_parallel
}
