"""memory.release_graph: keep loss values, not their autograd graphs.

``losses.append(loss)`` keeps each loss's whole graph alive, with every
activation the forward saved for backward: memory grows by a batch's
activations per step. Live, the tensors already stored are replaced by their
values (``.item()``) or by tensors without a graph (``.detach()``); in the
code, the append stores the same. ``.detach()`` is chosen where ``.item()``
would not do: tensors of more than one element, and tensors on a GPU, where
``.item()`` makes the host wait for the device each step.

Only a plain list or dict that accumulates graphs is changed. A container the
profiled run saw holding the same few graphs throughout (an RNN's ``hidden =
(h, c)``, a Hugging Face ``outputs``) holds the last step's graph only, which
the next step frees; and another class (a tuple, a ``ModelOutput`` whose
``update`` raises) is refused with the reason rather than touched.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, ClassVar

from ..catalog import CATALOG
from ..probes.namespace import graph_holders
from .base import Change, Context, NotApplicable, Optimization, Undo
from .rewrite import appended_names, release_appends

if TYPE_CHECKING:
    from ..report import Report

MODES = ("item", "detach")

#: Containers whose items this optimization can replace in place, knowing that nothing else runs meanwhile.
_FIXABLE = (list, dict, collections.OrderedDict, collections.defaultdict)


class ReleaseGraph(Optimization):
    entry = CATALOG["memory.release_graph"]
    params: ClassVar[dict[str, str]] = {
        "container": "the list or dict accumulating tensors (default: the one the report saw grow, else the "
                     "only one holding graphs)",
        "mode": "'item' (Python numbers) or 'detach' (tensors without graph); default: 'item' for one-element "
                "CPU tensors, else 'detach'",
    }

    def plan(self, ctx: Context) -> Change:
        census = ctx.report.signals.get("retained_graphs") or [] if ctx.report else []
        growing = _growing(ctx.report)
        steady = {c["name"]: c for c in census if c["name"] not in growing}
        holding = [n for n in graph_holders(ctx.namespace) if type(ctx.namespace[n]) in _FIXABLE]
        appended = [n for n in appended_names(ctx.cell.source) if isinstance(ctx.namespace.get(n), list)] \
            if ctx.cell else []
        name = ctx.param("container", lambda: _choose(growing, steady, holding, appended))
        if name in steady:
            raise NotApplicable(_steady_reason(steady[name]))
        container = ctx.namespace.get(name)
        if type(container) not in _FIXABLE:
            raise NotApplicable(f"{name} is a {type(container).__name__}, not a list or dict that grows step after "
                                "step: nothing to rewrite")
        tensors = [v for v in _values(container) if getattr(v, "grad_fn", None) is not None]
        mode = ctx.param("mode", lambda: "item" if all(t.numel() == 1 and t.device.type == "cpu" for t in tensors)
                         else "detach")
        if mode not in MODES:
            raise NotApplicable(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "item" and any(t.numel() != 1 for t in tensors):
            raise NotApplicable(f"{name} holds tensors of more than one element: .item() needs one; use mode='detach'")
        found = ctx.rewrite(ctx.targets(name), lambda s: release_appends(s, name, mode))
        if not tensors and not ctx.has_edits():
            if found or name in growing:
                return ctx.unchanged(f"{name} holds no tensor with a graph" + (
                    f" and its appends store .{mode}()" if found else ""))
            raise NotApplicable(f"{name} holds no tensor with an autograd graph")

        def live(undo: Undo) -> None:
            _release(ctx.namespace, name, mode, undo)

        description = (f"{name}: {len(tensors)} stored tensors replaced by .{mode}() values, freeing their graphs"
                       if tensors else f"{name} holds no graph any more")
        snippet = None if found else _snippet(name, container, mode)
        return ctx.change(description, live if tensors else None, snippet=snippet, expects={name: container})


def _growing(report: Report | None) -> list[str]:
    """The containers the report's diagnosis saw gain graphs step after step (its memory findings' evidence)."""
    for finding_id in ("memory_leak", "retained_graphs"):
        finding = report.finding(finding_id) if report else None
        if finding is not None:
            return [c["name"] for c in finding.evidence.get("retained_graphs") or []]
    return []


def _choose(growing: list[str], steady: dict[str, dict], holding: list[str], appended: list[str]) -> str:
    """The container the report saw grow, still holding graphs; else the one the cell appends to among those
    holding some (its code grows it); else the only other one holding some (the report, if any, did not see
    it steady); else the one the cell appends to (to say it is already released); never a guess among several."""
    for name in growing:
        if name in holding:
            return name
    grown_by_cell = [n for n in appended if n in holding]
    if len(grown_by_cell) == 1:
        return grown_by_cell[0]
    candidates = [n for n in holding if n not in steady]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise NotApplicable(f"several containers hold graphs ({', '.join(candidates)}): pass container= to choose")
    if growing:  # released since: the plan says it is already applied
        return growing[0]
    if len(appended) == 1:
        return appended[0]
    if steady:
        raise NotApplicable("; ".join(_steady_reason(c) for c in steady.values()))
    raise NotApplicable("no list or dict in the namespace holds tensors with autograd graphs")


def _steady_reason(held: dict) -> str:
    return (f"{held['name']} ({held.get('type', 'a container')}) did not grow during the profiled run (it held "
            f"{held.get('tensors')} tensors with graphs at the end): it keeps only the latest step's graph, which the "
            "next step frees, so there is nothing to release")


def _snippet(name: str, container: Any, mode: str) -> str:
    """What to write by hand where the cell's code was not found: how this kind of container is filled."""
    if isinstance(container, list):
        return f"{name}.append(loss.{mode}())  # where the loop appends a tensor with a graph to {name}"
    return f"{name}[key] = loss.{mode}()  # where the loop stores a tensor with a graph in {name}"


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
    else:
        saved_items = dict(container)
        container.update({k: release(v) for k, v in saved_items.items()})
        undo.push(lambda: (container.clear(), container.update(saved_items)))
