"""Module surgery that keeps the rest of the notebook working.

Replacing a submodule or a parameter leaves every optimizer built earlier
holding the *old* parameter objects: training would silently go on updating
tensors the model no longer uses. So a replacement swaps the new parameters
into each optimizer's ``param_groups`` (and moves their state: momentum, Adam
moments) and registers how to undo all of it. ``signature``/``no_effect`` let
an optimization warn when a change turned out to change nothing (e.g.
channels_last on a model without convolutions).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn
    from torch.optim import Optimizer

    from .base import Undo


def training_flags(model: nn.Module) -> dict[nn.Module, bool]:
    """Each submodule's own train/eval flag: ``model.train()`` would not restore a frozen BatchNorm."""
    return {m: m.training for m in model.modules()}


def restore_training(flags: dict[nn.Module, bool]) -> None:
    for module, training in flags.items():
        module.training = training


def optimizers_for(namespace: dict[str, Any], params: Iterable[Any]) -> list[Optimizer]:
    """Optimizers bound in the namespace that hold any of ``params``."""
    from torch.optim import Optimizer

    wanted = {id(p) for p in params}
    found: dict[int, Optimizer] = {}
    for value in namespace.values():
        if isinstance(value, Optimizer) and any(id(p) in wanted for g in value.param_groups for p in g["params"]):
            found[id(value)] = value
    return list(found.values())


def swap_parameters(optimizers: Iterable[Optimizer], mapping: dict[Any, Any], undo: Undo) -> int:
    """Put ``mapping[old]`` wherever an optimizer holds ``old``, moving its state; returns how many."""
    by_id = {id(old): new for old, new in mapping.items()}
    swaps: list[tuple[Optimizer, list, int, Any, Any]] = []
    for opt in optimizers:
        for group in opt.param_groups:
            params = group["params"]
            for i, p in enumerate(params):
                if id(p) in by_id:
                    swaps.append((opt, params, i, p, by_id[id(p)]))
    for opt, params, i, old, new in swaps:
        params[i] = new
        if old in opt.state:
            opt.state[new] = opt.state.pop(old)
        undo.push(lambda opt=opt, params=params, i=i, old=old, new=new: _swap_back(opt, params, i, old, new))
    return len(swaps)


def _swap_back(opt: Optimizer, params: list, i: int, old: Any, new: Any) -> None:
    params[i] = old
    if new in opt.state:
        opt.state[old] = opt.state.pop(new)


def replace_module(root: nn.Module, path: str, new: nn.Module, optimizers: Iterable[Optimizer],
                   undo: Undo) -> nn.Module:
    """Set the submodule at dotted ``path`` to ``new``; parameters with the same names are swapped in optimizers.

    Returns the old module. Parameters of the old module with no same-named,
    same-shaped counterpart in ``new`` stay in the optimizers (the caller warns:
    they no longer train anything).
    """
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    old = getattr(parent, name)
    setattr(parent, name, new)
    undo.push(lambda: setattr(parent, name, old))
    new_params = dict(new.named_parameters())
    mapping = {p: new_params[n] for n, p in old.named_parameters()
               if n in new_params and new_params[n] is not p and new_params[n].shape == p.shape}
    swap_parameters(optimizers, mapping, undo)
    return old


def stale_parameters(model: nn.Module, optimizers: Iterable[Optimizer]) -> int:
    """How many parameters the optimizers hold that the model no longer has (they train nothing)."""
    live = {id(p) for p in model.parameters()}
    return sum(1 for opt in optimizers for g in opt.param_groups for p in g["params"] if id(p) not in live)


def signature(module: nn.Module) -> tuple:
    """What a change to a module can alter: its submodules' types, and each tensor's identity, dtype and layout."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return (
        tuple(type(m).__name__ for m in module.modules()),
        tuple((n, id(t), t.dtype, tuple(t.shape), t.stride(), t.data_ptr()) for n, t in tensors),
    )


def no_effect(before: tuple, module: nn.Module, what: str) -> str | None:
    """A warning when ``module`` is exactly as it was (``before = signature(module)`` taken earlier)."""
    return f"{what} had no effect on this model" if signature(module) == before else None
