"""Forward time of the outermost models only.

Hooks on every module cost ×1.28 on a 150 µs MLP step; on the top-level
modules ×1.02–1.12 (docs/architecture.md, "What things cost"), so only models that are not part of another
are timed. Even torch's own hook machinery is skipped: a model's *class*
gets a ``__call__`` wrapper that times the call when the instance is one of
the watched models and otherwise passes straight through (measured here,
a third of the cost of a pre- and post-hook pair). Nothing is added to the
instances themselves, so pickling or deep-copying a model mid-run is unaffected.

In a pure inference loop of short steps the trace switches to counting mode
(steps.py): the wrapper then counts most calls of that model itself, with
nothing but a thread check, a re-entrancy guard, a counter, the first input's
leading dimension and two mode checks, and hands one call in K to the trace
to be timed. The mode counts stay exact; the forward time of counted calls is
the trace's estimate.

Models are found in the user's namespace at the start and again as steps go
by (models built inside the profiled cell). Until one watched model has run,
a global pre-hook *discovers* the first outermost module called - for code
that builds and calls a model without it ever reaching the namespace - and
then removes itself, so the per-submodule cost stops.
"""

from __future__ import annotations

import time
from threading import get_ident
from typing import Any

from .attention import attention_facts
from .decoding import Decoding
from .inputs import RecordedCall
from .patching import Ledger
from .steps import StepTrace

_RESCAN_EVERY_S = 0.5


class ModuleProbe:
    def __init__(self, trace: StepTrace, namespace: dict[str, Any]):
        self.trace = trace
        self.namespace = namespace
        self._modules: dict[int, Any] = {}
        #: The tag each watched module's forward intervals carry: its key for a model, "loss" for a module
        #: without parameters (a loss, an activation), whose calls are forward time but not steps (steps.py).
        self._tags: dict[int, Any] = {}
        #: Which dimension of a model's first input counts its samples: 1 for sequence-first recurrent or
        #: attention layers (``batch_first=False``, PyTorch's default for both), else 0.
        self._batch_dims: dict[int, int] = {}
        #: The first call of each model in this run, by key: (model, its arguments) (inputs.py).
        self.recorded: dict[int, tuple[Any, RecordedCall]] = {}
        self._leaves: dict[int, int] = {}
        self._calls: dict[int, int] = {}
        self._covered: set[int] = set()
        self._classes: set[type] = set()
        self._discoverer: Any = None
        self._scanned_at = 0.0
        self.grad_calls = self.autocast_calls = 0
        self.grad_inference_calls = 0  # grad enabled inside inference mode: inference calls all the same
        #: The dtype autocast ran the first autocast call in (what its matmuls ran in: MFU's peak is per dtype).
        self.autocast_dtype: Any = None
        self.seconds = 0.0
        #: How each model's token-id inputs grow from call to call (generation with or without a KV cache).
        self.decoding = Decoding()
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
        from torch import nn

        members = list(module.modules())
        key = id(module)
        self._covered.update(id(m) for m in members)
        self._modules[key] = module
        is_model = not isinstance(module, nn.modules.loss._Loss) and next(module.parameters(), None) is not None
        self._tags[key] = key if is_model else "loss"
        self._batch_dims[key] = _batch_dim(members)
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
            self._end(module, token, args, {})

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
        In counting mode it counts the counted model's calls itself (module docstring).
        """
        modules, begin, end, trace, thread = self._modules, self._begin, self._end, self.trace, self.trace._thread
        turned, probe = self._turned_call, self
        grad_enabled, inference_enabled, autocast_enabled = (
            self._grad_enabled,
            self._inference_enabled,
            self._autocast_enabled,
        )

        def __call__(module, *args, **kwargs):  # noqa: N807 - replaces the model class's __call__, named as it
            key = id(module)
            if key == trace.counting and trace.active is None and get_ident() == thread:
                n = trace.steps_closed + 1
                try:
                    samples = args[0].shape[0]
                except (IndexError, AttributeError, TypeError):  # no leading dimension: counting stops
                    samples = None
                if n != trace.count_at and samples is not None:  # counted only: the shortest path
                    if grad_enabled():  # _count_modes inlined: here a method call costs more than its body
                        probe.grad_calls += 1
                        probe.grad_inference_calls += inference_enabled()
                    if autocast_enabled():
                        probe.autocast_calls += 1
                    trace.steps_closed = n
                    trace.block_samples += samples
                    trace.last_samples = samples
                    trace.active = "forward"
                    try:
                        return original(module, *args, **kwargs)
                    finally:
                        trace.active = None
                timed = trace.turn(samples)
                if timed is not None:
                    return turned(original, module, args, kwargs, timed)
                # else counting stopped before this call: it is timed as any other
            if key in modules:
                if probe._discoverer is not None:  # a watched model runs: nothing left to discover, and torch
                    probe._drop_discoverer()  # would take its hooked path (frames in the user's traceback)
                token = begin()
                if token is not None:  # else inside another model's forward, or on another thread
                    try:
                        return original(module, *args, **kwargs)
                    finally:
                        end(module, token, args, kwargs)
            return original(module, *args, **kwargs)

        return __call__

    def _turned_call(self, original, module: Any, args: tuple, kwargs: dict, timed: bool) -> Any:
        """A counted call the trace looked at (:meth:`StepTrace.turn`): one it times, or one ending a timed step."""
        self._count_modes()
        try:
            return original(module, *args, **kwargs)
        finally:
            self.trace.turned(timed)

    def _begin(self) -> tuple | None:
        token = self._trace_begin("forward")
        if token is not None:
            self._count_modes()
        return token

    def _count_modes(self) -> None:
        """The torch modes of one forward call, timed or counted (``inference_calls`` follows from the calls)."""
        if self._grad_enabled():
            self.grad_calls += 1
            self.grad_inference_calls += self._inference_enabled()
        if self._autocast_enabled():
            self.autocast_calls += 1
            if self.autocast_dtype is None:
                import torch

                self.autocast_dtype = torch.get_autocast_dtype("cuda")

    def _end(self, module: Any, token: tuple, args: tuple, kwargs: dict) -> None:
        key = id(module)
        tag = self._tags[key]
        if tag == "loss":
            self._trace_end(token, None, tag)
        else:
            ids = token_ids(args, kwargs)
            tokens = None if ids is None else tokens_in(ids, kwargs)
            self._trace_end(token, samples_of(args, kwargs, self._batch_dims[key]), tag, tokens)
            if ids is not None:
                self.decoding.see(key, ids, self.trace.last_duration)
        self.seconds += self.trace.last_duration
        self._calls[key] += 1
        if key not in self.recorded and tag != "loss":
            self.recorded[key] = (module, RecordedCall(args, dict(kwargs)))
        if self.trace.may_count and self._batch_dims[key] == 0:
            self.trace.count(key)

    # ------------------------------------------------------------ report
    def model(self, key: Any) -> Any:
        """The watched model with ``key`` (the trace's ``primary``), or None."""
        return self._modules.get(key)

    def batch_dim(self, key: Any) -> int:
        return self._batch_dims.get(key, 0)

    def models(self) -> list[Any]:
        """Every watched model with parameters."""
        return [m for key, m in self._modules.items() if self._tags[key] != "loss"]

    def signals(self, names: dict[int, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        counted = self.trace.counted_calls  # calls the wrapper counted in counting mode rather than timed
        calls_of = {key: n + counted.get(key, 0) for key, n in self._calls.items()}
        seconds = self.seconds + self.trace.counted_forward_s
        calls = sum(calls_of.values())
        leaf_calls = sum(self._leaves[key] * n for key, n in calls_of.items())
        forward = {
            "calls": calls,
            "grad_enabled_calls": self.grad_calls,
            "inference_calls": calls - self.grad_calls + self.grad_inference_calls,
            "autocast_calls": self.autocast_calls,
            "seconds": seconds,
            "counted_calls": sum(counted.values()),
            "leaf_calls_per_forward": leaf_calls / calls if calls else None,
            "us_per_leaf_call": seconds / leaf_calls * 1e6 if leaf_calls else None,
        }
        models = [
            {**_model_facts(module, names.get(key), self._leaves[key], calls_of[key]),
             "decoding": self.decoding.facts(key)}
            for key, module in self._modules.items()
            if calls_of[key] and self._tags[key] != "loss"
        ]
        self._modules.clear()
        self.decoding.clear()
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
        "attention": attention_facts(module),
    }


def samples_of(args: tuple, kwargs: dict, dim: int) -> int | None:
    """Samples in one call: the batch dimension of its first input (positional, else ``input_ids`` or the
    first tensor given by keyword, as ``model(**batch)`` passes a tokenizer's output); a list of tensors
    (a detection model's images) counts its items."""
    first = args[0] if args else kwargs.get("input_ids")
    if first is None:
        first = next((v for v in kwargs.values() if hasattr(v, "shape")), None)
    shape = getattr(first, "shape", None)
    if shape is None:
        return len(first) if isinstance(first, (list, tuple)) and first and hasattr(first[0], "shape") else None
    return int(shape[dim]) if len(shape) > dim else None


def tokens_of(args: tuple, kwargs: dict) -> tuple[int, Any] | None:
    """(positions, non-padding positions) where the call's input is token ids: an integer tensor passed as
    ``input_ids`` or first; the attention mask, where given with the same shape, says which are padding."""
    ids = token_ids(args, kwargs)
    return None if ids is None else tokens_in(ids, kwargs)


def tokens_in(ids: Any, kwargs: dict) -> tuple[int, Any]:
    """(positions, non-padding positions) of the token ids ``ids`` of a call with keyword arguments ``kwargs``.
    A CUDA mask's sum stays on the device (no sync here); steps.py reads it once the step completed."""
    tokens = ids.numel()
    mask = kwargs.get("attention_mask")
    if mask is None or getattr(mask, "shape", None) != ids.shape:
        return tokens, tokens
    real = mask.sum()
    return tokens, int(real) if real.device.type == "cpu" else real


def token_ids(args: tuple, kwargs: dict) -> Any:
    """The call's token ids: an integer tensor with dimensions passed as ``input_ids`` or first; else None."""
    import torch

    ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0] if args else None
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32) or not ids.dim():
        return None
    return ids


def _batch_dim(members: list[Any]) -> int:
    """1 where the model's sequence layers take the batch second (RNNs and ``nn.MultiheadAttention`` with
    ``batch_first=False``, the default: pytorch/examples' word_language_model and transformer), else 0."""
    from torch import nn

    for m in members:
        if isinstance(m, (nn.RNNBase, nn.MultiheadAttention)):
            return 0 if m.batch_first else 1
    return 0


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
