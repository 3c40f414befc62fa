"""layout.channels_last: the model's 4-D weights and its image inputs in NHWC (channels-last) order.

cuDNN's fastest convolution kernels (tensor cores, under AMP especially) and
oneDNN's on the CPU work in NHWC; fed NCHW tensors, they transpose around each
convolution. ``model.to(memory_format=torch.channels_last)`` restrides the
4-D parameters and buffers in place, keeping the same Parameter objects, so
optimizers stay valid; the inputs follow with ``x.to(memory_format=...)`` at
the model's calls. Same math in another summation order: numerics move by
float32 roundoff only, so no guard runs. Only models with a Conv2d qualify.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .model_rewrite import after_binding, convert_inputs
from .models import MODEL_PARAM, pick_model


class ChannelsLast(Optimization):
    entry = CATALOG["layout.channels_last"]
    params: ClassVar[dict[str, str]] = {"model": MODEL_PARAM}

    def plan(self, ctx: Context) -> Change:
        import torch
        from torch import nn

        name, model = pick_model(ctx)
        if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
            raise NotApplicable(f"{name} has no Conv2d layer: channels_last only changes how convolutions read images")
        tensors = [t for t in (*model.parameters(), *model.buffers())
                   if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last)]
        tname = torch_name(ctx.namespace)
        layout = f"memory_format={tname}.channels_last"
        found_model = ctx.rewrite(ctx.targets(name), lambda s: after_binding(s, name, f"{name} = {name}.to({layout})"))
        found_inputs = ctx.rewrite([ctx.cell] if ctx.cell else [], lambda s: convert_inputs(s, name, f"to({layout})"))
        if not tensors and not ctx.has_edits() and found_model and found_inputs:
            return ctx.unchanged(f"{name}'s weights and inputs are channels_last")

        def live(undo: Undo) -> None:
            saved = [(t, t.data) for t in tensors]
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stubs omit it)
            undo.push(lambda: _restore(saved))

        snippet = "\n".join(line for line, found in (
            (f"{name} = {name}.to({layout})  # after the line that builds {name}", found_model),
            (f"out = {name}(x.to({layout}))  # each call of {name}", found_inputs)) if not found)
        warnings = [] if found_inputs else [(f"no call {name}(x) was found to convert the inputs: the first "
                                            "convolution converts NCHW inputs itself, at the cost of a copy")]
        return ctx.change(f"{len(tensors)} 4-D weights of {name} restrided to channels_last in place; inputs converted "
                          "at the model's calls; re-run the cell to measure", live if tensors else None, warnings,
                          snippet or None, expects={name: model})


def _restore(saved: list[tuple[Any, Any]]) -> None:
    """Give each tensor back its original storage and strides (not a copy: the very data it had)."""
    for tensor, data in saved:
        tensor.data = data
