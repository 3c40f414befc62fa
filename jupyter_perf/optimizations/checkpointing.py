"""memory.checkpointing: recompute the activations of the model's repeated blocks in backward instead of keeping them.

Backward needs what each layer saw in forward; a block run under
``torch.utils.checkpoint`` (non-reentrant, the recommended variant) keeps only
its input and recomputes its inside during backward: activation memory
drops to about one tensor per block, for roughly one more forward's compute.
The blocks are the largest run of same-class submodules with layers of their
own in a Sequential or ModuleList (transformer layers, ResNet stages), what
``signals["models"][i]["repeated_blocks"]`` counts.

Each block's ``forward`` is replaced on the instance by
``partial(checkpoint, type(block).forward, block, use_reentrant=False)``:
parameter names, ``state_dict`` keys and hooks are untouched (a wrapper module
would rename every parameter), and running the code again is harmless
because it always wraps the class's own forward. The undo deletes the
instance attribute. Same math, and checkpoint restores the RNG state for the
recomputation (dropout masks match), so no guard runs.

A Hugging Face model checkpoints its own layers: ``model.activation_checkpointing_enable(...)``
(transformers 5; ``gradient_checkpointing_enable`` before it, a deprecated alias since), non-reentrant,
written after the line that builds it; the undo calls the matching ``..._disable()``. transformers turns
``use_cache`` off while such a model trains, as it must.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .model_rewrite import after_binding
from .models import MODEL_PARAM, backward_calls, pick_model


class Checkpointing(Optimization):
    entry = CATALOG["memory.checkpointing"]
    params: ClassVar[dict[str, str]] = {"model": MODEL_PARAM}

    def plan(self, ctx: Context) -> Change:
        name, model = pick_model(ctx)
        if backward_calls(ctx) == 0:
            raise NotApplicable("no backward runs: without one, activations are not kept, and there is nothing to save")
        if getattr(model, "supports_gradient_checkpointing", False):
            return _hugging_face(ctx, name, model)
        path, indices = repeated_blocks(model)
        container: Any = model.get_submodule(path)  # an nn.Sequential or nn.ModuleList: indexed, sized
        blocks = [container[i] for i in indices]
        if any("forward" in b.__dict__ and not _checkpointed(b) for b in blocks):
            raise NotApplicable(f"a block of {name} has a forward of its own set on the instance: checkpointing "
                                "its class's forward would change what it computes; checkpoint it by hand")
        todo = [b for b in blocks if not _checkpointed(b)]
        expression = _blocks_expression(name, path, indices, len(container))
        tname = torch_name(ctx.namespace)
        statement = (f"for _block in {expression}:  # activation checkpointing: recompute in backward\n"
                     "    _block.forward = functools.partial(\n"
                     f"        {tname}.utils.checkpoint.checkpoint, type(_block).forward, _block, use_reentrant=False)")
        found = ctx.rewrite(ctx.targets(name), lambda s: after_binding(s, name, statement, imports=["functools"]))
        kind = type(blocks[0]).__name__
        if not todo and found and not ctx.has_edits():
            return ctx.unchanged(f"the {len(blocks)} {kind} blocks of {name} are checkpointed")

        def live(undo: Undo) -> None:
            for block in todo:
                checkpoint(block)
                undo.push(functools.partial(block.__dict__.pop, "forward"))

        snippet = None if found else f"import functools\n{statement}  # after the line that builds {name}"
        return ctx.change(f"{len(blocks)} {kind} blocks of {name} ({expression}) recompute their activations in "
                          "backward instead of keeping them", live if todo else None,
                          ["backward recomputes each block's forward: about a third more compute per step"],
                          snippet, expects={name: model})


def _hugging_face(ctx: Context, name: str, model: Any) -> Change:
    """Hugging Face's own switch, under the name this transformers has (see the module docstring)."""
    verb = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    options = {"activation_checkpointing_kwargs" if verb == "activation" else "gradient_checkpointing_kwargs":
               {"use_reentrant": False}}
    statement = f"{name}.{verb}_checkpointing_enable({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    found = ctx.rewrite(ctx.targets(name), lambda s: after_binding(s, name, statement))
    on = bool(getattr(model, f"is_{verb}_checkpointing", False))
    if on and found and not ctx.has_edits():
        return ctx.unchanged(f"{name}'s layers are checkpointed")

    def live(undo: Undo) -> None:
        getattr(model, f"{verb}_checkpointing_enable")(**options)
        undo.push(getattr(model, f"{verb}_checkpointing_disable"))

    return ctx.change(f"{name}'s layers recompute their activations in backward instead of keeping them "
                      f"({verb}_checkpointing_enable)", None if on else live,
                      ["backward recomputes each layer's forward: about a third more compute per step"],
                      None if found else f"{statement}  # after the line that builds {name}", expects={name: model})


def checkpoint(block: Any) -> None:
    """Run ``block`` under non-reentrant activation checkpointing, as the code written into the notebook does."""
    import torch.utils.checkpoint

    block.forward = functools.partial(torch.utils.checkpoint.checkpoint, type(block).forward, block,
                                      use_reentrant=False)


def _checkpointed(block: Any) -> bool:
    import torch.utils.checkpoint

    forward = block.__dict__.get("forward")
    return isinstance(forward, functools.partial) and forward.func is torch.utils.checkpoint.checkpoint


def repeated_blocks(model: Any) -> tuple[str, list[int]]:
    """(dotted path of the container, indices of its blocks): the largest run of one class of non-leaf children."""
    from torch import nn

    best: tuple[str, list[int]] = ("", [])
    for path, container in model.named_modules():
        if not isinstance(container, (nn.Sequential, nn.ModuleList)):
            continue
        by_class: dict[type, list[int]] = {}
        for i, child in enumerate(container.children()):
            if next(child.children(), None) is not None:
                by_class.setdefault(type(child), []).append(i)
        for indices in by_class.values():
            if len(indices) > len(best[1]):
                best = (path, indices)
    if len(best[1]) < 2:
        raise NotApplicable("no repeated blocks: checkpointing wraps two or more submodules of one class, each with "
                            "layers of its own, in a Sequential or ModuleList")
    return best


def _blocks_expression(name: str, path: str, indices: list[int], length: int) -> str:
    """``model.layers``, ``model.layers[1:5]`` or ``(model.layers[1], model.layers[3])``."""
    container = name + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path.split(".") if p)
    if len(indices) == length:
        return container
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{container}[{indices[0]}:{indices[-1] + 1}]"
    return "(" + ", ".join(f"{container}[{i}]" for i in indices) + ")"
