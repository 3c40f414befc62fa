"""distributed.ddp: a single-process training cell rewritten to run as DistributedDataParallel ranks.

One process trains on one device while others sit idle (or drives them all
through ``nn.DataParallel``, which PyTorch's documentation advises replacing by
DDP). The cell becomes a function each rank runs, launched from the notebook
with ``torch.multiprocessing.start_processes(..., start_method="fork")`` (a
notebook's functions cannot be pickled for ``spawn``):

* the process group is made (``nccl`` with one GPU per rank, ``gloo`` on CPUs,
  whose ranks share the cores);
* the model is wrapped in ``DistributedDataParallel`` (the module inside a
  ``DataParallel``), after the cell builds it, or as it is in the namespace;
* each DataLoader the loop iterates is rebuilt with a ``DistributedSampler``,
  so the ranks share the data rather than each repeat it;
* the cell's own code follows, unchanged; the process group is destroyed at the end.

Nothing live changes: the rewritten cell, run (Apply & re-run runs it), is the
change. What the user must know is said: each rank takes the loader's batch,
so the global batch is ``world_size`` times larger; names the cell assigns now
live in the ranks; and a kernel that already initialised CUDA cannot fork
ranks that use it (restart it and run the cell first).
"""

from __future__ import annotations

from typing import ClassVar

import libcst as cst

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, torch_name
from .ddp_code import DDP_CLASS, launched_functions
from .model_rewrite import TrainingLoop, binds_name, free_name
from .models import MODEL_PARAM, device_of, pick_model
from .rewrite import after_imports, dotted, find_nodes, leading_lines, loops_over, parse

WORKER = "ddp_worker"


class Ddp(Optimization):
    entry = CATALOG["distributed.ddp"]
    params: ClassVar[dict[str, str]] = {
        "model": MODEL_PARAM,
        "world_size": "ranks (default: the visible GPUs where the model is on a GPU, else 2 CPU processes sharing the "
                      "cores)",
        "port": "the TCP port ranks meet on (default: a free one)",
    }

    def plan(self, ctx: Context) -> Change:
        import torch
        from torch.utils.data import DataLoader

        name, model = pick_model(ctx)
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return ctx.unchanged(f"{name} is already a DistributedDataParallel")
        cell = ctx.cell
        module = parse(cell.source) if cell else None
        if module is not None and _launches_ddp(module):
            return ctx.unchanged("the cell launches ranks that each wrap the model in DistributedDataParallel")
        loop = TrainingLoop.find(module) if module else None
        if cell is None or module is None or loop is None or loop.loop not in module.body:
            raise NotApplicable("the cell has no top-level training loop (a for loop with one .backward()) to run in "
                                "each rank")
        cuda = device_of(model).type == "cuda"
        world = ctx.param("world_size", lambda: torch.cuda.device_count() if cuda else 2)
        if not isinstance(world, int) or world < 2:
            raise NotApplicable(f"world_size must be at least 2, not {world!r}")
        port = ctx.param("port", _free_port)
        tname = torch_name(ctx.namespace)
        loaders = [k for k, v in ctx.namespace.items() if isinstance(v, DataLoader) and not k.startswith("_")
                   and loops_over(module, k)]
        inner = f"{name}.module" if isinstance(model, torch.nn.DataParallel) else name
        worker = free_name(WORKER, cell.source, ctx.namespace)
        new = _rewritten(module, worker, name, inner, loaders, tname, world, port, cuda)
        ctx.rewrite([cell], lambda source: new if source == cell.source else None)
        warnings = [f"each of the {world} ranks takes the loader's batch: the global batch is {world}× larger and "
                    f"an epoch {world}× fewer steps per rank; revisit the learning rate",
                    "names the cell assigns (losses, metrics) now live in the ranks, not in the notebook"]
        if not loaders:
            warnings.append("the loop iterates no DataLoader from the namespace: every rank trains on all the data; "
                            "shard it with a DistributedSampler")
        if cuda and torch.cuda.is_initialized():
            warnings.append("CUDA is initialised in this kernel, so it cannot fork ranks that use it: restart the "
                            "kernel and run this cell before anything touches CUDA (or run it as a script with "
                            "torchrun)")
        return ctx.change(f"the cell runs as {world} DDP ranks ({'nccl, one GPU each' if cuda else 'gloo on the CPU'}) "
                          f"launched from the notebook; re-run it to measure", warnings=warnings)


def _rewritten(module: cst.Module, worker: str, model: str, inner: str, loaders: list[str], tname: str, world: int,
               port: int, cuda: bool) -> str:
    """The cell as a rank function and its launch (module docstring), its imports kept on top."""
    body = list(module.body)
    at = after_imports(body)
    imports, code_lines = body[:at], body[at:]
    rebound = [model, *loaders]
    defaults = [n for n in rebound if not any(binds_name(s, n) for s in code_lines)]
    device = "rank" if cuda else None
    setup = [f"{tname}.distributed.init_process_group({'nccl' if cuda else 'gloo'!r}, "
             f"init_method='tcp://127.0.0.1:{port}', rank=rank, world_size=world_size)"]
    shared = f"{tname}.set_num_threads(max(1, {tname}.get_num_threads() // world_size))  # the ranks share the cores"
    setup.append(f"{tname}.cuda.set_device(rank)" if cuda else shared)
    wrap = {model: f"{model} = {tname}.nn.parallel.{DDP_CLASS}({inner}" + (f".to({device}), device_ids=[{device}])"
                                                                            if cuda else ")")}
    for loader in loaders:
        sampler = f"{tname}.utils.data.distributed.DistributedSampler({loader}.dataset, world_size, rank)"
        wrap[loader] = (f"{loader} = {tname}.utils.data.DataLoader({loader}.dataset, batch_size={loader}.batch_size, "
                        f"sampler={sampler}, "
                        f"num_workers={loader}.num_workers, collate_fn={loader}.collate_fn, "
                        f"pin_memory={loader}.pin_memory, drop_last={loader}.drop_last)")
    statements = [cst.parse_statement(s + "\n") for s in setup]
    lines = [code_lines[0].with_changes(leading_lines=[]), *code_lines[1:]] if code_lines else []
    for name, statement in wrap.items():  # after the cell binds the name, else first
        bound = [i for i, s in enumerate(lines) if binds_name(s, name)]
        lines.insert(bound[-1] + 1 if bound else 0, cst.parse_statement(statement + "\n"))
    signature = ", ".join(["rank", "world_size", *(f"{n}={n}" for n in defaults)])
    function = cst.ensure_type(cst.parse_statement(
        f"def {worker}({signature}):\n"
        f'    """One rank of this cell under DistributedDataParallel (jupyter-perf distributed.ddp)."""\n    pass\n'),
        cst.FunctionDef)
    teardown = cst.parse_statement(f"{tname}.distributed.destroy_process_group()\n")
    function = function.with_changes(body=function.body.with_changes(
        body=[function.body.body[0], *statements, *lines, teardown]),
        leading_lines=leading_lines(code_lines[0]) if code_lines else [])
    launch = cst.parse_statement(f"{tname}.multiprocessing.start_processes({worker}, args=({world},), nprocs={world}, "
                                 'start_method="fork")\n')
    launch = launch.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
    return module.with_changes(body=[*imports, function, launch]).code


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launches_ddp(module: cst.Module) -> bool:
    """The cell defines a function that builds a DistributedDataParallel and launches it (what this writes)."""
    launched = set(launched_functions(module))
    return any(isinstance(stmt, cst.FunctionDef) and stmt.name.value in launched
               and find_nodes(stmt, cst.Call, lambda n: (dotted(n.func) or "").endswith(DDP_CLASS))
               for stmt in module.body)
