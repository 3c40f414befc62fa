"""Where the memory of a step goes: parameters, gradients, optimizer state, activations, and the rest.

The parts that live objects own are read from them (each storage counted once, so tied weights and
views are not counted twice); activations are what the run's peak held beyond those and beyond what was
already allocated before the run; "other" is that earlier memory (inputs, buffers, caches, and on the
CPU the interpreter and its libraries). On a GPU the peak is the caching allocator's own high-water mark
(``torch.cuda.max_memory_allocated``, reset when the run starts); on the CPU it is the kernel process's
peak resident memory. Gradients are as large as the trainable parameters once a backward ran, whether or
not ``zero_grad(set_to_none=True)`` freed them by the time the run ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

PARTS = ("parameters", "gradients", "optimizer_state", "activations", "other")


@dataclass(frozen=True)
class Owned:
    """Bytes the models and optimizers own on one device type."""

    parameters: int
    trainable: int
    gradients: int
    optimizer_state: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state


def owned(models: Iterable[Any], optimizers: Iterable[Any], device_type: str) -> Owned:
    """What ``models`` and ``optimizers`` hold on ``device_type`` ("cuda" or "cpu")."""
    params = {id(p): p for model in models for p in model.parameters()}
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            params.update((id(p), p) for p in group["params"])
    seen: set[int] = set()
    state = [t for optimizer in optimizers for value in optimizer.state.values() for t in _tensors(value)]
    return Owned(
        parameters=_bytes(params.values(), device_type, seen),
        trainable=_bytes((p for p in params.values() if p.requires_grad), device_type, set()),
        gradients=_bytes((p.grad for p in params.values() if p.grad is not None), device_type, seen),
        optimizer_state=_bytes(state, device_type, seen),
    )


def breakdown(peak: float, before: float, owned_before: Owned, owned_after: Owned, trained: bool) -> dict[str, int]:
    """The peak split into PARTS (bytes): ``before`` is what was allocated when the run began, of which
    ``owned_before`` belonged to models and optimizers; ``trained``: a backward ran."""
    gradients = max(owned_after.gradients, owned_after.trainable) if trained else owned_after.gradients
    other = max(0.0, before - owned_before.total)
    activations = max(0.0, peak - owned_after.parameters - gradients - owned_after.optimizer_state - other)
    return {"parameters": owned_after.parameters, "gradients": int(gradients),
            "optimizer_state": owned_after.optimizer_state, "activations": int(activations), "other": int(other)}


def _tensors(value: Any) -> Iterable[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def _bytes(tensors: Iterable[Any], device_type: str, seen: set[int]) -> int:
    """Bytes of the distinct storages behind ``tensors`` on ``device_type``, skipping storages in ``seen``."""
    total = 0
    for tensor in tensors:
        if tensor.device.type != device_type or tensor.is_meta:
            continue
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in seen or not key:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total
