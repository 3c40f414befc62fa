"""memory.grad_accumulation: the same effective batch in k micro-batches, one optimizer step per batch.

Activation memory grows with the batch; gradients add up. So each batch the
loop receives is split with ``.chunk(k)`` into k micro-batches, each runs
forward and backward with its loss scaled by 1/k, and the optimizer steps
once: for a loss that averages over the batch (``reduction="mean"``, the
default) and a batch that k divides, the gradient is the large batch's, up to
float32 summation order, with about 1/k of the activations alive at once.

All of it is in the loop's code (model_rewrite.micro_batches): nothing live
changes, the DataLoader and the learning rate stay as they are. What does
change, and is said: statements after the step that read the loss or the
outputs now see the last micro-batch's, and BatchNorm normalises over each
micro-batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization
from .ddp_code import bound_optimizers
from .model_rewrite import micro_batches
from .models import optimizer_names
from .rewrite import mentions, parse


class GradAccumulation(Optimization):
    entry = CATALOG["memory.grad_accumulation"]
    params: ClassVar[dict[str, str]] = {"steps": "micro-batches per batch, k (default: 2, halving activation memory)"}

    def plan(self, ctx: Context) -> Change:
        steps = ctx.param("steps", lambda: 2)
        if not isinstance(steps, int) or steps < 2:
            raise NotApplicable(f"steps must be an integer of at least 2, not {steps!r}")
        outcome: dict[str, Any] = {}

        def rewrite(source: str) -> str | None:
            module = parse(source)  # optimizers the cell binds itself count too (a DDP rank function's local one)
            local = bound_optimizers(module) if module is not None else set()
            result = micro_batches(source, steps, [*optimizer_names(ctx.namespace), *local])
            if result is None:
                return None
            new, outcome["existing"], outcome["stale"] = result
            return new

        found = ctx.rewrite([ctx.cell] if ctx.cell else [], rewrite)
        if found and outcome["existing"] is not None:
            return ctx.unchanged(f"the training loop already runs {outcome['existing']} micro-batches per step")
        warnings = [("exact for a loss averaged over the batch (reduction='mean', the default); a summed loss needs no "
                    "1/k scaling"), *_loader_notes(ctx, steps), *_batch_norm_note(ctx.namespace)]
        if outcome.get("stale"):
            names = ", ".join(sorted(outcome["stale"]))
            warnings.append(f"after the optimizer step, {names} hold the last micro-batch's values, not the batch's")
        snippet = None if found else "\n".join([
            "for x, y in loader:", "    optimizer.zero_grad()",
            f"    for x, y in zip(x.chunk({steps}), y.chunk({steps})):",
            "        loss = loss_fn(model(x), y)", f"        (loss / {steps}).backward()", "    optimizer.step()"])
        return ctx.change(f"each batch runs as {steps} micro-batches with the loss scaled by 1/{steps} and one "
                          f"optimizer step: the same effective batch with about 1/{steps} of the activation memory; "
                          "re-run the cell to measure", warnings=warnings, snippet=snippet)


def _loader_notes(ctx: Context, steps: int) -> list[str]:
    """Where a DataLoader the cell uses makes batches that ``steps`` does not divide (1/k is then not exact)."""
    from torch.utils.data import DataLoader

    module = parse(ctx.cell.source) if ctx.cell else None
    notes = []
    for name, loader in ctx.namespace.items():
        if not isinstance(loader, DataLoader) or module is None or not mentions(module, name) or not loader.batch_size:
            continue
        last = 0 if loader.drop_last else _length(loader) % loader.batch_size
        if loader.batch_size % steps:
            notes.append(f"{name}'s batch of {loader.batch_size} does not split into {steps} equal micro-batches: "
                         "the smaller ones weigh as much as the others")
        elif last % steps:
            notes.append(f"{name}'s last batch ({last} samples) does not split into {steps} equal micro-batches: "
                         "drop_last=True keeps every step exact")
    return notes


def _length(loader: Any) -> int:
    try:
        return len(loader.dataset)
    except TypeError:  # an IterableDataset without a length
        return 0


def _batch_norm_note(namespace: dict[str, Any]) -> list[str]:
    from torch import nn

    names = sorted({k for k, v in namespace.items() if isinstance(v, nn.Module) and not k.startswith("_")
                    and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in v.modules())})
    if names:
        return [(f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} BatchNorm: it normalises over each "
                "micro-batch, so its statistics get noisier")]
    return []
