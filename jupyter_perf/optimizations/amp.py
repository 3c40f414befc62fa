"""precision.amp: the forward and the loss under ``torch.autocast``, in 16-bit where the math allows.

Autocast runs matmuls and convolutions in a 16-bit type and keeps reductions,
softmax and losses in float32. Which type is the machine's choice: bfloat16
on the CPU and on GPUs that support it (float32's exponent range, so
gradients need no scaling); float16 elsewhere, with a GradScaler, since its
narrow range flushes small gradients to zero without one.

The change lives in the code, so nothing is changed live: in a training
loop, the statements from the model's call to the loss's assignment go under
``with torch.autocast(...)`` (backward and the optimizer step stay outside,
as autocast's documentation asks), plus the GradScaler calls for float16; in
a cell without backward, the statements calling the model. Before the edit
is kept, the guard compares the model's outputs under autocast with its
float32 outputs on a held input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .model_rewrite import autocast_calls, autocast_training, free_name, scale_gradients
from .models import (
    INPUTS_PARAM,
    MODEL_PARAM,
    backward_calls,
    device_of,
    held_inputs,
    optimizer_names,
    pick_model,
)

if TYPE_CHECKING:
    from .guard import NumericsResult

DTYPES = ("bfloat16", "float16")


class Amp(Optimization):
    entry = CATALOG["precision.amp"]
    params: ClassVar[dict[str, str]] = {
        "model": MODEL_PARAM,
        "inputs": INPUTS_PARAM,
        "dtype": "'bfloat16' or 'float16' (default: bfloat16 on the CPU and on GPUs that support it, else float16 "
                 "with a GradScaler)",
    }

    def plan(self, ctx: Context) -> Change:
        import torch

        name, model = pick_model(ctx)
        device = device_of(model)
        if device.type not in ("cpu", "cuda"):
            raise NotApplicable(f"{name} is on {device}: autocast is rewritten here for the CPU and CUDA only")
        floats = {p.dtype for p in model.parameters() if p.is_floating_point()}
        if floats != {torch.float32}:
            kinds = ", ".join(sorted(str(d).replace("torch.", "") for d in floats))
            raise NotApplicable(f"{name}'s parameters are {kinds}: autocast lowers float32 math only")
        dtype = ctx.param("dtype", lambda: _default_dtype(device))
        if dtype not in DTYPES:
            raise NotApplicable(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        tname = torch_name(ctx.namespace)
        context = f'{tname}.autocast(device_type="{device.type}", dtype={tname}.{dtype})'
        training = bool(backward_calls(ctx))
        scaler = free_name("scaler", ctx.cell.source if ctx.cell else "", ctx.namespace) \
            if training and dtype == "float16" else None
        create = f'{scaler} = {tname}.amp.GradScaler("{device.type}")' if scaler else None

        def rewrite(source: str) -> str | None:
            if not training:
                return autocast_calls(source, name, context)
            new = autocast_training(source, name, context)
            return scale_gradients(new, scaler, optimizer_names(ctx.namespace), create) if new and scaler and create \
                else new

        found = ctx.rewrite([ctx.cell] if ctx.cell else [], rewrite)
        where = "the forward and loss of the training loop" if training else f"the statements calling {name}"
        if found and not ctx.has_edits():
            return ctx.unchanged(f"{where} already run under autocast")
        inputs = held_inputs(ctx, name, model)
        kind = "amp_bf16" if dtype == "bfloat16" else "amp_fp16"
        autocast = torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))

        def live(undo: Undo) -> NumericsResult:
            return inputs.check(kind, model, lambda: model, autocast)

        description = f"{where} run under {context}" + (f", with {scaler} = GradScaler" if scaler else "") + \
            "; re-run the cell to measure"
        snippet = None if found else _snippet(name, context, training, scaler, create)
        return ctx.change(description, live, _warnings(device, dtype), snippet, expects={name: model})


def _default_dtype(device: Any) -> str:
    import torch

    return "float16" if device.type == "cuda" and not torch.cuda.is_bf16_supported() else "bfloat16"


def _warnings(device: Any, dtype: str) -> list[str]:
    import torch

    if device.type == "cpu" and dtype == "bfloat16" and not (
            torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return [("this CPU has no native bfloat16 instructions (AVX512-BF16 or AMX): bfloat16 math is emulated and "
                "may run slower than float32; the re-run will tell")]
    return []


def _snippet(name: str, context: str, training: bool, scaler: str | None, create: str | None) -> str:
    if not training:
        return f"with {context}:\n    out = {name}(x)  # the statements that call {name}"
    lines = [create] if create else []
    lines += ["for x, y in loader:", f"    with {context}:",
              f"        loss = loss_fn({name}(x), y)  # forward and loss"]
    lines += [f"    {scaler}.scale(loss).backward()", f"    {scaler}.step(optimizer)", f"    {scaler}.update()"] \
        if scaler else ["    loss.backward()  # backward and step outside autocast", "    optimizer.step()"]
    return "\n".join(lines)
