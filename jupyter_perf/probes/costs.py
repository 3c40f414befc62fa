"""What the steps' model costs: FLOPs per step and utilization (flops.py), and where its memory goes
(memory.py). Read once, after the run, from the live model and optimizer objects; the state before the run
is noted when it starts, so the breakdown can tell the run's own memory from what was there already."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from ..hardware import gpu_peak
from . import flops, memory
from .inputs import RecordedCall

#: The FLOP count replays one forward; a model whose forward took longer than this is not replayed (its
#: cost would be felt), and the report says so. Counting enters a torch dispatch mode, whose first use
#: imports ``torch._dynamo`` (≈ 1 s): any optimizer step and Hugging Face's ``transformers`` import it
#: anyway, so only a plain inference cell whose model does not take token ids goes without FLOPs.
MAX_REPLAY_S = 2.0


@dataclass
class Before:
    """Allocated bytes and what models and optimizers owned of them, per device type, when the run began."""

    allocated: dict[str, float]
    owned: dict[str, memory.Owned]


def before(namespace: dict[str, Any], rss: float | None) -> Before:
    """Note the memory state as the run begins (the CUDA peak counter was just reset by the session)."""
    import torch

    models = [v for v in namespace.values() if isinstance(v, torch.nn.Module)]
    optimizers = [v for v in namespace.values() if isinstance(v, torch.optim.Optimizer)]
    allocated = {"cpu": rss or 0.0}
    owned = {"cpu": memory.owned(models, optimizers, "cpu")}
    if torch.cuda.is_initialized():
        allocated["cuda"] = float(torch.cuda.memory_allocated())
        owned["cuda"] = memory.owned(models, optimizers, "cuda")
    return Before(allocated, owned)


def measure(primary: Any, call: RecordedCall | None, batch_dim: int, models: list[Any], optimizers: list[Any],
            start: Before, report: Any, tokens_per_step: float | None,
            autocast_dtype: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(``Report.compute``, ``Report.memory_breakdown``, notes) for a run whose steps' model is ``primary``,
    first called with ``call`` (whose inputs count samples along ``batch_dim``)."""
    notes: list[str] = []
    device = _device_type(primary)
    trained = (report.phase_totals.get("backward") or 0) > 0
    compute = _compute(primary, call, batch_dim, report, tokens_per_step, trained, device, autocast_dtype, notes)
    breakdown = _memory(models, optimizers, start, report, trained, device)
    return compute, breakdown, notes


def _compute(model: Any, call: RecordedCall | None, batch_dim: int, report: Any, tokens_per_step: float | None,
             trained: bool, device: str, autocast_dtype: Any, notes: list[str]) -> dict[str, Any]:
    from .modules import samples_of, tokens_of

    if call is None or not report.steps or not report.step_time_total:
        return {}
    forward_s = (report.signals.get("forward") or {}).get("seconds") or 0.0
    calls = max(1, (report.signals.get("forward") or {}).get("calls") or 1)
    if forward_s / calls > MAX_REPLAY_S:
        notes.append(f"FLOPs not counted: one forward takes {forward_s / calls:.1f} s, too long to replay")
        return {}
    tokens = tokens_of(call.args, call.kwargs)
    samples = samples_of(call.args, call.kwargs, batch_dim)
    if tokens is None and "torch._dynamo" not in sys.modules:
        return {}  # counting imports torch._dynamo (≈ 1 s): worth it for language models, not for every cell
    try:
        counted = flops.count_forward(model, call, tokens[0] if tokens else None, samples)
    except Exception as exc:  # noqa: BLE001 - the run's own measurements stand without it
        notes.append(f"FLOPs not counted: replaying the model's call raised {type(exc).__name__}: {exc}")
        return {}
    per_step_units, replay_units = ((tokens_per_step, counted.tokens) if tokens_per_step and counted.tokens
                                    else (report.samples / report.steps if report.samples else None, counted.samples))
    if not per_step_units or not replay_units:
        return {}
    factor = 3 if trained else 1
    flops_per_step = counted.flops / replay_units * per_step_units * factor
    flops_per_s = flops_per_step * report.steps / report.step_time_total
    dtype = _math_dtype(model, autocast_dtype, device)
    peak, why = None, "MFU needs a GPU's peak FLOP/s: on the CPU, FLOP/s only"
    if device == "cuda":
        known = gpu_peak(_cuda_name(model))
        peak = known.for_dtype(dtype) if known else None
        why = f"no peak FLOP/s on record for {_cuda_name(model)} in {dtype}: FLOP/s only"
    result = {
        "flops_per_step": flops_per_step,
        "flops_per_s": flops_per_s,
        "peak_flops": peak,
        "mfu": flops_per_s / peak if peak else None,
        "dtype": dtype,
        "method": "FlopCounterMode on one replayed forward" + (", ×3 for backward" if trained else ""),
        "counting_s": counted.seconds,
    }
    if peak is None:
        result["mfu_note"] = why
    if counted.tokens and tokens_per_step:
        per_token = flops.transformer_forward_flops_per_token(model, counted.tokens // max(1, counted.samples or 1))
        if per_token is not None:
            result["formula_flops_per_step"] = per_token * tokens_per_step * factor
    return result


def _memory(models: list[Any], optimizers: list[Any], start: Before, report: Any, trained: bool,
            device: str) -> dict[str, Any]:
    if device not in start.allocated and device != "cuda":
        return {}
    after = memory.owned(models, optimizers, device)
    if device == "cuda":
        peak = report.peaks.get("cuda_allocated_bytes")
        allocated = start.allocated.get("cuda", 0.0)
        owned_before = start.owned.get("cuda", memory.Owned(0, 0, 0, 0))
    else:
        peak = report.peaks.get("rss_bytes")
        allocated, owned_before = start.allocated["cpu"], start.owned["cpu"]
    if not peak:
        return {}
    parts = memory.breakdown(peak, allocated, owned_before, after, trained)
    return {**parts, "peak": int(peak), "device": device}


def _device_type(model: Any) -> str:
    param = next(model.parameters(), None)
    return param.device.type if param is not None else "cpu"


def _cuda_name(model: Any) -> str | None:
    import torch

    param = next(model.parameters(), None)
    return torch.cuda.get_device_name(param.device) if param is not None and param.is_cuda else None


def _math_dtype(model: Any, autocast_dtype: Any, device: str) -> str:
    """The dtype the model's matmuls ran in: autocast's where it was on, else the weights', TF32 where
    float32 matmuls may use tensor cores."""
    torch = sys.modules["torch"]
    dtype = autocast_dtype
    if dtype is None:
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
    if dtype == torch.float32 and device == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
