"""cpu.threads: torch's intra-op threads to the cores this process can actually use.

torch sizes its thread pool from the machine's physical cores, not from the
process's affinity mask or its container's quota, and DataLoader workers
compete for the same cores: too many threads then contend (each matmul waits
on its slowest thread), too few leave cores idle. The default is the cores
available to the process minus the workers of the DataLoaders in the
namespace, at least one. ``torch.set_num_threads`` is process-wide, so the
code change is one call at the top of the profiled cell.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .dataloader import available_cpus
from .rewrite import ensure_call


class Threads(Optimization):
    entry = CATALOG["cpu.threads"]
    params: ClassVar[dict[str, str]] = {
        "threads": "intra-op threads (default: the cores this process may use, minus the DataLoader workers in "
                   "the namespace, at least 1)"}

    def plan(self, ctx: Context) -> Change:
        import torch

        threads = ctx.param("threads", lambda: max(1, available_cpus() - _workers(ctx.namespace)))
        if not isinstance(threads, int) or threads < 1:
            raise NotApplicable(f"threads must be a positive integer, not {threads!r}")
        current = torch.get_num_threads()
        if threads == current:
            return ctx.unchanged(f"torch already uses {current} threads")
        call = f"{torch_name(ctx.namespace)}.set_num_threads"
        found = ctx.rewrite([ctx.cell] if ctx.cell else [], lambda s: ensure_call(s, call, str(threads)))

        def live(undo: Undo) -> None:
            torch.set_num_threads(threads)
            undo.push(lambda: torch.set_num_threads(current))

        snippet = None if found else f"{call}({threads})"
        return ctx.change(f"torch intra-op threads {current} → {threads}", live, snippet=snippet)


def _workers(namespace: dict[str, Any]) -> int:
    from torch.utils.data import DataLoader

    loaders = {id(v): v for v in namespace.values() if isinstance(v, DataLoader)}
    return sum(loader.num_workers for loader in loaders.values())
