"""The catalog of one-click optimizations, by id.

Each id maps to the ``module:Class`` that implements it, so listing the ids
(for ``--apply`` validation, or the panel) imports nothing heavy; ``get()``
imports the one module it needs. A new optimization is one module with one
``Optimization`` subclass and one line here (docs/optimizations.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import NotApplicable, applied  # noqa: F401  (public: cheap, no torch)

if TYPE_CHECKING:
    from ..report import Report
    from .base import Change, Optimization, Target

_CATALOG: dict[str, str] = {
    "dataloader.workers": "dataloader:Workers",
    "dataloader.pin_memory": "dataloader:PinMemory",
    "dataloader.batch_size": "dataloader:BatchSize",
    "memory.release_graph": "memory_graph:ReleaseGraph",
    "inference.inference_mode": "inference:InferenceMode",
    "cpu.threads": "threads:Threads",
    "precision.amp": "amp:Amp",
    "precision.tf32": "tf32:Tf32",
    "layout.channels_last": "channels_last:ChannelsLast",
    "compile.torch_compile": "torch_compile:TorchCompile",
    "compile.cuda_graphs": "torch_compile:CudaGraphs",
    "memory.checkpointing": "checkpointing:Checkpointing",
    "memory.grad_accumulation": "grad_accumulation:GradAccumulation",
    "compression.quantize_dynamic": "quantize:QuantizeDynamic",
    "compression.prune": "prune:Prune",
    "optimizer.fused": "fused_optimizer:FusedOptimizer",
    "distributed.bucket_cap": "bucket_cap:BucketCap",
    "distributed.comm_hook": "comm_hook:CommHook",
    "distributed.no_sync": "no_sync:NoSync",
    "distributed.ddp": "ddp:Ddp",
}

_instances: dict[str, Optimization] = {}


def ids() -> tuple[str, ...]:
    """Every optimization id that can be applied, in catalog order."""
    return tuple(_CATALOG)


def get(opt_id: str) -> Optimization:
    """The optimization for ``opt_id``; KeyError naming the valid ids otherwise."""
    if opt_id not in _CATALOG:
        raise KeyError(f"unknown optimization {opt_id!r}; valid ids: {', '.join(_CATALOG)}")
    if opt_id not in _instances:
        module, cls = _CATALOG[opt_id].split(":")
        _instances[opt_id] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return _instances[opt_id]


def catalog() -> dict[str, Optimization]:
    """Every optimization, imported, by id."""
    return {opt_id: get(opt_id) for opt_id in _CATALOG}


def parse_ids(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; ValueError naming the valid ids if one is unknown."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in _CATALOG]
    if unknown or not wanted:
        raise ValueError(f"unknown optimization {', '.join(unknown) or repr(text)}; valid ids: {', '.join(_CATALOG)}")
    return wanted


def apply_to_cell(opt_ids: list[str], namespace: dict[str, Any], cell: str | Target,
                  report: Report | None = None) -> tuple[str, list[Change | str]]:
    """Apply each optimization in turn to the namespace and the cell, each seeing the code the previous wrote.

    Returns the cell's code to run and, per id, its Change or the reason it did not apply.
    """
    from .base import Target

    target = Target.of(cell)
    outcomes: list[Change | str] = []
    for opt_id in opt_ids:
        try:
            change = get(opt_id).apply(namespace, target, report)
        except NotApplicable as exc:
            outcomes.append(f"{opt_id} not applied: {exc}")
            continue
        outcomes.append(change)
        new = change.rewritten(target)
        if new is not None:
            target = Target(new, target.cell_id, target.prefix)
    return target.source, outcomes
