"""inference.inference_mode: run forwards that never see a backward under ``torch.inference_mode()``.

With grad enabled, every forward records an autograd graph and keeps the
activations backward would need, although no backward runs. The profiled
cell's statements that call the model are wrapped in ``with
torch.inference_mode():`` (a ``with torch.no_grad():`` there becomes
inference_mode, which also skips version counting), and a model left in
training mode is switched to ``eval()``, which is what inference means for
dropout and batch norm, and is said so. The live part is only that switch:
the gain comes when the rewritten cell runs.
"""

from __future__ import annotations

from typing import ClassVar

from ..catalog import CATALOG
from ..probes.inputs import restore_training, training_flags
from .base import Change, Context, NotApplicable, Optimization, Undo, find_object, report_names, torch_name
from .rewrite import calls_method, wrap_calls


class InferenceMode(Optimization):
    entry = CATALOG["inference.inference_mode"]
    params: ClassVar[dict[str, str]] = {
        "model": "the namespace variable holding the model (default: the model the report saw called most, "
                 "else the only nn.Module)"}

    def plan(self, ctx: Context) -> Change:
        from torch import nn

        backward = (ctx.report.signals.get("backward") or {}).get("calls") if ctx.report else None
        if backward:
            raise NotApplicable(f"the profiled cell trains ({backward} backward calls): under inference_mode "
                                "backward would fail")
        if ctx.cell is not None and calls_method(ctx.cell.source, "backward"):
            raise NotApplicable("the cell calls .backward(): under inference_mode backward would fail")
        name, model = find_object(ctx.namespace, nn.Module, "model", ctx.param("model", lambda: None),
                                  report_names(ctx.report, "models", order="calls"))
        ctx.params["model"] = name
        tname = torch_name(ctx.namespace)
        before = [f"{name}.eval()"] if model.training else []
        found = ctx.rewrite([ctx.cell] if ctx.cell else [], lambda s: wrap_calls(
            s, name, f"{tname}.inference_mode()", (f"{tname}.no_grad()",), before))
        if not model.training and not ctx.has_edits():
            if found:
                return ctx.unchanged(f"{name} is in eval mode and its calls run under inference_mode")
            grad_calls = (ctx.report.signals.get("forward") or {}).get("grad_enabled_calls") if ctx.report else None
            if grad_calls == 0:
                raise NotApplicable(f"every forward of {name} already ran without grad")
        warnings = [f"{name} was in training mode: it is switched to eval() (dropout off, batch norm uses its "
                    "running statistics), as inference should run"] if model.training else []

        def live(undo: Undo) -> None:
            flags = training_flags(model)
            model.eval()
            undo.push(lambda: restore_training(flags))

        snippet = None if found else "\n".join(
            [*before, f"with {tname}.inference_mode():", f"    ...  # the statements that call {name}(...)"])
        return ctx.change(f"calls to {name} run under {tname}.inference_mode()" + (
            f"; {name} switched to eval mode" if model.training else "") + "; re-run the cell to measure",
            live if model.training else None, warnings, snippet, expects={name: model})

