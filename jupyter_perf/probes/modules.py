"""Forward time of the outermost models only.

Hooks on every module cost ×1.28 on a 150 µs MLP step; on the top-level
modules ×1.02–1.12 (DESIGN.md), so only models that are not part of another
are timed. Even torch's own hook machinery is skipped: a model's *class*
gets a ``__call__`` wrapper that times the call when the instance is one of
the watched models and otherwise passes straight through (measured here,
a third of the cost of a pre- and post-hook pair). Nothing is added to the
instances themselves, so pickling or deep-copying a model mid-run is unaffected.

Models are found in the user's namespace at the start and again as steps go
by (models built inside the profiled cell). Until one watched model has run,
a global pre-hook *discovers* the first outermost module called - for code
that builds and calls a model without it ever reaching the namespace - and
then removes itself, so the per-submodule cost stops.
"""

from __future__ import annotations

import time
from typing import Any

from .patching import Ledger
from .steps import StepTrace

_RESCAN_EVERY_S = 0.5


class ModuleProbe:
    def __init__(self, trace: StepTrace, namespace: dict[str, Any]):
        self.trace = trace
        self.namespace = namespace
        self._modules: dict[int, Any] = {}
        self._leaves: dict[int, int] = {}
        self._calls: dict[int, int] = {}
        self._covered: set[int] = set()
        self._classes: set[type] = set()
        self._discoverer: Any = None
        self._scanned_at = 0.0
        self.grad_calls = self.inference_calls = self.autocast_calls = 0
        self.seconds = 0.0
        self._trace_begin, self._trace_end = trace.begin, trace.end

    def install(self, ledger: Ledger) -> None:
        import torch
        import torch.nn.modules.module as module_mod

        self._grad_enabled = torch.is_grad_enabled
        self._inference_enabled = torch.is_inference_mode_enabled
        self._autocast_enabled = torch.is_autocast_enabled
        self._ledger = ledger
        self.scan()
        self._discoverer = module_mod.register_module_forward_pre_hook(self._discover)
        ledger.call(self._drop_discoverer)

    # ------------------------------------------------------------ discovery
    def scan(self) -> None:
        """Hook namespace modules not already inside a hooked one."""
        from torch import nn

        self._scanned_at = time.monotonic()
        for value in list(self.namespace.values()):
            if isinstance(value, nn.Module) and id(value) not in self._covered:
                self._hook(value)

    def maybe_rescan(self) -> None:
        if time.monotonic() - self._scanned_at >= _RESCAN_EVERY_S:
            self.scan()

    def _hook(self, module: Any) -> None:
        members = list(module.modules())
        self._covered.update(id(m) for m in members)
        self._modules[id(module)] = module
        self._leaves[id(module)] = sum(1 for m in members if next(m.children(), None) is None)
        self._calls[id(module)] = 0
        cls = type(module)
        if cls not in self._classes:
            self._classes.add(cls)
            self._ledger.patch(cls, "__call__", self._timed_call)

    def _discover(self, module: Any, args: tuple) -> None:
        """Global pre-hook: watch the first outermost module called, then stand down."""
        self._drop_discoverer()
        if id(module) in self._modules:
            return
        token = self._begin()
        if token is None:
            return
        self._hook(module)

        def finish(module: Any, _args: tuple, _output: Any) -> None:  # this call is under way: time it too
            handle.remove()
            self._end(module, token, args)

        handle = module.register_forward_hook(finish, always_call=True)

    def _drop_discoverer(self) -> None:
        if self._discoverer is not None:
            self._discoverer.remove()
            self._discoverer = None

    # ------------------------------------------------------------ timing
    def _timed_call(self, original):
        """The class's ``__call__``: times a watched model, passes every other instance straight through.

        Runs once per model call, cache-cold between a small model's math: whatever
        can be counted later (calls, leaf calls) is, and what it reads is bound here.
        """
        modules, begin, end = self._modules, self._begin, self._end

        def __call__(module, *args, **kwargs):
            token = begin() if id(module) in modules else None
            if token is None:  # not a watched model, or inside another model's forward
                return original(module, *args, **kwargs)
            try:
                return original(module, *args, **kwargs)
            finally:
                end(module, token, args)

        return __call__

    def _begin(self) -> tuple | None:
        token = self._trace_begin("forward")
        if token is not None:
            grad = self._grad_enabled()
            self.grad_calls += grad
            self.inference_calls += not grad or self._inference_enabled()
            self.autocast_calls += self._autocast_enabled()
        return token

    def _end(self, module: Any, token: tuple, args: tuple) -> None:
        shape = getattr(args[0], "shape", None) if args else None  # samples: the first input's leading dimension
        self._trace_end(token, int(shape[0]) if shape else None)
        self.seconds += self.trace.last_duration
        self._calls[id(module)] += 1

    # ------------------------------------------------------------ report
    def signals(self, names: dict[int, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        calls = sum(self._calls.values())
        leaf_calls = sum(self._leaves[key] * n for key, n in self._calls.items())
        forward = {
            "calls": calls,
            "grad_enabled_calls": self.grad_calls,
            "inference_calls": self.inference_calls,
            "autocast_calls": self.autocast_calls,
            "seconds": self.seconds,
            "leaf_calls_per_forward": leaf_calls / calls if calls else None,
            "us_per_leaf_call": self.seconds / leaf_calls * 1e6 if leaf_calls else None,
        }
        models = [
            _model_facts(module, names.get(key), self._leaves[key], self._calls[key])
            for key, module in self._modules.items()
            if self._calls[key]
        ]
        self._modules.clear()
        return forward, models


def _model_facts(module: Any, name: str | None, leaves: int, calls: int) -> dict[str, Any]:
    import torch
    from torch import nn

    params = list(module.parameters())
    members = list(module.modules())
    convs = [m for m in members if isinstance(m, nn.Conv2d)]
    return {
        "name": name,
        "class": type(module).__name__,
        "parameters": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "leaf_modules": leaves,
        "dtype": str(params[0].dtype).replace("torch.", "") if params else None,
        "device": str(params[0].device) if params else None,
        "has_conv2d": bool(convs),
        "has_linear": any(isinstance(m, nn.Linear) for m in members),
        "has_lstm": any(isinstance(m, (nn.LSTM, nn.GRU)) for m in members),
        "channels_last": bool(convs) and convs[0].weight.is_contiguous(memory_format=torch.channels_last),
        "training": module.training,
        "repeated_blocks": _repeated_blocks(members),
        "calls": calls,
    }


def _repeated_blocks(members: list[Any]) -> int:
    """Largest run of same-class children in a container: what activation checkpointing would wrap."""
    from torch import nn

    best = 0
    for m in members:
        if isinstance(m, (nn.Sequential, nn.ModuleList)):
            kinds: dict[type, int] = {}
            for child in m.children():
                if next(child.children(), None) is not None:  # a block, not a single layer
                    kinds[type(child)] = kinds.get(type(child), 0) + 1
            best = max(best, *kinds.values(), 0)
    return best
