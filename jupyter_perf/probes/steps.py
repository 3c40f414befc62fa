"""StepTrace: turns the probes' phase intervals into steps with a phase breakdown.

Probes call :meth:`StepTrace.begin` / :meth:`StepTrace.end` around the work they
watch. Only the outermost phase is timed (an input moved to the GPU inside
``forward`` is forward time), so phases never overlap and, with ``other`` for
the rest, sum exactly to a step's wall time.

What delimits a step is decided from the run itself, in order of reliability:
each DataLoader batch (``data``), else each ``optimizer.step()`` (``optimizer``),
else each top-level model call (``forward``). The decision waits for a few
intervals (a warm-up forward before the loop must not win) and is final.

On a GPU, each interval also records a pair of CUDA events. They are resolved
after the fact (``query()`` as steps close, one synchronize at the end), never
with a synchronize on the hot path. Reading phases on the device's clock
attributes device idle time to the host phase that caused it: while the host
blocks in ``next(loader)`` with an empty queue, the device's clock runs inside
``data_wait``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from ..report import PHASES
from ..sampling.timeline import Timeline

#: Intervals to see before choosing what delimits a step, unless a DataLoader decides it at once.
_DECIDE_AFTER = 64
_ANCHORS = ("data", "optimizer", "forward")


class Interval:
    """One timed phase; ``tag`` marks what may delimit steps (``step``, ``stop``, ``iter``)."""

    __slots__ = ("phase", "t0", "t1", "e0", "e1", "samples", "tag")

    def __init__(self, phase, t0, t1, e0=None, e1=None, samples=None, tag=None):
        self.phase, self.t0, self.t1, self.e0, self.e1 = phase, t0, t1, e0, e1
        self.samples, self.tag = samples, tag


class _Step:
    __slots__ = ("intervals", "start", "end", "start_event", "end_event")

    def __init__(self, first: Interval):
        self.intervals: list[Interval] = []
        self.start, self.start_event = first.t0, first.e0
        self.end = self.end_event = None

    def has(self, phase: str) -> bool:
        return any(i.phase == phase and i.tag != "iter" for i in self.intervals)


class StepTrace:
    def __init__(self, series_capacity: int = 4096):
        self._thread = threading.get_ident()
        self._active: str | None = None
        self._cuda = False  # CUDA events in use: flips on once the user's code initialised CUDA
        self._buffer: list[Interval] = []
        self.anchor: str | None = None
        self._open: _Step | None = None
        self._closed: list[_Step] = []
        self.series = Timeline(capacity=series_capacity, tail=256)
        self.steps = 0
        self.wall_total = 0.0
        self.phase_totals = dict.fromkeys(PHASES, 0.0)
        self.samples = 0
        self.samples_known = True
        self.device_timed_steps = 0
        self.intervals_seen = 0
        self.last_duration = 0.0
        #: Called on the profiled thread each time a step closes (the module probe rescans there).
        self.on_close: Callable[[], None] | None = None

    # ----------------------------------------------------------------- hot path
    def begin(self, phase: str) -> tuple | None:
        """Start timing ``phase`` unless another phase is already being timed (or off-thread)."""
        if self._active is not None or threading.get_ident() != self._thread:
            return None
        self._active = phase
        return (phase, time.perf_counter(), self._event())

    def end(self, token: tuple | None, samples: int | None = None, tag: str | None = None) -> None:
        if token is None:
            return
        phase, t0, e0 = token
        e1 = self._event() if e0 is not None else None
        t1 = time.perf_counter()
        self._active = None
        self.last_duration = t1 - t0
        self.add(Interval(phase, t0, t1, e0, e1, samples, tag))

    def cancel(self, token: tuple | None) -> None:
        """Forget a begun interval (e.g. a CPU→CPU ``.to()`` that turned out not to be a copy)."""
        if token is not None:
            self._active = None

    @property
    def idle(self) -> bool:
        return self._active is None and threading.get_ident() == self._thread

    def _event(self):
        if not self._cuda:
            torch = sys.modules.get("torch")
            if torch is None or not torch.cuda.is_initialized():
                return None
            self._cuda = True
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    # ------------------------------------------------------------ step building
    def add(self, interval: Interval) -> None:
        self.intervals_seen += 1
        if self.anchor is None:
            self._buffer.append(interval)
            if interval.phase == "data_wait" or len(self._buffer) >= _DECIDE_AFTER:
                self._decide()
            return
        self._feed(interval)

    def _decide(self) -> None:
        phases = {(i.phase, i.tag) for i in self._buffer}
        if any(p == "data_wait" for p, _ in phases):
            self.anchor = "data"
        elif ("optimizer", "step") in phases:
            self.anchor = "optimizer"
        elif any(p == "forward" for p, _ in phases):
            self.anchor = "forward"
        else:
            self.anchor = "none"
        buffered, self._buffer = self._buffer, []
        for interval in buffered:
            self._feed(interval)

    def _feed(self, i: Interval) -> None:
        anchor = self.anchor
        if anchor == "none":
            return
        opens = (anchor == "data" and i.phase == "data_wait" and i.tag != "stop") or (
            anchor == "forward" and i.phase == "forward"
        )
        if i.tag == "stop":  # the loader ran dry: the step ends where that last next() began
            if self._open is not None:
                self._close(i.t0, i.e0)
            return
        if opens and self._open is not None and self._open.has(i.phase):
            self._close(i.t0, i.e0)
        if self._open is None:
            if not (opens or anchor == "optimizer"):
                return  # setup work before the first step, or between epochs
            self._open = _Step(i)
        self._open.intervals.append(i)
        if anchor == "optimizer" and i.phase == "optimizer" and i.tag == "step":
            self._close(i.t1, i.e1)

    def _close(self, end: float, end_event: Any) -> None:
        step, self._open = self._open, None
        step.end, step.end_event = end, end_event
        self._closed.append(step)
        self._resolve(block=False)
        if self.on_close is not None:
            self.on_close()

    def _resolve(self, block: bool) -> None:
        """Account closed steps in order; device-timed ones only once their events completed."""
        while self._closed:
            step = self._closed[0]
            device = step.start_event is not None and step.end_event is not None and all(
                i.e0 is not None for i in step.intervals
            )
            if device and not block and not step.end_event.query():
                return
            self._closed.pop(0)
            self._account(step, device)

    def _account(self, step: _Step, device: bool) -> None:
        if device:
            ref = step.start_event
            wall = ref.elapsed_time(step.end_event) / 1e3
            durations = [(i.phase, i.e0.elapsed_time(i.e1) / 1e3) for i in step.intervals]
            self.device_timed_steps += 1
        else:
            wall = step.end - step.start
            durations = [(i.phase, i.t1 - i.t0) for i in step.intervals]
        phases = dict.fromkeys(PHASES, 0.0)
        for phase, seconds in durations:
            phases[phase] += seconds
        phases["other"] = max(0.0, wall - sum(phases.values()))
        wall = max(wall, sum(phases.values()))
        samples = _step_samples(step)
        if samples is None:
            self.samples_known = False
        else:
            self.samples += samples
        self.steps += 1
        self.wall_total += wall
        for phase, seconds in phases.items():
            self.phase_totals[phase] += seconds
        self.series.append({"start": step.start, "wall": wall, "samples": samples, **phases})

    def finish(self) -> None:
        """End of run: decide if still undecided, close the open step, resolve everything."""
        self._active = None
        if self.anchor is None:
            self._decide()
        if self._open is not None:
            last = self._open.intervals[-1]
            self._close(last.t1, last.e1)
        if self._cuda and any(s.end_event is not None for s in self._closed):
            import torch

            torch.cuda.synchronize()
        self._resolve(block=True)


def _step_samples(step: _Step) -> int | None:
    """Samples in a step: its batch from the loader, else the first dimension of its top-level inputs."""
    for phase in ("data_wait", "forward"):
        counts = [i.samples for i in step.intervals if i.phase == phase and i.tag != "iter"]
        if counts:
            return None if None in counts else sum(counts) if phase == "data_wait" else counts[0]
    return None
