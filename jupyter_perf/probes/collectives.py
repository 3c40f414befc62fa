"""Every torch.distributed collective the profiled code calls: count, bytes and time, per operation.

``torch.distributed.all_reduce`` and its siblings are looked up on the module
at call time (``dist.all_reduce(...)``, accelerate's ``torch.distributed.
all_gather_into_tensor(...)``), and the c10d functions that call each other
(``all_gather_object`` → ``all_gather``) go through their module's globals,
so both module attributes are patched for the run; code that bound a
function before the run (``from torch.distributed import all_reduce`` at import)
is not seen. Only the outermost call is a collective: the ones it makes
itself add their bytes to it.

A synchronous call blocks the step: it is its own ``communication`` interval,
or, inside another phase (a ZeRO optimizer's broadcasts, an all_gather in a
model's forward), carved out of that phase (``StepTrace.carve``). An
asynchronous one (``async_op=True``, as a DDP comm hook issues its bucket's) is
counted when issued and blocks nothing; the time ``work.wait()`` blocks is
communication (``Work.wait`` is patched; DDP's own waits happen in C++, and
what they block is the bucket probe's). On a GPU each call also
records two CUDA events, resolved after the run: with NCCL the host returns
as soon as the work is queued, so only the device's clock says how long it
took, and nothing here synchronizes.

Bytes follow nccl-tests' convention (the size of the whole buffer an
operation handles: all_gather's output, reduce_scatter's input), so the bus
bandwidth of docs/distributed.md is ``bytes / seconds × factor`` with
nccl-tests' factor per operation.
"""

from __future__ import annotations

import functools
import socket
from time import perf_counter
from typing import Any, Callable

from .buckets import BucketProbe, timing_event
from .patching import Ledger
from .steps import StepTrace, cuda_ready

#: Operation → (index of the argument whose tensors are the bytes moved, its keyword, nccl-tests' bus factor
#: as a function of the world size n). None: no tensor argument (barriers), or bytes counted by nested calls.
OPERATIONS: dict[str, tuple[int | None, str | None, Callable[[int], float]]] = {
    "all_reduce": (0, "tensor", lambda n: 2 * (n - 1) / n),
    "all_gather": (0, "tensor_list", lambda n: (n - 1) / n),
    "all_gather_into_tensor": (0, "output_tensor", lambda n: (n - 1) / n),
    "all_gather_object": (None, None, lambda n: (n - 1) / n),
    "reduce_scatter": (1, "input_list", lambda n: (n - 1) / n),
    "reduce_scatter_tensor": (1, "input", lambda n: (n - 1) / n),
    "all_to_all": (1, "input_tensor_list", lambda n: (n - 1) / n),
    "all_to_all_single": (1, "input", lambda n: (n - 1) / n),
    "broadcast": (0, "tensor", lambda n: 1.0),
    "broadcast_object_list": (None, None, lambda n: 1.0),
    "reduce": (0, "tensor", lambda n: 1.0),
    "gather": (0, "tensor", lambda n: 1.0),
    "scatter": (0, "tensor", lambda n: 1.0),
    "send": (0, "tensor", lambda n: 1.0),
    "recv": (0, "tensor", lambda n: 1.0),
    "isend": (0, "tensor", lambda n: 1.0),
    "irecv": (0, "tensor", lambda n: 1.0),
    "batch_isend_irecv": (0, "p2p_op_list", lambda n: 1.0),
    "barrier": (None, None, lambda n: 0.0),
    "monitored_barrier": (None, None, lambda n: 0.0),
}

#: What ``Work.wait()`` is recorded as: the blocking half of an asynchronous operation (its bytes were
#: counted when it was issued).
WAIT = "wait"


def nbytes(value: Any) -> int:
    """Bytes of a tensor, of the tensors in a list, or of a list of P2POps; 0 for anything else."""
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(nbytes(getattr(v, "tensor", v)) for v in value)
    return 0


class CollectiveProbe:
    """Times collectives on the profiled thread; ``buckets`` times DDP's gradient buckets."""

    def __init__(self, trace: StepTrace, namespace: dict[str, Any] | None = None):
        self.trace = trace
        self.buckets = BucketProbe(trace, self, namespace)
        #: Operation → [calls, bytes, host seconds]; CUDA-timed calls keep their events in ``_events``.
        self.ops: dict[str, list] = {}
        self._events: list[tuple[str, Any, Any]] = []
        #: Nesting depth: collectives inside a collective add their bytes to the outer one.
        self.depth = 0
        self._nested_bytes = 0
        #: ``backend``, ``rank``, ``world_size`` of the default process group, once seen.
        self.group: dict[str, Any] = {}

    def install(self, ledger: Ledger) -> None:
        import torch.distributed as dist

        if not dist.is_available():
            return
        c10d = dist.distributed_c10d
        for op in OPERATIONS:
            if hasattr(c10d, op):
                _patch_both(ledger, dist, op, functools.partial(self._wrap, op))
        _patch_both(ledger, dist, "init_process_group", self._wrap_init)
        ledger.patch(dist.Work, "wait", lambda original: self._wrap(WAIT, original))
        self.read_group()
        self.buckets.install(ledger)

    # ------------------------------------------------------------- hot path
    def _wrap(self, op: str, original: Callable) -> Callable:
        position, keyword, _factor = OPERATIONS.get(op, (None, None, None))
        probe, trace = self, self.trace

        def collective(*args: Any, **kwargs: Any) -> Any:
            if probe.depth:  # made by an outer collective: its bytes are the outer one's
                if position is not None and keyword is not None:
                    probe._nested_bytes += nbytes(args[position] if len(args) > position else kwargs.get(keyword))
                return original(*args, **kwargs)
            probe.depth, probe._nested_bytes = 1, 0
            blocking = not kwargs.get("async_op")  # an asynchronous call blocks nothing: its wait() does
            enclosing = trace.active if blocking else None
            token = trace.begin("communication") if blocking else None
            start = timing_event() if blocking and trace.cuda_possible and cuda_ready() else None
            t0 = perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                t1 = perf_counter()
                end = timing_event() if start is not None else None
                if token is not None:
                    trace.end(token)
                elif enclosing is not None:  # inside another phase: carved from it once it ends
                    trace.carve(enclosing, t1 - t0, start, end)
                probe.depth = 0
                moved = probe._nested_bytes
                if position is not None and keyword is not None:
                    moved += nbytes(args[position] if len(args) > position else kwargs.get(keyword))
                probe._record(op, moved, t1 - t0, start, end)

        functools.update_wrapper(collective, original, assigned=(), updated=())  # sets __wrapped__ only
        collective.__name__ = getattr(original, "__name__", op)
        collective.__doc__ = getattr(original, "__doc__", None)
        return collective

    def _record(self, op: str, moved: int, seconds: float, start: Any, end: Any) -> None:
        entry = self.ops.get(op)
        if entry is None:
            entry = self.ops[op] = [0, 0, 0.0]
            if not self.group:
                self.read_group()
        entry[0] += 1
        entry[1] += moved
        if start is None:
            entry[2] += seconds
        else:
            self._events.append((op, start, end))

    def _wrap_init(self, original: Callable) -> Callable:
        def init_process_group(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            self.read_group()
            return result

        functools.update_wrapper(init_process_group, original, assigned=(), updated=())  # sets __wrapped__ only
        return init_process_group

    def read_group(self) -> None:
        """The default process group's backend, rank and world size, while it exists (the code may destroy
        it before the run ends, so it is read when it is made and at the first collective)."""
        import torch.distributed as dist

        if dist.is_initialized():
            self.group = {"backend": str(dist.get_backend()), "rank": dist.get_rank(),
                          "world_size": dist.get_world_size()}

    # -------------------------------------------------------------- results
    def signals(self, steps: int) -> dict[str, Any] | None:
        """``signals['distributed']`` for this process, None where nothing distributed happened."""
        for op, e0, e1 in self._events:  # the run's end synchronized the device: the events are complete
            self.ops[op][2] += e0.elapsed_time(e1) / 1e3
        self._events.clear()
        if not self.group:
            self.read_group()
        buckets = self.buckets.signals(steps)
        if not self.ops and buckets is None and not self.group:
            return None
        world = self.group.get("world_size")
        ops = {}
        for op, (calls, moved, seconds) in sorted(self.ops.items()):
            factor = OPERATIONS[op][2](world) if op in OPERATIONS and world else None
            ops[op] = {"calls": calls, "bytes": moved, "seconds": seconds,
                       "calls_per_step": calls / steps if steps else None,
                       "bytes_per_step": moved / steps if steps else None,
                       "bus_bandwidth_bytes_per_s": moved / seconds * factor if factor and seconds > 0 else None}
        return {**self.group, "host": socket.gethostname(), "collectives": ops, "ddp": buckets,
                "timing": "cuda_events" if self.trace.cuda_possible and cuda_ready() else "host"}


def _patch_both(ledger: Ledger, dist: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    """``make(original)`` in place of c10d's function and of ``torch.distributed``'s name for the same one."""
    c10d = dist.distributed_c10d
    original = getattr(c10d, name)
    wrapped = make(original)
    ledger.patch(c10d, name, lambda _original: wrapped)
    if getattr(dist, name, None) is original:
        ledger.patch(dist, name, lambda _original: wrapped)
