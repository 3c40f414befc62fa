"""One measured trial of a DataLoader setting on the real loop, leaving nothing behind (tune.py).

A trial runs the profiled cell's code with one loader setting and times the
loop's own steps. Iterating the namespace's loader during the trial (also
from a function of another cell that reads the global name) yields the trial
loader's batches; a cell that builds its loader itself runs rewritten with
the trial's value. Either way training's own threads compete with the
workers as they do for real. Timing comes from the loop's requests for batches: a step is the
interval between two requests, holding both the data wait and the step's
work. The first ``1 + num_workers × prefetch_factor`` batches are warm-up
(workers starting, a new shape's first kernels, and the batches the workers
loaded ahead meanwhile, which a loop slower than its data would otherwise
count as free: 8 workers on a sleep-bound dataset measured ×3 their real
rate with ``1 + num_workers``). Measured steps then run for ``seconds``, into
the next epoch if one ends first (its restart is a real cost), so the window
spans many rounds of the workers and the lumpy arrival of their batches
averages out. Then the next request raises ``_Enough``, a BaseException the
cell's ``except Exception`` does not catch: the cell stops right there, and
nothing after its loop (an evaluation, a checkpoint write) runs.

Nothing stays (``Sandbox``): the cell runs in a copy of the namespace (top-level
lists, dicts and sets copied too, so appends and rebinding go nowhere); after
each trial the models' parameters, buffers, gradients and train/eval flags,
every optimizer's, scheduler's and scaler's state, small tensors of the
namespace (accumulators), the grad mode and the RNGs (torch's CPU and CUDA,
Python's, numpy's, the loader's generators) are put back as they were, and
every iterator the trial started has its worker processes shut down. The
same holds when the trial raises or is interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import functools
import gc
import io
import random
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

from ..probes.dataloader import batch_size
from ..probes.patching import Ledger
from .guard import map_tensors

#: Measured steps a trial needs at least, however long they take.
MIN_BATCHES = 3
#: Namespace tensors up to this size are saved and put back after each trial (running sums, counters); larger
#: ones are data, which a training step does not write.
SMALL_TENSOR_BYTES = 1 << 20


@dataclass(frozen=True)
class Measured:
    """What one trial measured: steps after warm-up, their samples and seconds, the memory its steps added."""

    batches: int
    samples: int
    seconds: float
    #: Peak bytes above the trial's start (CUDA allocations on a GPU, resident memory on the CPU); None where
    #: it cannot be measured.
    peak_bytes: int | None
    #: Whether the cell ended before the trial had its full length (it broke out of its loop, or raised).
    cut_short: bool

    @property
    def samples_per_s(self) -> float | None:
        return self.samples / self.seconds if self.batches and self.seconds > 0 else None


class _Enough(BaseException):
    """Raised where the trial's loop asks for its next batch once enough were measured: stops the cell there."""


class Meter:
    """When the loop asked for each batch, and how many samples each batch held."""

    def __init__(self, warmup: int, seconds: float):
        self.warmup, self.seconds = warmup, seconds
        self.marks: list[float] = []
        self.sizes: list[int] = []
        self.done = False

    def request(self) -> None:
        now = time.perf_counter()
        self.marks.append(now)
        steps = len(self.marks) - 1 - self.warmup  # steps closed by this request, past the warm-up
        if steps >= MIN_BATCHES and now - self.marks[self.warmup] >= self.seconds:
            self.done = True
            raise _Enough

    def delivered(self, batch: Any) -> None:
        self.sizes.append(batch_size(batch) or 1)

    def result(self, peak_bytes: int | None) -> Measured:
        """Steps closed by a later request (the last batch's step is closed by the request that got no batch)."""
        closed = min(len(self.marks) - 1, len(self.sizes))
        steps = max(0, closed - self.warmup)
        seconds = self.marks[closed] - self.marks[self.warmup] if steps else 0.0
        return Measured(steps, sum(self.sizes[self.warmup:closed]), seconds, peak_bytes, not self.done)


class _Timed:
    """A DataLoader iterator whose ``next`` is metered and may stop the trial; at the epoch's end it goes on
    with the next epoch until the trial has its length (a short epoch would leave too few batches to
    measure)."""

    def __init__(self, restart: Any, meter: Meter):
        self.restart, self.meter = restart, meter
        self.iterator = restart()

    def __iter__(self) -> _Timed:
        return self

    def __len__(self) -> int:
        return len(self.iterator)

    def __next__(self) -> Any:
        self.meter.request()
        try:
            batch = next(self.iterator)
        except StopIteration:
            self.iterator = self.restart()
            batch = next(self.iterator)  # an empty loader ends the loop: nothing to measure
        self.meter.delivered(batch)
        return batch


@contextlib.contextmanager
def swapped_iteration(original: Any, trial: Any, meter: Meter, others: list[Any]):
    """While it lasts, iterating ``original`` iterates ``trial`` instead, and every DataLoader iterated is
    metered but those over the datasets of ``others`` (the namespace's other loaders: a validation loop is
    not the loop tuned), so a loader the cell builds itself, over a dataset it builds too, is metered;
    after, each iterator started is shut down (worker processes joined) and ``DataLoader.__iter__`` is
    torch's again."""
    from torch.utils.data import DataLoader

    started: list[tuple[Any, Any]] = []
    skipped = {id(other.dataset) for other in others if other is not original}

    def make(torch_iter: Any) -> Any:
        def __iter__(loader: Any) -> Any:  # noqa: N807 - replaces DataLoader.__iter__ and is named as it
            if id(loader.dataset) in skipped:
                return torch_iter(loader)
            source = trial if loader is original else loader

            def start() -> Any:
                iterator = torch_iter(source)
                started.append((source, iterator))
                return iterator

            return _Timed(start, meter)

        return __iter__

    ledger = Ledger()
    ledger.patch(DataLoader, "__iter__", make)
    try:
        yield
    finally:
        ledger.restore()
        for loader, iterator in started:
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            if getattr(loader, "_iterator", None) is iterator:  # a persistent-workers loader keeps its iterator
                loader._iterator = None


def run_code(code: str, namespace: dict[str, Any]) -> None:
    """Execute ``code`` (Python, magics already transformed) with its output and warnings swallowed: a trial's
    prints and progress bars are not the user's run's. ``_Enough`` ends it quietly."""
    compiled = compile(code, "<jupyter-perf trial>", "exec")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(_Enough):
            exec(compiled, namespace)  # noqa: S102 - the user's own cell, as Apply & re-run runs it


# ------------------------------------------------------------------ memory
class MemoryWatch:
    """The peak bytes a trial adds over its start: CUDA allocations once the user's code started CUDA (the
    caching allocator's own count, exact), else the process's resident memory (Linux's high-water mark,
    reset before each trial through /proc/self/clear_refs; malloc trimmed first so freed memory does not
    hide the growth). Elsewhere peak_bytes is None."""

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda.is_initialized()
        self.base: int | None = None

    def start(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        _trim()
        self.base = _resident() if _reset_high_water() else None

    def peak(self) -> int | None:
        import torch

        if self.base is None:
            return None
        top = torch.cuda.max_memory_allocated() if self.cuda else _high_water()
        return max(0, top - self.base) if top is not None else None

    def free(self) -> int:
        """Bytes a trial may still take: what the device has free plus what the allocator holds unused; on the
        host, what the system reports available."""
        import psutil
        import torch

        if self.cuda:
            free, _total = torch.cuda.mem_get_info()
            return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        return psutil.virtual_memory().available


def _reset_high_water() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size (Linux ≥ 4.0)
    except OSError:
        return False
    return True


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            line = next((line for line in f if line.startswith(field + ":")), None)
    except OSError:
        return None
    return int(line.split()[1]) * 1024 if line else None


def _resident() -> int | None:
    return _status_kib("VmRSS")


def _high_water() -> int | None:
    return _status_kib("VmHWM")


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def _trim() -> None:
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# ------------------------------------------------------------------ the sandbox
class Sandbox:
    """The user's state, saved once before the trials and put back after each (module docstring)."""

    def __init__(self, namespace: dict[str, Any], loaders: list[Any]):
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        self.namespace = namespace
        values = [v for k, v in namespace.items() if not k.startswith("_")]
        modules = [v for v in values if isinstance(v, nn.Module)]
        inner = {id(m) for v in modules for m in v.modules() if m is not v}
        self._modules = [_ModuleState(m) for m in {id(m): m for m in modules if id(m) not in inner}.values()]
        unique = list({id(v): v for v in values}.values())
        self._stateful = [(obj, state) for obj in unique if not isinstance(obj, (nn.Module, DataLoader))
                          and (state := _state_of(obj)) is not None]
        self._tensors = [(t, t.detach().clone()) for t in unique
                         if isinstance(t, torch.Tensor) and t.numel() * t.element_size() <= SMALL_TENSOR_BYTES]
        generators = {id(g): g for loader in loaders for g in (loader.generator, getattr(loader.sampler, "generator",
                                                                                        None)) if g is not None}
        self._generators = [(g, g.get_state()) for g in generators.values()]
        self._grad = torch.is_grad_enabled()
        self._rng = _rng_states()

    def copy(self, rebound: dict[int, Any]) -> dict[str, Any]:
        """A namespace for one trial: names bound to a key of ``rebound`` (by id) point at its value; lists,
        dicts and sets are copies."""
        trial = {}
        for key, value in self.namespace.items():
            if id(value) in rebound:
                value = rebound[id(value)]
            elif type(value) in (list, dict, set):
                value = copy.copy(value)
            trial[key] = value
        return trial

    def restore(self) -> None:
        import torch

        for module in self._modules:
            module.restore()
        for obj, state in self._stateful:
            obj.load_state_dict(copy.deepcopy(state))  # a copy: loading may keep the tensors it is given
        with torch.no_grad():
            for tensor, saved in self._tensors:
                if tensor.shape == saved.shape:
                    tensor.copy_(saved)
        for generator, state in self._generators:
            generator.set_state(state)
        torch.set_grad_enabled(self._grad)
        _set_rng_states(self._rng)


class _ModuleState:
    """One model's parameters, buffers and gradients (host copies) and each submodule's train/eval flag."""

    def __init__(self, module: Any):
        self.flags = {m: m.training for m in module.modules()}
        self.tensors = [(t, t.detach().to("cpu", copy=True)) for t in [*module.parameters(), *module.buffers()]]
        self.grads = [(p, None if p.grad is None else p.grad.detach().to("cpu", copy=True))
                      for p in module.parameters()]

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for tensor, saved in self.tensors:
                tensor.copy_(saved)
            for param, grad in self.grads:
                param.grad = None if grad is None else grad.to(param.device, copy=True)
        for module, training in self.flags.items():
            module.training = training


def _state_of(obj: Any) -> Any:
    """A host copy of the state of an optimizer, LR scheduler, GradScaler (anything with ``state_dict`` and
    ``load_state_dict``), every tensor in host memory so the device's stays the trials'; None for the rest."""
    if isinstance(obj, type) or not callable(getattr(obj, "load_state_dict", None)):
        return None
    try:
        state = obj.state_dict()
    except Exception:  # noqa: BLE001 - not a torch-style stateful object after all: nothing to put back
        return None
    return map_tensors(state, lambda t: t.detach().to("cpu", copy=True))


def _rng_states() -> dict[str, Any]:
    import torch

    states: dict[str, Any] = {"torch": torch.get_rng_state(), "random": random.getstate()}
    if torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        states["numpy"] = numpy.random.get_state()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    random.setstate(states["random"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])
    if "numpy" in states:
        sys.modules["numpy"].random.set_state(states["numpy"])
