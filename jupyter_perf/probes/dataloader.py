"""Time spent blocked on the input pipeline: every ``next()`` on a DataLoader iterator.

Patching ``_BaseDataLoaderIter.__next__`` covers the single-process and the
worker-process iterators alike; its cost is not measurable (docs/architecture.md, "What things cost"). The
iterator's creation (``DataLoader.__iter__``) is timed too, because starting
workers at each epoch is input-pipeline cost, and it is where the loader
itself is seen, so its settings can be reported.
"""

from __future__ import annotations

from typing import Any

from .patching import Ledger
from .steps import StepTrace


class DataLoaderProbe:
    def __init__(self, trace: StepTrace):
        self.trace = trace
        self.loaders: dict[int, dict[str, Any]] = {}
        self._objects: dict[int, Any] = {}

    def install(self, ledger: Ledger) -> None:
        from torch.utils.data import DataLoader
        from torch.utils.data.dataloader import _BaseDataLoaderIter

        trace, probe = self.trace, self
        begin, end, cancel = trace.begin, trace.end, trace.cancel  # bound once: __next__ runs every batch

        def make_iter(original):
            def __iter__(loader):  # noqa: N807 - replaces DataLoader.__iter__ and is named as it
                probe._see(loader)
                token = begin("data_wait")
                try:
                    iterator = original(loader)
                finally:
                    end(token, tag="iter")
                iterator._jupyter_perf_loader = id(loader)
                return iterator

            return __iter__

        def make_next(original):
            def __next__(iterator):  # noqa: N807 - replaces the iterator's __next__ and is named as it
                token = begin("data_wait")
                try:
                    batch = original(iterator)
                except StopIteration:
                    end(token, tag="stop")
                    raise
                except BaseException:
                    cancel(token)
                    raise
                end(token, samples=batch_size(batch))
                if token is not None:
                    stats = probe.loaders.get(getattr(iterator, "_jupyter_perf_loader", None))
                    if stats is not None:
                        stats["batches"] += 1
                        stats["data_wait_s"] += trace.last_duration
                return batch

            return __next__

        ledger.patch(DataLoader, "__iter__", make_iter)
        ledger.patch(_BaseDataLoaderIter, "__next__", make_next)

    def _see(self, loader: Any) -> None:
        if id(loader) in self.loaders:
            return
        self._objects[id(loader)] = loader
        try:
            dataset_len = len(loader.dataset)
        except Exception:  # noqa: BLE001 - iterable datasets have no length, and a user's __len__ may raise anything
            dataset_len = None
        self.loaders[id(loader)] = {
            "name": None,
            "num_workers": loader.num_workers,
            "pin_memory": bool(loader.pin_memory),
            "batch_size": loader.batch_size,
            "persistent_workers": bool(loader.persistent_workers),
            "prefetch_factor": loader.prefetch_factor,
            "dataset": type(loader.dataset).__name__,
            "dataset_len": dataset_len,
            "batches": 0,
            "data_wait_s": 0.0,
        }

    def signals(self, names: dict[int, str]) -> list[dict[str, Any]]:
        """Per-loader facts, named after the namespace variables that hold them; drops the references."""
        out = []
        for key, stats in self.loaders.items():
            stats["name"] = names.get(key)
            out.append(stats)
        self._objects.clear()
        return out


def batch_size(batch: Any) -> int | None:
    """First dimension of the first tensor in a batch (tensor, sequence or mapping), if any."""
    for _ in range(3):
        shape = getattr(batch, "shape", None)
        if shape is not None:
            return int(shape[0]) if len(shape) else None
        if isinstance(batch, (list, tuple)) and batch:
            batch = batch[0]
        elif isinstance(batch, dict) and batch:
            batch = next(iter(batch.values()))
        else:
            return None
    return None
