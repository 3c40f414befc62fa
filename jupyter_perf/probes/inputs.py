"""The arguments of one real call of each watched model, kept for replay after the run.

The numerics guard (optimizations/guard.py) runs a model before and after a
change that alters its numerics, and must call it the way the user's code
does: ``model(x, hidden)``, ``model(**batch)``, ``model(input_ids=..., labels=...)``.
Guessing an input from the namespace fails on any model that takes more than
one tensor, so the module probe records the arguments of each watched model's
first call in a profiled run, as references (no copy: recording costs one
dict lookup per call, and a batch the loop already made).

The session hands the run's records over when it ends (``Session.recorded_calls``), and the
kernel's state keeps them per model object, held weakly (state.py): a model that is deleted
takes its record with it, and a later run replaces an earlier run's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Keyword arguments of a call that go with a generation's KV cache. The cache object itself (a transformers
#: ``Cache``: ``past_key_values``, or ``cache`` as generate() passes it in transformers 5) fills as the run goes
#: on: replaying with it would attend to the whole generated text, and grow it at each replay.
_CACHE_ARGUMENTS = ("past_key_values", "cache_position", "use_cache")


@dataclass(frozen=True)
class RecordedCall:
    """Positional and keyword arguments of one call, as the user's code passed them."""

    args: tuple
    kwargs: dict[str, Any]

    def without_cache(self) -> RecordedCall:
        """The call as a plain forward over the same tokens: no KV cache, nothing that goes with one (what a
        replay must run: the cache recorded has grown since)."""
        kwargs = {k: v for k, v in self.kwargs.items()
                  if k not in _CACHE_ARGUMENTS and not hasattr(v, "get_seq_length")}
        return RecordedCall(self.args, kwargs) if len(kwargs) < len(self.kwargs) else self


def replay(model: Any, call: RecordedCall, context: Any = None) -> Any:
    """``model(*call.args, **call.kwargs)`` as a measurement: in eval mode (dropout off, batch-norm
    statistics untouched), without grad, from a fixed seed, in ``context`` (a mode such as a FLOP
    counter or autocast); every submodule's train/eval flag and the RNGs as they were afterwards."""
    from contextlib import nullcontext

    import torch

    flags = training_flags(model)
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=_cuda_devices(call)), context or nullcontext():
            torch.manual_seed(0)
            return model(*call.args, **call.kwargs)
    finally:
        restore_training(flags)


def training_flags(model: Any) -> dict[Any, bool]:
    """Each submodule's own train/eval flag: ``model.train()`` after a measurement in eval mode would not
    leave a frozen BatchNorm frozen."""
    return {module: module.training for module in model.modules()}


def restore_training(flags: dict[Any, bool]) -> None:
    for module, training in flags.items():
        module.training = training


def _cuda_devices(call: RecordedCall) -> list[int]:
    """CUDA devices the call's tensors live on: their RNGs are forked too (and no other device's is touched)."""
    devices = set()
    for value in (*call.args, *call.kwargs.values()):
        device = getattr(value, "device", None)
        if device is not None and device.type == "cuda":
            devices.add(device.index or 0)
    return sorted(devices)
