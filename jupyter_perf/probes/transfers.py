"""Host→device copies and device→host synchronisations; installed only where CUDA exists.

A copy is recognised by its result, not by parsing ``.to()``'s many
signatures: a CPU tensor whose result lives on another device was copied.
Pageable sources are reported apart from pinned ones, since only pinned
memory lets ``non_blocking=True`` overlap the copy with compute.

A sync is any ``.item()``, ``.cpu()`` or ``.tolist()`` on a CUDA tensor: the
host waits there until the device has caught up, then the device idles until
the host has launched new work.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from .patching import Ledger
from .steps import StepTrace

_SYNC_METHODS = ("item", "cpu", "tolist")


class TransferProbe:
    def __init__(self, trace: StepTrace):
        self.trace = trace
        self.copies = {"count": 0, "bytes": 0, "seconds": 0.0, "pageable_bytes": 0, "pinned_bytes": 0,
                       "non_blocking": 0}
        self.syncs = {"count": 0, "seconds": 0.0, "by_call": dict.fromkeys(_SYNC_METHODS, 0)}

    def install(self, ledger: Ledger) -> None:
        import torch

        for name in ("to", "cuda"):
            ledger.patch(torch.Tensor, name, self._copy_wrapper)
        for name in _SYNC_METHODS:
            ledger.patch(torch.Tensor, name, functools.partial(self._sync_wrapper, name=name))

    def _copy_wrapper(self, original):
        trace, copies = self.trace, self.copies

        def wrapper(tensor, *args, **kwargs):
            if tensor.device.type != "cpu":
                return original(tensor, *args, **kwargs)
            token = trace.begin("host_to_device")
            result = original(tensor, *args, **kwargs)
            if result.device.type == "cpu" or token is None:
                trace.cancel(token)
                return result
            trace.end(token)
            size = tensor.numel() * tensor.element_size()
            copies["count"] += 1
            copies["bytes"] += size
            copies["seconds"] += trace.last_duration
            copies["pinned_bytes" if tensor.is_pinned() else "pageable_bytes"] += size
            copies["non_blocking"] += bool(kwargs.get("non_blocking"))
            return result

        return wrapper

    def _sync_wrapper(self, original, name: str):
        syncs = self.syncs

        def wrapper(tensor, *args, **kwargs):
            if not tensor.is_cuda:
                return original(tensor, *args, **kwargs)
            t0 = time.perf_counter()
            try:
                return original(tensor, *args, **kwargs)
            finally:
                syncs["count"] += 1
                syncs["seconds"] += time.perf_counter() - t0
                syncs["by_call"][name] += 1

        return wrapper

    def signals(self) -> dict[str, Any]:
        return {"transfers": self.copies, "syncs": self.syncs}
