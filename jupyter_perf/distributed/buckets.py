"""DDP's gradient buckets, timed through a comm hook, and the part of backward blocked on them.

DDP all-reduces gradients in buckets while backward is still computing the
earlier layers' gradients; each bucket goes through a *comm hook* (DDP's
built-in allreduce unless the user registered one). For the run, a DDP model
gets a hook that stands in front of the real one (the user's, or
``default_hooks.allreduce_hook``, which does what the built-in does): it
counts the bucket and its bytes and times it from hand-over to completion.
A model built during the run gets it as it is built; one built before gets
it if it has no hook yet; a hook the user registers later (``register_comm_hook``
is patched for the run) takes the inner place instead of failing.

DDP allows one hook per model and none can be removed, so when the run ends
the stand-in stays registered as a pass-through (one Python call per bucket);
docs/distributed.md says so. A rank's model ends with its process anyway.

Exposed communication: DDP hands the last bucket to the hook once the last
gradient is computed, so from then to the end of ``backward()`` nothing but
communication (and unflattening it) is left: that time is carved out of the
step's ``backward`` into ``communication`` (``StepTrace.carve``), on the
device's clock with CUDA events where the code runs on a GPU.

Once per run, the first bucket's first MiB of gradients (divided by the world
size, as the compression hooks do) is cast to bfloat16 and float16 and back:
the relative errors are what ``distributed.comm_hook``'s guard reads.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable

from ..probes.patching import Ledger
from ..probes.steps import StepTrace, _cuda_ready

if TYPE_CHECKING:
    from .collectives import CollectiveProbe

#: Elements of a bucket sampled for the compression errors: 4 MiB of float32, a cast that costs ≈ 1 ms.
_SAMPLE = 1 << 20


class HookState:
    """The comm hook's state: the hook it stands in front of with that hook's state, and the probe of the run
    being profiled (None between runs: a pass-through)."""

    __slots__ = ("hook", "state", "probe")

    def __init__(self, hook: Callable, state: Any, probe: BucketProbe | None):
        self.hook, self.state, self.probe = hook, state, probe


def timed_hook(state: HookState, bucket):  # noqa: ANN001, ANN201 - DDP checks these annotations: none, or its own
    """DDP comm hook: time the bucket while a run is profiled, else hand it straight to the real hook."""
    probe = state.probe
    if probe is None:
        return state.hook(state.state, bucket)
    return probe.bucket(state, bucket)


class BucketProbe:
    def __init__(self, trace: StepTrace, collectives: CollectiveProbe, namespace: dict[str, Any] | None = None):
        self.trace = trace
        self.collectives = collectives
        self.namespace = namespace or {}
        self.calls = 0
        self.bytes = 0
        self.backwards = 0  # backward passes that handed buckets over
        self._durations: list[float] = []  # hand-over to completion, host clock (appended on the backend's thread)
        self._bucket_events: list[tuple[Any, Any]] = []
        self.exposed_s = 0.0
        self._exposed_events: list[tuple[Any, Any]] = []
        self._last: tuple[float, Any] | None = None  # when (and CUDA event) the latest bucket was handed over
        self._states: list[tuple[Any, HookState]] = []  # (DDP model, its hook state) attached this run
        self._sample: dict[str, Any] | None = None
        self.notes: list[str] = []
        self._register: Callable | None = None

    # ---------------------------------------------------------------- install
    def install(self, ledger: Ledger) -> None:
        import torch
        from torch.nn.parallel import DistributedDataParallel

        ledger.patch(DistributedDataParallel, "__init__", self._wrap_init)
        ledger.patch(DistributedDataParallel, "register_comm_hook", self._wrap_register)
        ledger.patch(torch.autograd, "backward", self._wrap_backward)
        ledger.call(self._detach)
        for value in list(self.namespace.values()):
            if isinstance(value, DistributedDataParallel):
                self._attach(value)

    def _detach(self) -> None:
        """The run is over: every stand-in hook becomes a pass-through (DDP cannot remove a hook)."""
        for _model, state in self._states:
            state.probe = None

    def _wrap_init(self, original: Callable) -> Callable:
        def __init__(ddp: Any, *args: Any, **kwargs: Any) -> None:
            original(ddp, *args, **kwargs)
            self._attach(ddp)

        return __init__

    def _wrap_register(self, original: Callable) -> Callable:
        self._register = original

        def register_comm_hook(ddp: Any, state: Any, hook: Callable) -> None:
            ours = _stand_in(ddp)
            if ours is None:  # a model this run could not attach to (its hook came first): time this one
                ddp._check_comm_hook(hook)
                ours = HookState(hook, state, self)
                original(ddp, ours, timed_hook)
                self._states.append((ddp, ours))
                self.notes = [n for n in self.notes if "registered before" not in n]
                return
            ddp._check_comm_hook(hook)  # the checks and messages DDP would give the user's hook
            ours.hook, ours.state = hook, state
            ddp.logger._set_comm_hook_name(getattr(hook, "__qualname__", repr(hook)))

        return register_comm_hook

    def _attach(self, ddp: Any) -> None:
        """Put the stand-in in front of ``ddp``'s allreduce (or take over one left from an earlier run)."""
        ours = _stand_in(ddp)
        if ours is not None:
            ours.probe = self
        elif getattr(ddp, "_comm_hooks", None):
            hook = ddp._comm_hooks[0][0]
            self.notes.append(f"a DDP model's comm hook ({getattr(hook, '__qualname__', hook)}) was registered "
                              "before the run: its buckets are not timed, and exposed communication is not carved")
            return
        else:
            ours = HookState(_default_hook(), ddp.process_group, self)
            register = self._register or type(ddp).register_comm_hook
            register(ddp, ours, timed_hook)
        self._states.append((ddp, ours))

    # --------------------------------------------------------------- hot path
    def bucket(self, state: HookState, bucket: Any) -> Any:
        """One bucket handed to the hook: count it, time it to completion, and remember when it was handed."""
        t0 = perf_counter()
        start = _event() if self.trace.cuda_possible and _cuda_ready() else None
        buffer = bucket.buffer()
        if self._sample is None:
            self._sample = self._compression_sample(buffer)
        collectives = self.collectives
        collectives.depth += 1  # the hook's own collectives are this bucket's
        try:
            future = state.hook(state.state, bucket)
        finally:
            collectives.depth -= 1
        self._last = (t0, start)
        self.calls += 1
        self.bytes += buffer.numel() * buffer.element_size()
        durations, events = self._durations, self._bucket_events

        def done(fut: Any) -> Any:
            if start is None:
                durations.append(perf_counter() - t0)
            else:
                events.append((start, _event()))  # the callback runs on streams that waited for the bucket
            return fut.value()

        return future.then(done)

    def _wrap_backward(self, original: Callable) -> Callable:
        probe, trace = self, self.trace

        def backward(*args: Any, **kwargs: Any) -> Any:
            probe._last = None
            try:
                return original(*args, **kwargs)
            finally:
                last, probe._last = probe._last, None
                if last is not None:
                    probe.backwards += 1
                    if trace.idle:  # backward was a step phase of its own, and has ended
                        probe._exposed(last)

        return backward

    def _exposed(self, last: tuple[float, Any]) -> None:
        """Carve the time from the last bucket's hand-over to the end of backward into ``communication``."""
        handed, start = last
        seconds = min(perf_counter() - handed, self.trace.last_duration)
        end = _event() if start is not None else None
        self.trace.carve("backward", seconds, start, end)
        if start is None:
            self.exposed_s += seconds
        else:
            self._exposed_events.append((start, end))

    def _compression_sample(self, buffer: Any) -> dict[str, Any]:
        """The relative error of sending this bucket's gradients in 16 bits (tensors; read after the run)."""
        import torch

        world = self.collectives.group.get("world_size") or 1
        grads = buffer.detach()[:_SAMPLE].double() / world
        norm = grads.norm()
        sample = {"elements": grads.numel(), "norm": norm}
        for dtype in (torch.bfloat16, torch.float16):
            cast = grads.to(dtype)
            error = cast.double() - grads
            sample[str(dtype).removeprefix("torch.")] = (error.norm() / norm, error.abs().max(), (~cast.isfinite()).sum())
        return sample

    # ---------------------------------------------------------------- results
    def signals(self, steps: int) -> dict[str, Any] | None:
        """The DDP part of ``signals['distributed']``: None where no DDP model was seen."""
        if not self._states and not self.notes:
            return None
        comm = sum(self._durations) + sum(s.elapsed_time(e) / 1e3 for s, e in self._bucket_events)
        exposed = self.exposed_s + sum(s.elapsed_time(e) / 1e3 for s, e in self._exposed_events)
        world = self.collectives.group.get("world_size")
        return {
            "models": [_facts(ddp, state) for ddp, state in self._states],
            "buckets": self.calls,
            "bytes": self.bytes,
            "backwards": self.backwards,
            "buckets_per_backward": self.calls / self.backwards if self.backwards else None,
            "buckets_per_step": self.calls / steps if steps else None,
            "bytes_per_step": self.bytes / steps if steps else None,
            "bucket_seconds": comm,
            "exposed_s": exposed,
            "overlap": max(0.0, min(1.0, 1 - exposed / comm)) if comm > 0 else None,
            # Buckets are all-reduced (by DDP's hook or a compression hook): nccl-tests' allreduce factor.
            "bus_bandwidth_bytes_per_s": (self.bytes / comm * 2 * (world - 1) / world
                                          if comm > 0 and world and world > 1 else None),
            "compression_error": _read_sample(self._sample),
            "notes": list(self.notes),
        }


def _stand_in(ddp: Any) -> HookState | None:
    """The stand-in hook's state where ``ddp`` has one registered (by this run or an earlier one)."""
    return next((state for hook, state in getattr(ddp, "_comm_hooks", ()) if hook is timed_hook), None)


def _facts(ddp: Any, state: HookState) -> dict[str, Any]:
    """How a DDP model was built: what distributed.bucket_cap and distributed.comm_hook decide from."""
    params = [p for p in ddp.module.parameters() if p.requires_grad]
    hook = getattr(state.hook, "__qualname__", repr(state.hook))
    return {
        "class": type(ddp.module).__name__,
        "parameters": sum(p.numel() for p in params),
        "gradient_bytes": sum(p.numel() * p.element_size() for p in params),
        "largest_parameter_bytes": max((p.numel() * p.element_size() for p in params), default=0),
        "bucket_cap_bytes": getattr(ddp, "bucket_bytes_cap", None),
        "gradient_as_bucket_view": getattr(ddp, "gradient_as_bucket_view", None),
        "static_graph": getattr(ddp, "static_graph", None),
        "find_unused_parameters": getattr(ddp, "find_unused_parameters", None),
        "broadcast_buffers": getattr(ddp, "broadcast_buffers", None),
        "comm_hook": None if state.hook is _default_hook() else hook,
        "device": str(params[0].device) if params else None,
    }


def _default_hook() -> Callable:
    """What stands behind the stand-in where the user registered nothing: what DDP's built-in hook does."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    return default_hooks.allreduce_hook


def _read_sample(sample: dict[str, Any] | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    read = {"elements": sample["elements"]}
    for dtype in ("bfloat16", "float16"):
        error, largest, nonfinite = sample[dtype]
        read[dtype] = float(error) if float(sample["norm"]) > 0 else 0.0
        read[f"{dtype}_max_abs"] = float(largest)
        read[f"{dtype}_nonfinite"] = int(nonfinite)
    return read


def _event() -> Any:
    import torch

    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event
