"""dataloader.workers, dataloader.pin_memory, dataloader.batch_size.

A DataLoader's settings cannot be changed once built, so each of these
rebuilds it from its own attributes (dataset, sampler or batch_sampler,
collate_fn, drop_last, generator, worker_init_fn, multiprocessing context,
timeout...) with one setting changed, and points the namespace names at the
new loader; the old one is kept untouched for the undo. The call that built
it in the notebook gains the same keyword arguments.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, ClassVar

from ..catalog import BATCH_SIZE, CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, find_object, rebind, report_names
from .rewrite import add_non_blocking, calls_method, set_call_arguments

#: DataLoader's parameters in positional order, to edit an argument passed by position.
POSITIONAL = ("dataset", "batch_size", "shuffle", "sampler", "batch_sampler", "num_workers", "collate_fn",
              "pin_memory", "drop_last", "timeout", "worker_init_fn", "multiprocessing_context", "generator")
#: At most this many workers by default: each is a process with its own copy of the dataset object.
MAX_DEFAULT_WORKERS = 8


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask), which a container may set below the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def loader_arguments(loader: Any) -> dict[str, Any]:
    """Constructor arguments that rebuild ``loader`` as it is: same data, order, batches and workers."""
    from torch.utils.data import IterableDataset

    names = ("dataset", "num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn",
             "multiprocessing_context", "generator", "prefetch_factor", "persistent_workers", "pin_memory_device",
             "in_order")
    args = {name: getattr(loader, name) for name in names}
    if isinstance(loader.dataset, IterableDataset):  # its sampler is internal and may not be passed
        args.update(batch_size=loader.batch_size, drop_last=loader.drop_last)
    elif loader.batch_size is None and loader.batch_sampler is not None:  # the user's own batch_sampler
        args.update(batch_sampler=loader.batch_sampler)
    else:
        args.update(sampler=loader.sampler, batch_size=loader.batch_size, drop_last=loader.drop_last)
    return args


def rebuild(loader: Any, **changes: Any) -> Any:
    """A new DataLoader like ``loader`` with ``changes``; the settings that only make sense with workers follow."""
    args = {**loader_arguments(loader), **changes}
    if not args["num_workers"]:
        args.update(prefetch_factor=None, persistent_workers=False, multiprocessing_context=None)
    return type(loader)(**args)


class _LoaderOptimization(Optimization):
    """Shared plan: pick the loader, rebuild it with ``settings``, put them in the call that built it."""

    params: ClassVar[dict[str, str]] = {
        "name": "the namespace variable holding the DataLoader (default: the one the report saw wait longest, "
                "else the only one)"}

    def plan(self, ctx: Context) -> Change:
        from torch.utils.data import DataLoader

        name, loader = find_object(ctx.namespace, DataLoader, "DataLoader", ctx.param("name", lambda: None),
                                   report_names(ctx.report, "dataloaders", order="data_wait_s"))
        ctx.params["name"] = name
        if type(loader) is not DataLoader:
            raise NotApplicable(f"{name} is a {type(loader).__name__}, a DataLoader subclass whose constructor "
                                "may take other arguments: change it by hand")
        settings = self.settings(ctx, name, loader)
        todo = {k: v for k, v in settings.items() if getattr(loader, k) != v}
        values = {k: repr(v) for k, v in settings.items()}
        found = ctx.rewrite(ctx.targets(name), lambda s: set_call_arguments(s, name, "DataLoader", values, POSITIONAL),
                            what=f"{name} = DataLoader(...)")
        why_not = ctx.why_not
        warnings = self.more_code(ctx, name) + self.caveats(ctx, name, loader)
        change = ", ".join(f"{k}={v}" for k, v in values.items())
        if not todo and not ctx.has_edits():
            return ctx.unchanged(f"{name} has {change}")

        def live(undo: Undo) -> None:
            rebind(ctx.namespace, loader, rebuild(loader, **settings), undo)

        moved = ", ".join(f"{k} {getattr(loader, k)!r} → {v!r}" for k, v in todo.items()) or "already live"
        snippet = None if found else f"{name} = DataLoader(..., {change})  # the call that builds {name}"
        return ctx.change(f"{name}: {moved} (rebuilt from its own dataset, sampler and collate_fn)",
                          live if todo else None, warnings, snippet, expects={name: loader}, snippet_reason=why_not)

    def settings(self, ctx: Context, name: str, loader: Any) -> dict[str, Any]:
        """The DataLoader arguments this optimization sets; raise NotApplicable where it cannot."""
        raise NotImplementedError

    def more_code(self, ctx: Context, name: str) -> list[str]:
        """Code changes beyond the constructor call; returns warnings."""
        return []

    def caveats(self, ctx: Context, name: str, loader: Any) -> list[str]:
        return []


class Workers(_LoaderOptimization):
    entry = CATALOG["dataloader.workers"]
    params: ClassVar[dict[str, str]] = {
        **_LoaderOptimization.params,
        "num_workers": f"worker processes (default: the cores this process may use, at most {MAX_DEFAULT_WORKERS})",
        "persistent_workers": "keep the workers between epochs instead of starting them again (default: True with "
                              "workers; False for num_workers=0, where DataLoader refuses it)",
        "prefetch_factor": "batches each worker loads ahead (default: torch's, 2)",
    }

    def settings(self, ctx: Context, name: str, loader: Any) -> dict[str, Any]:
        workers = ctx.param("num_workers", lambda: min(available_cpus(), MAX_DEFAULT_WORKERS))
        if workers:
            _check_workers_possible(name, loader)
        settings = {"num_workers": workers, "persistent_workers": ctx.param("persistent_workers", lambda: workers > 0)}
        prefetch = ctx.param("prefetch_factor", lambda: None)
        if prefetch is not None:
            settings["prefetch_factor"] = prefetch
        if not workers and (settings["persistent_workers"] or prefetch is not None):
            # DataLoader itself raises on these: the rewritten code would not run
            raise NotApplicable("persistent_workers and prefetch_factor need num_workers > 0")
        return settings


def _check_workers_possible(name: str, loader: Any) -> None:
    """Refuse where workers cannot work or would silently change the data."""
    from torch.utils.data import IterableDataset

    dataset = loader.dataset
    if isinstance(dataset, IterableDataset):
        raise NotApplicable(f"{name} streams an IterableDataset: each worker would yield the whole stream unless "
                            "the dataset shards itself with get_worker_info(); add workers by hand")
    context = loader.multiprocessing_context
    method = context.get_start_method() if context is not None else (
        multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0])
    if method == "fork":
        return
    shipped = {"dataset class": type(dataset), "collate_fn": loader.collate_fn, "worker_init_fn": loader.worker_init_fn}
    local = [f"{what} {getattr(obj, '__qualname__', obj)}" for what, obj in shipped.items()
             if getattr(obj, "__module__", None) == "__main__"]
    if local:
        raise NotApplicable(f"{name}'s {', '.join(local)} is defined in the notebook, and workers start with "
                            f"{method!r}, which imports it from a module: move it to a .py file and import it")


class PinMemory(_LoaderOptimization):
    entry = CATALOG["dataloader.pin_memory"]
    params: ClassVar[dict[str, str]] = {**_LoaderOptimization.params, "pin_memory": "pin the batches (default: True)"}

    def settings(self, ctx: Context, name: str, loader: Any) -> dict[str, Any]:
        import torch

        if not torch.cuda.is_available():
            raise NotApplicable("no CUDA device: pinned memory only speeds up copies from host to GPU")
        return {"pin_memory": ctx.param("pin_memory", lambda: True)}

    def more_code(self, ctx: Context, name: str) -> list[str]:
        if ctx.rewrite(ctx.targets(name), lambda s: add_non_blocking(s, name)):
            return []
        return [f"no .to()/.cuda() copy was found in a loop over {name}: add non_blocking=True to those copies by "
                "hand, or the pinned batches are still copied synchronously"]

    def caveats(self, ctx: Context, name: str, loader: Any) -> list[str]:
        from torch.utils.data import TensorDataset

        if not isinstance(loader.dataset, TensorDataset):
            return []
        # Both measured on an H200 with 38 MB batches (benchmarks/results/gpu_check_h200.txt).
        measured = ("with 4 workers it ran ×0.71 on an H200" if loader.num_workers else
                    "in the main process it still gained ×1.25–1.45 on an H200, the pinned copy being faster")
        return [f"{name} serves an in-memory TensorDataset: pinning adds a host copy per batch ({measured}); "
                "keeping the tensors on the GPU, or pinning them once, is the surer fix: re-measure"]


class BatchSize(_LoaderOptimization):
    entry = CATALOG["dataloader.batch_size"]
    params: ClassVar[dict[str, str]] = {
        **_LoaderOptimization.params,
        "batch_size": f"samples per batch (default: {BATCH_SIZE.growth}× the current one, at least "
                      f"{BATCH_SIZE.min_training} when the cell may train, {BATCH_SIZE.min_inference} when it "
                      "only infers, at most the dataset's length)"}

    def settings(self, ctx: Context, name: str, loader: Any) -> dict[str, Any]:
        if loader.batch_size is None:
            what = "its own batch_sampler" if loader.batch_sampler is not None else "the dataset (batch_size=None)"
            raise NotApplicable(f"{name}'s batches are made by {what}: change the batch size there")
        return {"batch_size": ctx.param("batch_size", lambda: BATCH_SIZE.propose(
            loader.batch_size, _trains(ctx), _length(loader.dataset)))}

    def caveats(self, ctx: Context, name: str, loader: Any) -> list[str]:
        notes = ["more samples per step use more memory (activations grow with the batch)"]
        if loader.batch_size == 1:
            notes.append("code that assumes one sample per batch (.item(), [0]) must be adapted")
        if _trains(ctx) is not False:
            notes.append("in training, a larger batch means fewer optimizer steps per epoch: scale the learning "
                         "rate with it (linear scaling) and check convergence")
        return notes


def _trains(ctx: Context) -> bool | None:
    """Whether the profiled code trains: the report's backward calls, else a ``.backward()`` in the cell."""
    backward = (ctx.report.signals.get("backward") or {}).get("calls") if ctx.report else None
    if backward is None and ctx.cell is not None:
        return calls_method(ctx.cell.source, "backward")
    return None if backward is None else backward > 0


def _length(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:  # an iterable dataset has no length
        return None
