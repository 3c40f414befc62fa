"""Backward and optimizer time.

``torch.autograd.backward`` is what ``loss.backward()`` and GradScaler's
scaled backward both call, looked up at call time, so patching the module
attribute sees every backward. Optimizer steps use torch's global optimizer
step hooks; ``zero_grad`` has none, so ``Optimizer.zero_grad`` is wrapped.
"""

from __future__ import annotations

from typing import Any

from .patching import Ledger
from .steps import StepTrace


class TrainingProbe:
    def __init__(self, trace: StepTrace):
        self.trace = trace
        self.backward_calls = 0
        self.backward_seconds = 0.0
        self.optimizers: dict[int, dict[str, Any]] = {}
        #: The optimizers stepped, by id (their state is part of the memory breakdown, costs.py).
        self.objects: dict[int, Any] = {}
        self._step_token: tuple | None = None
        # A subclass whose step() calls super().step() fires the global hooks once per level:
        # only the outermost pair times and counts the step.
        self._step_depth = 0
        #: The optimizer whose steps end the steps (the first one stepped): a GAN's second optimizer
        #: steps within the same iteration, so its steps are optimizer time but do not end one (steps.py).
        self._anchor: int | None = None

    def install(self, ledger: Ledger) -> None:
        import torch
        from torch.optim import Optimizer
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        trace, probe = self.trace, self
        begin, end = trace.begin, trace.end  # bound once: these wrappers run every step

        def make_backward(original):
            def backward(*args, **kwargs):
                token = begin("backward")
                try:
                    return original(*args, **kwargs)
                finally:
                    if token is not None:
                        end(token)
                        probe.backward_calls += 1
                        probe.backward_seconds += trace.last_duration

            return backward

        def make_zero_grad(original):
            def zero_grad(optimizer, *args, **kwargs):
                token = begin("optimizer")
                try:
                    return original(optimizer, *args, **kwargs)
                finally:
                    end(token)

            return zero_grad

        ledger.patch(torch.autograd, "backward", make_backward)
        ledger.patch(Optimizer, "zero_grad", make_zero_grad)
        ledger.handle(register_optimizer_step_pre_hook(self._pre_step))
        ledger.handle(register_optimizer_step_post_hook(self._post_step))

    def _pre_step(self, optimizer: Any, args: tuple, kwargs: dict) -> None:
        self._step_depth += 1
        if self._step_depth == 1:
            self._step_token = self.trace.begin("optimizer")

    def _post_step(self, optimizer: Any, args: tuple, kwargs: dict) -> None:
        self._step_depth -= 1
        if self._step_depth:
            return
        token, self._step_token = self._step_token, None
        if self._anchor is None:
            self._anchor = id(optimizer)
        self.trace.end(token, tag="step" if id(optimizer) == self._anchor else "other step")
        facts = self.optimizers.get(id(optimizer))
        if facts is None:
            self.objects[id(optimizer)] = optimizer
            defaults = optimizer.defaults
            facts = self.optimizers[id(optimizer)] = {
                "class": type(optimizer).__name__,
                "fused": defaults.get("fused"),
                "foreach": defaults.get("foreach"),
                "lr": defaults.get("lr") if isinstance(defaults.get("lr"), (int, float)) else None,
                "steps": 0,
                "params_device": _params_device(optimizer),
            }
        facts["steps"] += 1

    def signals(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return {"calls": self.backward_calls, "seconds": self.backward_seconds}, list(self.optimizers.values())


def _params_device(optimizer: Any) -> str | None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            return str(p.device)
    return None
