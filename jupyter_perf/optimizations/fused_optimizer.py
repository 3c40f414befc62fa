"""optimizer.fused: the optimizer's step as one fused kernel (CUDA) or as multi-tensor ops (CPU).

By default a torch optimizer on the CPU updates parameters one tensor at a
time, several small ops each: per-op overhead that grows with the number of
parameter tensors. ``foreach=True`` batches each op over all tensors;
``fused=True`` (on CUDA) does the whole update in one kernel per group of
tensors. Both are constructor arguments, so the optimizer is rebuilt: same
class, same parameter groups with their hyperparameters (learning rates a
scheduler set included), its state (momentum, Adam moments, step counts)
moved over with ``load_state_dict``; the namespace names and any learning-rate
scheduler holding it are pointed at the new one. The undo moves the state
back into the original optimizer, so steps taken meanwhile are not lost, and
points everything back. The call that builds it gains the keyword.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, find_object, rebind
from .rewrite import set_call_arguments

MODES = ("fused", "foreach")


class FusedOptimizer(Optimization):
    entry = CATALOG["optimizer.fused"]
    params: ClassVar[dict[str, str]] = {
        "name": "the namespace variable holding the optimizer (default: the only one)",
        "mode": "'fused' or 'foreach' (default: fused where the parameters are on CUDA, foreach on the CPU)",
    }

    def plan(self, ctx: Context) -> Change:
        from torch.optim import Optimizer

        name, opt = find_object(ctx.namespace, Optimizer, "optimizer", ctx.param("name", lambda: None))
        ctx.params["name"] = name
        cls = type(opt)
        devices = {p.device.type for g in opt.param_groups for p in g["params"]}
        mode = ctx.param("mode", lambda: "fused" if devices == {"cuda"} else "foreach")
        if mode not in MODES:
            raise NotApplicable(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if len(devices) > 1:
            raise NotApplicable(f"{name} holds parameters on {', '.join(sorted(devices))}: one fused or foreach step "
                                "needs them on one device")
        arguments = list(inspect.signature(cls.__init__).parameters)[1:]
        if mode not in arguments:
            raise NotApplicable(f"{cls.__name__} takes no {mode}= argument")
        flags = {mode: True, **{m: False for m in MODES if m != mode and m in arguments}}
        todo = any(bool(g.get(mode)) is not True for g in opt.param_groups)
        keywords = {mode: "True", **{m: "False" for m in flags if m != mode and opt.defaults.get(m)}}
        found = ctx.rewrite(ctx.targets(name), lambda s: set_call_arguments(s, name, cls.__name__, keywords,
                                                                             arguments))
        if not todo and found and not ctx.has_edits():
            return ctx.unchanged(f"{name} steps with {mode}=True")

        def live(undo: Undo) -> None:
            new = _rebuild(opt, flags, arguments)
            rebind(ctx.namespace, opt, new, undo)
            for scheduler in _schedulers(ctx.namespace, opt):
                scheduler.optimizer = new
                undo.push(functools.partial(setattr, scheduler, "optimizer", opt))
            undo.push(lambda: _move_state(new, opt))

        warnings = [f"{name} has hooks of its own (register_step_pre_hook...): the rebuilt optimizer has none"] \
            if _has_hooks(opt) else []
        snippet = None if found else f"{name} = {cls.__name__}(..., {mode}=True)  # the call that builds {name}"
        return ctx.change(f"{name} rebuilt as {cls.__name__}({mode}=True), its state and parameter groups moved over",
                          live if todo else None, warnings, snippet, expects={name: opt})


def _rebuild(opt: Any, flags: dict[str, bool], arguments: list[str]) -> Any:
    """The same optimizer with ``flags``: its groups (hyperparameters included) and its state."""
    groups = [{**group, "params": list(group["params"]), **flags} for group in opt.param_groups]
    defaults = {k: v for k, v in opt.defaults.items() if k in arguments}
    new = type(opt)(groups, **{**defaults, **flags})
    _move_state(opt, new)
    return new


def _move_state(source: Any, target: Any) -> None:
    """``source``'s state into ``target`` (matched by parameter order), keeping ``target``'s own flags."""
    state = source.state_dict()
    for saved, own in zip(state["param_groups"], target.param_groups):
        saved.update({m: own[m] for m in MODES if m in own})
    target.load_state_dict(state)


def _schedulers(namespace: dict[str, Any], opt: Any) -> list[Any]:
    """Learning-rate schedulers in the namespace that drive ``opt``."""
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    return list({id(v): v for v in namespace.values() if isinstance(v, (LRScheduler, ReduceLROnPlateau))
                 and v.optimizer is opt}.values())


def _has_hooks(opt: Any) -> bool:
    return any(getattr(opt, hooks, None) for hooks in (
        "_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_state_dict_pre_hooks",
        "_optimizer_state_dict_post_hooks", "_optimizer_load_state_dict_pre_hooks",
        "_optimizer_load_state_dict_post_hooks"))
