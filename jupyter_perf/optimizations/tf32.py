"""precision.tf32: float32 matmuls and convolutions on tensor cores, in TF32.

TF32 keeps float32's range and rounds the inputs of each multiply to 10
mantissa bits, accumulating in float32: on Ampere and newer GPUs (compute
capability 8.0+) float32 matmuls then run on tensor cores, several times
faster. PyTorch leaves it off for matmuls (``torch.set_float32_matmul_precision``
is ``"highest"``) and on for cuDNN convolutions. Both switches are
process-wide, so the change is live at once, and the code gets the same two
settings after its imports; the guard compares the model's outputs with TF32
against float32 on a held input before the change is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .model_rewrite import ensure_assignment
from .models import INPUTS_PARAM, MODEL_PARAM, device_of, held_inputs, pick_model, require_cuda_model
from .rewrite import ensure_call

if TYPE_CHECKING:
    from .guard import NumericsResult

#: Matmul precisions that already allow TF32 (or a cheaper format).
_ALLOWING = ("high", "medium")


class Tf32(Optimization):
    entry = CATALOG["precision.tf32"]
    params: ClassVar[dict[str, str]] = {"model": MODEL_PARAM, "inputs": INPUTS_PARAM}

    def plan(self, ctx: Context) -> Change:
        import torch

        name, model = pick_model(ctx)
        require_cuda_model(name, model, "TF32 is a tensor-core format of NVIDIA GPUs")
        capability = torch.cuda.get_device_capability(device_of(model))
        if capability < (8, 0):
            raise NotApplicable(f"the GPU has compute capability {capability[0]}.{capability[1]}: TF32 tensor cores "
                                "start at 8.0 (Ampere)")
        tname = torch_name(ctx.namespace)
        found = ctx.rewrite([ctx.cell] if ctx.cell else [], lambda s: _settings(s, tname))
        before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
        live_done = before[0] in _ALLOWING and before[1]
        if live_done and (found and not ctx.has_edits()):
            return ctx.unchanged(f"float32 matmul precision is {before[0]!r} and cuDNN allows TF32")
        inputs = None if live_done else held_inputs(ctx, name, model)

        def live(undo: Undo) -> NumericsResult:
            def switch_on() -> Any:
                torch.set_float32_matmul_precision("high")
                torch.backends.cudnn.allow_tf32 = True
                undo.push(lambda: _restore(*before))
                return model

            assert inputs is not None  # (live runs only where there is something to do)
            return inputs.check("tf32", model, switch_on)

        snippet = None if found else (f'{tname}.set_float32_matmul_precision("high")\n'
                                      f"{tname}.backends.cudnn.allow_tf32 = True")
        return ctx.change(f"float32 matmul precision {before[0]!r} → 'high' (TF32), "
                          f"cuDNN allow_tf32 {before[1]} → True",
                          None if live_done else live, snippet=snippet, expects={name: model})


def _settings(source: str, tname: str) -> str | None:
    """The two settings after the cell's imports (or their values replaced where the cell sets them)."""
    with_call = ensure_call(source, f"{tname}.set_float32_matmul_precision", '"high"')
    return with_call and ensure_assignment(with_call, f"{tname}.backends.cudnn.allow_tf32", "True")


def _restore(precision: str, cudnn: bool) -> None:
    import torch

    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.allow_tf32 = cudnn
