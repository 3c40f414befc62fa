"""compression.prune: zero the smallest weights of the Linear and convolution layers, permanently.

``torch.nn.utils.prune`` computes a mask per layer (``l1_unstructured``: the
``amount`` fraction of weights with the smallest magnitude; ``ln_structured``:
that fraction of output rows/channels with the smallest L1 norm), then
``prune.remove`` folds it into the weight: the layer keeps the same
Parameter object (so optimizers stay valid), now holding zeros, and no hook.

What it buys is zeros, not speed: dense kernels multiply zeros as fast as
anything, and the tensors keep their size. It is the first step of
compression (sparse storage, removing zeroed channels, sparse runtimes) and
belongs after training, which would regrow the zeros. Pruning again at the
same amount picks the same weights (the zeros are the smallest), so running
the code twice changes nothing. The guard compares outputs on a held input
before the change is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .model_rewrite import after_binding
from .models import INPUTS_PARAM, MODEL_PARAM, backward_calls, held_inputs, pick_model

if TYPE_CHECKING:
    from .guard import NumericsResult

METHODS = ("l1_unstructured", "ln_structured")
#: Layer classes pruned, by their name under torch.nn.
LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d")
#: Without fine-tuning, 0.2 already moved a small trained MLP's outputs by 9% (0.1: 2%); structured pruning
#: moves them far more (14% at 0.1), which the guard then refuses.
DEFAULT_AMOUNT = 0.1


class Prune(Optimization):
    entry = CATALOG["compression.prune"]
    params: ClassVar[dict[str, str]] = {
        "model": MODEL_PARAM,
        "inputs": INPUTS_PARAM,
        "amount": f"fraction of each layer's weights (or output channels, structured) to zero (default: "
                  f"{DEFAULT_AMOUNT})",
        "method": "'l1_unstructured' (single weights) or 'ln_structured' (whole output channels by L1 norm); "
                  "default: 'l1_unstructured'",
    }

    def plan(self, ctx: Context) -> Change:
        from torch import nn

        name, model = pick_model(ctx)
        amount = ctx.param("amount", lambda: DEFAULT_AMOUNT)
        method = ctx.param("method", lambda: METHODS[0])
        if not isinstance(amount, float) or not 0 < amount < 1:
            raise NotApplicable(f"amount must be a fraction between 0 and 1, not {amount!r}")
        if method not in METHODS:
            raise NotApplicable(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        kinds = [k for k in LAYERS if any(isinstance(m, getattr(nn, k)) for m in model.modules())]
        layers = [m for m in model.modules() if isinstance(m, tuple(getattr(nn, k) for k in kinds))]
        if not layers:
            raise NotApplicable(f"{name} has no {', '.join(LAYERS)} layer to prune")
        if not any(_target(m.weight, amount, method) for m in layers):
            raise NotApplicable(f"amount={amount} rounds to no weight in any layer of {name}")
        todo = [m for m in layers if _zeros(m.weight, method) < _target(m.weight, amount, method)]
        tname = torch_name(ctx.namespace)
        extra = {"n": 1, "dim": 0} if method == "ln_structured" else {}
        args = ", ".join([f"amount={amount}", *(f"{k}={v}" for k, v in extra.items())])
        types = ", ".join(f"{tname}.nn.{k}" for k in kinds)
        statement = (f"for _module in {name}.modules():  # zero the smallest weights, permanently\n"
                     f"    if isinstance(_module, {types if len(kinds) == 1 else f'({types})'}):\n"
                     f'        {tname}.nn.utils.prune.{method}(_module, "weight", {args})\n'
                     f'        {tname}.nn.utils.prune.remove(_module, "weight")')
        found = ctx.rewrite(ctx.targets(name), lambda s: after_binding(
            s, name, statement, imports=["torch.nn.utils.prune"]))
        if not todo and found and not ctx.has_edits():
            return ctx.unchanged(f"every {'/'.join(kinds)} layer of {name} has its {amount:.0%} zeroed")
        inputs = held_inputs(ctx, name, model) if todo else None

        def live(undo: Undo) -> NumericsResult:
            def prune_all() -> Any:
                for module in todo:
                    _prune(module, method, amount, extra, undo)
                return model

            assert inputs is not None  # (live runs only where there is something to do)
            return inputs.check("prune", model, prune_all)

        warnings = [("zeros in dense tensors run no faster and take no less memory by themselves: pruning pays off "
                    "with sparse storage or kernels, or by removing zeroed channels")]
        if backward_calls(ctx):
            warnings.append("the profiled code trains: the optimizer will update the zeroed weights again; prune "
                            "after training")
        what = "output channels" if method == "ln_structured" else "weights"
        snippet = None if found else f"import torch.nn.utils.prune\n{statement}  # after the line that builds {name}"
        return ctx.change(f"{amount:.0%} of the {what} of {len(todo)} {'/'.join(kinds)} layers of {name} zeroed by "
                          f"{method}", live if todo else None, warnings, snippet, expects={name: model})


def _target(weight: Any, amount: float, method: str) -> int:
    """How many weights (or rows) torch's pruning zeroes at ``amount``: it rounds the same way."""
    return round(amount * (weight.shape[0] if method == "ln_structured" else weight.numel()))


def _zeros(weight: Any, method: str) -> int:
    if method == "ln_structured":
        return int((weight.detach().flatten(1).abs().sum(1) == 0).sum())
    return int((weight.detach() == 0).sum())


def _prune(module: Any, method: str, amount: float, extra: dict[str, int], undo: Undo) -> None:
    """Prune and fold the mask in, keeping the Parameter object and the order of the module's parameters."""
    from torch.nn.utils import prune

    weight, saved, order = module.weight, module.weight.data, list(module._parameters)
    undo.push(lambda: setattr(weight, "data", saved))
    getattr(prune, method)(module, "weight", amount=amount, **extra)
    prune.remove(module, "weight")
    params = module._parameters  # remove() re-adds the weight last: state_dict order would change
    params.update([(k, params.pop(k)) for k in order])
