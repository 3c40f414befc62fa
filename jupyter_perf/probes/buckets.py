"""DDP's gradient all-reduce: how much of each backward it blocked, and what it moved.

DDP all-reduces gradients in buckets while backward still computes the
earlier layers' gradients; once the *last* gradient is computed, nothing but
communication is left, and backward returns only when the last bucket's
all-reduce is done. So the exposed communication of a step is the time from
its last gradient to the end of ``backward()``: it is carved out of the step's
``backward`` into ``communication`` (``StepTrace.carve``), on the device's
clock (CUDA events) where the code runs on a GPU.

The last gradient is found without touching DDP's own path: during a DDP
model's first backward in the run every trainable parameter has a
post-accumulate-grad hook that notes the order; from then on only the hook of
the parameter whose gradient came last stays (one Python call per backward),
and all are removed when the run ends. A comm hook in front of DDP's buckets
would see each bucket, but any Python hook replaces DDP's C++ all-reduce and
cost ×1.10–1.15 on a 2-rank gloo loop of 7 ms steps here, so what DDP already
measures is read instead, once, when the run ends: its buckets (the rebuilt
bucket sizes), and its own sampled timings of the all-reduce and of how much
of it overlapped backward's compute (``_get_ddp_logging_data``). Steps under
``no_sync()`` all-reduce nothing and are not counted as rounds.

Once per run, after the second synchronised backward, the largest gradient's
first 64 Ki values (divided by the world size, as the compression hooks do) are
copied; after the run they are cast to bfloat16 and float16 and back: the
relative errors are what ``distributed.comm_hook``'s guard reads.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable

from .patching import Ledger
from .steps import StepTrace, cuda_ready

if TYPE_CHECKING:
    from .collectives import CollectiveProbe

#: Elements of a gradient kept for the compression errors: a copy of 256 KiB on the hot path once per run, the
#: casts after the run (a relative error in norm needs no more values than this to be read to two digits).
_SAMPLE = 1 << 16


class _Watched:
    """One DDP model: its hooks, and whether its last parameter is known yet."""

    def __init__(self, ddp: Any):
        self.ddp = ddp
        self.params = [p for p in ddp.module.parameters() if p.requires_grad]
        self.order: list[int] = []
        self.handles: list[Any] = []
        self.learning = True


class BucketProbe:
    _ledger: Ledger  # set by install(), before any DDP model is attached

    def __init__(self, trace: StepTrace, collectives: CollectiveProbe, namespace: dict[str, Any] | None = None):
        self.trace = trace
        self.collectives = collectives
        self.namespace = namespace or {}
        self._watched: list[_Watched] = []
        #: Backward passes that all-reduced (outside ``no_sync()``).
        self.rounds = 0
        self.exposed_s = 0.0
        self._exposed_events: list[tuple[Any, Any]] = []
        self._last: tuple[float, Any] | None = None  # when (and CUDA event) this backward's last gradient came
        self._sample: Any = None  # gradient values kept for the compression errors (``_read_sample``)

    # ---------------------------------------------------------------- install
    def install(self, ledger: Ledger) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self._ledger = ledger
        ledger.patch(DistributedDataParallel, "__init__", self._wrap_init)
        for value in list(self.namespace.values()):
            if isinstance(value, DistributedDataParallel):
                self._attach(value)

    def _wrap_init(self, original: Callable) -> Callable:
        def __init__(ddp: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - replaces DDP's __init__, named as it
            original(ddp, *args, **kwargs)
            self._attach(ddp)

        return __init__

    def _attach(self, ddp: Any) -> None:
        """Hooks on every trainable parameter of ``ddp`` until its first backward shows which gradient is last."""
        if any(w.ddp is ddp for w in self._watched):
            return
        if not self._watched:  # backward is wrapped once a DDP model exists: a run without one pays nothing
            import torch

            self._ledger.patch(torch.autograd, "backward", self._wrap_backward)
        watched = _Watched(ddp)
        for index, param in enumerate(watched.params):
            handle = param.register_post_accumulate_grad_hook(self._make_hook(watched, index))
            watched.handles.append(self._ledger.handle(handle))
        self._watched.append(watched)

    def _make_hook(self, watched: _Watched, index: int) -> Callable:
        def gradient_ready(_param: Any) -> None:
            if watched.learning:
                watched.order.append(index)
            self._last = (perf_counter(), timing_event() if self.trace.cuda_possible and cuda_ready() else None)

        return gradient_ready

    # --------------------------------------------------------------- hot path
    def _wrap_backward(self, original: Callable) -> Callable:
        probe, trace = self, self.trace

        def backward(*args: Any, **kwargs: Any) -> Any:
            probe._last = None
            syncing = [w for w in probe._watched if w.ddp.require_backward_grad_sync]
            try:
                return original(*args, **kwargs)
            finally:
                last, probe._last = probe._last, None
                if last is not None:
                    for watched in probe._watched:
                        if watched.learning and watched.order:
                            probe._keep_last(watched)
                    if syncing:
                        probe.rounds += 1
                        if trace.idle:  # backward was a step phase of its own, and has ended
                            probe._exposed(last)
                        if probe.rounds == 2 and probe._sample is None:
                            probe._sample = probe._compression_sample(syncing[0])

        return backward

    def _keep_last(self, watched: _Watched) -> None:
        """The first backward is over: only the hook of the parameter whose gradient came last stays."""
        watched.learning = False
        last = watched.order[-1]
        for index, handle in enumerate(watched.handles):
            if index != last:
                handle.remove()

    def _exposed(self, last: tuple[float, Any]) -> None:
        """Carve the time from the last gradient to the end of backward into ``communication``."""
        ready, start = last
        seconds = min(perf_counter() - ready, self.trace.last_duration)
        end = timing_event() if start is not None else None
        self.trace.carve("backward", seconds, start, end)
        if start is None:
            self.exposed_s += seconds
        else:
            self._exposed_events.append((start, end))

    def _compression_sample(self, watched: _Watched) -> Any:
        """The first ``_SAMPLE`` values of the largest gradient, divided by the world size as the compression
        hooks do, copied (the next step overwrites them); their 16-bit errors are computed after the run."""
        grads = [p.grad for p in watched.params if p.grad is not None]
        if not grads:
            return None
        world = self.collectives.group.get("world_size") or 1
        return max(grads, key=lambda g: g.numel()).detach().reshape(-1)[:_SAMPLE] / world

    # ---------------------------------------------------------------- results
    def signals(self, steps: int) -> dict[str, Any] | None:
        """The DDP part of ``signals['distributed']``: None where no DDP model was seen."""
        if not self._watched:
            return None
        models = [_facts(w.ddp, w.params) for w in self._watched]
        first = models[0]
        buckets = first.get("buckets") or 1
        exposed = self.exposed_s + sum(s.elapsed_time(e) / 1e3 for s, e in self._exposed_events)
        comm = first.get("all_reduce_s")  # DDP's own sampled mean, per all-reduce round
        world = self.collectives.group.get("world_size")
        moved = sum(m["gradient_bytes"] for m in models)
        return {
            "models": models,
            "backwards": self.rounds,
            "buckets": self.rounds * buckets,
            "buckets_per_backward": buckets,
            "buckets_per_step": self.rounds * buckets / steps if steps else None,
            "bytes": self.rounds * moved,
            "bytes_per_step": self.rounds * moved / steps if steps else None,
            "bucket_seconds": comm * self.rounds if comm is not None else None,
            "exposed_s": exposed,
            "overlap": first.get("overlap"),
            # DDP all-reduces its buckets (unless a hook sends them otherwise): nccl-tests' allreduce factor.
            "bus_bandwidth_bytes_per_s": (moved / comm * 2 * (world - 1) / world
                                          if comm and world and world > 1 else None),
            "compression_error": _read_sample(self._sample),
        }


def _facts(ddp: Any, params: list[Any]) -> dict[str, Any]:
    """How a DDP model was built and what DDP measured of its all-reduce (distributed.bucket_cap and
    distributed.comm_hook decide from these)."""
    hooks = [getattr(hook, "__qualname__", repr(hook)) for hook, _state in getattr(ddp, "_comm_hooks", ())]
    facts = {
        "class": type(ddp.module).__name__,
        "parameters": sum(p.numel() for p in params),
        "gradient_bytes": sum(p.numel() * p.element_size() for p in params),
        "largest_parameter_bytes": max((p.numel() * p.element_size() for p in params), default=0),
        "bucket_cap_bytes": getattr(ddp, "bucket_bytes_cap", None),
        "gradient_as_bucket_view": getattr(ddp, "gradient_as_bucket_view", None),
        "static_graph": getattr(ddp, "static_graph", None),
        "find_unused_parameters": getattr(ddp, "find_unused_parameters", None),
        "broadcast_buffers": getattr(ddp, "broadcast_buffers", None),
        "comm_hook": hooks[-1] if hooks else None,
        "device": str(params[0].device) if params else None,
    }
    facts.update(_ddp_measured(ddp))
    return facts


def _ddp_measured(ddp: Any) -> dict[str, Any]:
    """DDP's own numbers: the buckets it all-reduces (as rebuilt after its first iteration), and its sampled mean
    all-reduce time and overlap with backward's compute (the first 10 iterations and every 100th)."""
    try:
        data = ddp._get_ddp_logging_data()
    except Exception:  # noqa: BLE001 - DDP internals: absent or changed, the facts above stand
        return {}
    sizes = str(data.get("rebuilt_bucket_sizes") or data.get("bucket_sizes") or "")
    comm, overlap = data.get("avg_backward_comm_time"), data.get("avg_backward_compute_comm_overlap_time")
    return {
        "buckets": len([s for s in sizes.replace(",", " ").split() if s]) or None,
        "all_reduce_s": comm / 1e9 if comm else None,
        "overlap": max(0.0, min(1.0, overlap / comm)) if comm and overlap is not None else None,
    }


def _read_sample(sample: Any) -> dict[str, Any] | None:
    """The relative error (in norm), the largest absolute error and the values 16 bits cannot hold, of sending
    the sampled gradients in bfloat16 and in float16."""
    if sample is None:
        return None
    import torch

    values = sample.double()
    norm = float(values.norm())
    read: dict[str, Any] = {"elements": values.numel()}
    for dtype in (torch.bfloat16, torch.float16):
        cast = values.to(dtype)
        error = cast.double() - values
        name = str(dtype).removeprefix("torch.")
        read[name] = float(error.norm()) / norm if norm > 0 else 0.0
        read[f"{name}_max_abs"] = float(error.abs().max())
        read[f"{name}_nonfinite"] = int((~cast.isfinite()).sum())
    return read


def timing_event() -> Any:
    """A CUDA event recorded now on the current stream, for timing device work without a synchronize."""
    import torch

    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event
