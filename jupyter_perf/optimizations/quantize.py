"""compression.quantize_dynamic: int8 Linear/LSTM/GRU layers for CPU inference.

``torch.ao.quantization.quantize_dynamic`` stores the weights of these layers
in int8 and quantizes each activation on the fly (its range measured per
batch, hence "dynamic"), running the matmuls with int8 kernels (fbgemm /
oneDNN): large Linear layers run about 2-4× faster on the CPU, with a quarter
of the weight memory. It returns a quantized copy, so the namespace names
are pointed at the copy and the undo points them back at the untouched
original; the code gets ``model = torch.ao.quantization.quantize_dynamic(...)``
right after the line that builds the model. Inference only (quantized layers
have no gradients), on the CPU only. The guard compares the copy's outputs
with the original's on a held input before the change is kept.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, rebind, torch_name
from .model_rewrite import after_binding
from .models import INPUTS_PARAM, MODEL_PARAM, backward_calls, device_of, held_inputs, pick_model
from .rewrite import builder_call, parse

if TYPE_CHECKING:
    from .guard import NumericsResult

#: Layer classes quantize_dynamic has int8 kernels for, by their name under torch.nn.
LAYERS = ("Linear", "LSTM", "GRU")


class QuantizeDynamic(Optimization):
    entry = CATALOG["compression.quantize_dynamic"]
    params: ClassVar[dict[str, str]] = {"model": MODEL_PARAM, "inputs": INPUTS_PARAM}

    def plan(self, ctx: Context) -> Change:
        import torch
        from torch import nn

        name, model = pick_model(ctx)
        if backward_calls(ctx):
            raise NotApplicable("the profiled code trains: int8 quantized layers have no gradients")
        if device_of(model).type != "cpu":
            raise NotApplicable(f"{name} is on {device_of(model)}: dynamic int8 kernels run on the CPU only")
        if torch.backends.quantized.engine == "none":
            raise NotApplicable("this torch build has no quantized engine (fbgemm, x86, onednn, qnnpack)")
        kinds = [k for k in LAYERS if any(type(m) is getattr(nn, k) for m in model.modules())]
        done = [k for k in LAYERS if any(type(m).__name__ == k and type(m).__module__.startswith(
            "torch.ao.nn.quantized") for m in model.modules())]
        if not kinds and not done:
            raise NotApplicable(f"{name} has no {', '.join(LAYERS)} layer to quantize")
        tname = torch_name(ctx.namespace)
        layers = "{" + ", ".join(f"{tname}.nn.{k}" for k in LAYERS if k in kinds or k in done) + "}"
        call = f"{tname}.ao.quantization.quantize_dynamic({name}, {layers}, dtype={tname}.qint8)"

        def rewrite(source: str) -> str | None:
            module = parse(source)
            if module is not None and builder_call(module, name, "quantize_dynamic") is not None:
                return source
            return after_binding(source, name, f"{name} = {call}")

        found = ctx.rewrite(ctx.targets(name), rewrite)
        if not kinds and found and not ctx.has_edits():
            return ctx.unchanged(f"{name}'s layers are quantized")
        types = {getattr(nn, k) for k in kinds}
        inputs = held_inputs(ctx, name, model) if kinds else None

        def live(undo: Undo) -> NumericsResult:
            def quantize() -> Any:
                with warnings.catch_warnings():  # its deprecation notice, once the user's own code runs it, is theirs
                    warnings.simplefilter("ignore", DeprecationWarning)
                    copy = torch.ao.quantization.quantize_dynamic(model, types, dtype=torch.qint8)
                rebind(ctx.namespace, model, copy, undo)
                return copy

            assert inputs is not None  # (live runs only where there is something to do)
            return inputs.check("quantize", model, quantize)

        notes = [(f"{name} is in training mode: dropout stays active in the quantized copy; call {name}.eval() for "
                 "inference")] if model.training else []
        snippet = None if found else f"{name} = {call}  # after the line that builds (and loads) {name}"
        return ctx.change(f"{', '.join(kinds)} layers of {name} quantized to int8 (a copy; the float model is kept for "
                          "the undo); re-run the cell to measure", live if kinds else None, notes, snippet,
                          expects={name: model})
