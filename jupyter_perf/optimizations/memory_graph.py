"""memory.release_graph: keep loss values, not their autograd graphs.

``losses.append(loss)`` keeps each loss's whole graph alive, with every
activation the forward saved for backward: memory grows by a batch's
activations per step. Live, the tensors already stored are replaced by their
values (``.item()``) or by tensors without a graph (``.detach()``); in the
code, the append stores the same. ``.detach()`` is chosen where ``.item()``
would not do: tensors of more than one element, and tensors on a GPU, where
``.item()`` makes the host wait for the device each step.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..probes.namespace import retained_graphs
from .base import Change, Context, NotApplicable, Optimization, Undo
from .rewrite import appended_names, release_appends

MODES = ("item", "detach")


class ReleaseGraph(Optimization):
    id = "memory.release_graph"
    title = "Store loss values instead of autograd graphs"
    params: ClassVar[dict[str, str]] = {
        "container": "the list, tuple or dict holding the tensors (default: the one the report named, else the "
                     "only one holding graphs)",
        "mode": "'item' (Python numbers) or 'detach' (tensors without graph); default: 'item' for one-element "
                "CPU tensors, else 'detach'",
    }

    def plan(self, ctx: Context) -> Change:
        reported = [g["name"] for g in (ctx.report.signals.get("retained_graphs") or [] if ctx.report else [])]
        holding = [g["name"] for g in retained_graphs(ctx.namespace)]
        appended = [n for n in appended_names(ctx.cell.source) if isinstance(ctx.namespace.get(n), list)] \
            if ctx.cell else []
        name = ctx.param("container", lambda: _choose(reported, holding, appended))
        container = ctx.namespace.get(name)
        if not isinstance(container, (list, tuple, dict)):
            raise NotApplicable(f"{name!r} is not a list, tuple or dict in the namespace")
        tensors = [v for v in _values(container) if getattr(v, "grad_fn", None) is not None]
        mode = ctx.param("mode", lambda: "item" if all(t.numel() == 1 and t.device.type == "cpu" for t in tensors)
                         else "detach")
        if mode not in MODES:
            raise NotApplicable(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "item" and any(t.numel() != 1 for t in tensors):
            raise NotApplicable(f"{name} holds tensors of more than one element: .item() needs one; use mode='detach'")
        found = ctx.rewrite(ctx.targets(name), lambda s: release_appends(s, name, mode))
        if not tensors and not ctx.has_edits():
            if found or name in reported:
                return ctx.unchanged(f"{name} holds no tensor with a graph" + (
                    f" and its appends store .{mode}()" if found else ""))
            raise NotApplicable(f"{name} holds no tensor with an autograd graph")

        def live(undo: Undo) -> None:
            _release(ctx.namespace, name, mode, undo)

        description = (f"{name}: {len(tensors)} stored tensors replaced by .{mode}() values, freeing their graphs"
                       if tensors else f"{name} holds no graph any more")
        snippet = None if found else f"{name}.append(loss.{mode}())  # instead of {name}.append(loss)"
        return ctx.change(description, live if tensors else None, snippet=snippet, expects={name: container})


def _choose(reported: list[str], holding: list[str], appended: list[str]) -> str:
    """The reported container still holding graphs, else the only one holding some, else the one
    the cell appends to (to say it is already released); never a guess among several."""
    for name in reported:
        if name in holding:
            return name
    if len(holding) == 1:
        return holding[0]
    if holding:
        raise NotApplicable(f"several containers hold graphs ({', '.join(holding)}): pass container= to choose")
    if reported:  # released since: the plan says it is already applied
        return reported[0]
    if len(appended) == 1:
        return appended[0]
    raise NotApplicable("no list, tuple or dict in the namespace holds tensors with autograd graphs")


def _values(container: Any) -> list[Any]:
    return list(container.values() if isinstance(container, dict) else container)


def _release(namespace: dict[str, Any], name: str, mode: str, undo: Undo) -> None:
    """Replace the graph-holding tensors in place (same list/dict object, so other references see it too)."""
    container = namespace[name]

    def release(v: Any) -> Any:
        if getattr(v, "grad_fn", None) is None:
            return v
        return v.item() if mode == "item" else v.detach()

    if isinstance(container, list):
        saved = list(container)
        container[:] = [release(v) for v in saved]
        undo.push(lambda: container.__setitem__(slice(None), saved))
    elif isinstance(container, dict):
        saved_items = dict(container)
        container.update({k: release(v) for k, v in saved_items.items()})
        undo.push(lambda: (container.clear(), container.update(saved_items)))
    else:  # a tuple cannot change: bind the name to a released copy
        namespace[name] = tuple(release(v) for v in container)
        undo.push(lambda: namespace.__setitem__(name, container))
