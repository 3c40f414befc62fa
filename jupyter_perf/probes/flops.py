"""FLOPs per step, measured once per run: the numerator of model FLOPs utilization (MFU).

Counting every step would cost every step, so after the run the steps' model replays its recorded call
(inputs.py) once under torch's ``FlopCounterMode``, which counts each matmul, convolution and attention
op from its shapes. That gives the FLOPs of one forward per token (or per sample where the inputs are not
token ids); a step's FLOPs are that times the tokens (samples) its steps took, times 3 where the steps ran
a backward (the backward of a matmul costs two matmuls: one for the input's gradient, one for the weight's).

For transformers the well-known formula cross-checks the count (Kaplan et al. 2020, "Scaling Laws for
Neural Language Models", §2.1; PaLM, Chowdhery et al. 2022, appendix B): a forward costs 2 FLOPs per
matmul weight per token, plus 4·n_layer·T·d_model per token for attention's two T×T products; training
costs 3× that ("6N per token plus attention"). The formula counts every ``nn.Linear`` (and Hugging Face's
``Conv1D``) weight, which includes a language-model head tied to the embedding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .inputs import RecordedCall, replay


@dataclass(frozen=True)
class ForwardCount:
    """One forward's FLOPs as counted, and what it processed."""

    flops: int
    #: Tokens in the replayed call, or None where its input is not token ids (then ``samples`` counts).
    tokens: int | None
    samples: int | None
    #: Seconds the counting replay took (the profiler's own cost, reported).
    seconds: float


def count_forward(model: Any, call: RecordedCall, tokens: int | None, samples: int | None) -> ForwardCount:
    """Replay ``call`` under a FLOP counter (raises whatever the model raises)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention())
    t0 = time.perf_counter()
    replay(model, call, counter)
    return ForwardCount(int(counter.get_total_flops()), tokens, samples, time.perf_counter() - t0)


def _cpu_attention() -> dict[Any, Any]:
    """torch counts the CUDA kernels of ``scaled_dot_product_attention`` but not the CPU one (torch 2.13):
    count it the same way, or every CPU transformer's attention would count as free."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    return {op: cpu_sdpa}


def transformer_forward_flops_per_token(model: Any, sequence: int) -> float | None:
    """The formula's forward FLOPs per token for a sequence of ``sequence`` tokens; None for a model with no
    attention layers (not a transformer: the formula does not apply)."""
    from torch import nn

    weights = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":  # Hugging Face's GPT-2 linear
            weights += module.weight.numel()
    layers = _attention_layers(model)
    if not layers:
        return None
    return 2 * weights + sum(4 * sequence * width for width in layers)


def _attention_layers(model: Any) -> list[int]:
    """The model width each attention layer works at: ``nn.MultiheadAttention``'s ``embed_dim``, or an
    outermost module whose class name says attention (Hugging Face's and hand-written ones) with the input
    width of its first linear layer."""
    from torch import nn

    widths: list[int] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, nn.MultiheadAttention):
            widths.append(module.embed_dim)
        elif "attention" in type(module).__name__.lower():
            linear = next((m for m in module.modules() if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"),
                          None)
            if linear is None:
                continue
            width = linear.in_features if isinstance(linear, nn.Linear) else linear.weight.shape[0]
            widths.append(width)
        else:
            continue
        inside.update(id(m) for m in module.modules())
    return widths
