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
from ..sampling.timeline import Series

#: Intervals to see before choosing what delimits a step, unless a DataLoader decides it at once.
_DECIDE_AFTER = 64
_INDEX = {phase: i for i, phase in enumerate(PHASES)}
_OTHER = _INDEX["other"]
#: Per-step series columns: when the step started, its wall time, samples, then the phases.
SERIES_COLUMNS = ("start", "wall", "samples", *PHASES)

# An interval is a plain tuple on the hot path (a class costs more to build):
# (phase, t0, t1, e0, e1, samples, tag), where tag marks what may delimit
# steps: "step" (optimizer.step), "stop" (the loader ran dry), "iter" (a new loader iterator).
PHASE, T0, T1, E0, E1, SAMPLES, TAG = range(7)


class StepTrace:
    def __init__(self, series_capacity: int = 4096):
        self._thread = threading.get_ident()
        self._active: str | None = None
        self._cuda = False  # CUDA events in use: flips on once the user's code initialised CUDA
        #: Set by the session where a GPU exists, so CPU-only runs never ask torch.cuda anything.
        self.cuda_possible = False
        self._buffer: list[tuple] = []
        self.anchor: str | None = None
        self._open: list[tuple] | None = None  # intervals of the step being built
        self._closed: list[tuple[list[tuple], float, Any]] = []  # (intervals, end, end_event)
        self.series = Series(SERIES_COLUMNS, series_capacity)
        self.steps = 0
        self.wall_total = 0.0
        self._totals = [0.0] * len(PHASES)
        self.samples = 0
        self.samples_known = True
        self.device_timed_steps = 0
        self.last_duration = 0.0
        #: Called on the profiled thread each time a step closes (the module probe rescans there).
        self.on_close: Callable[[], None] | None = None

    @property
    def phase_totals(self) -> dict[str, float]:
        return dict(zip(PHASES, self._totals))

    # ----------------------------------------------------------------- hot path
    def begin(self, phase: str) -> tuple | None:
        """Start timing ``phase`` unless another phase is already being timed (or off-thread)."""
        if self._active is not None or threading.get_ident() != self._thread:
            return None
        self._active = phase
        return (phase, time.perf_counter(), self._event() if self._cuda or (self.cuda_possible and _cuda_ready()) else None)

    def end(self, token: tuple | None, samples: int | None = None, tag: str | None = None) -> None:
        if token is None:
            return
        phase, t0, e0 = token
        e1 = self._event() if e0 is not None else None
        t1 = time.perf_counter()
        self._active = None
        self.last_duration = t1 - t0
        self.add((phase, t0, t1, e0, e1, samples, tag))

    def cancel(self, token: tuple | None) -> None:
        """Forget a begun interval (e.g. a CPU→CPU ``.to()`` that turned out not to be a copy)."""
        if token is not None:
            self._active = None

    @property
    def idle(self) -> bool:
        return self._active is None and threading.get_ident() == self._thread

    def _event(self):
        self._cuda = True
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    # ------------------------------------------------------------ step building
    def add(self, interval: tuple) -> None:
        if self.anchor is None:
            self._buffer.append(interval)
            if interval[PHASE] == "data_wait" or len(self._buffer) >= _DECIDE_AFTER:
                self._decide()
            return
        self._feed(interval)

    def _decide(self) -> None:
        seen = {(i[PHASE], i[TAG]) for i in self._buffer}
        if any(phase == "data_wait" for phase, _ in seen):
            self.anchor = "data"
        elif ("optimizer", "step") in seen:
            self.anchor = "optimizer"
        elif any(phase == "forward" for phase, _ in seen):
            self.anchor = "forward"
        else:
            self.anchor = "none"
        buffered, self._buffer = self._buffer, []
        for interval in buffered:
            self._feed(interval)

    def _feed(self, i: tuple) -> None:
        anchor, phase, tag = self.anchor, i[PHASE], i[TAG]
        if tag == "stop":  # the loader ran dry: the step ends where that last next() began
            if self._open is not None:
                self._close(i[T0], i[E0])
            return
        opens = (phase == "data_wait" and anchor == "data") or (phase == "forward" and anchor == "forward")
        step = self._open
        if opens and step is not None and any(j[PHASE] == phase and j[TAG] != "iter" for j in step):
            self._close(i[T0], i[E0])
            step = None
        if step is None:
            if not (opens or anchor == "optimizer"):
                return  # setup work before the first step, or between epochs
            step = self._open = []
        step.append(i)
        if anchor == "optimizer" and tag == "step":
            self._close(i[T1], i[E1])

    def _close(self, end: float, end_event: Any) -> None:
        intervals, self._open = self._open, None
        if end_event is None and not self._closed:  # host-timed: account at once
            self._account(intervals, end, None)
        else:
            self._closed.append((intervals, end, end_event))
            self._resolve(block=False)
        if self.on_close is not None:
            self.on_close()

    def _resolve(self, block: bool) -> None:
        """Account queued steps in order; device-timed ones only once their events completed."""
        closed = self._closed
        while closed:
            intervals, end, end_event = closed[0]
            device = end_event is not None and all(i[E0] is not None for i in intervals)
            if device and not block and not end_event.query():
                return
            del closed[0]
            self._account(intervals, end, end_event if device else None)

    def _account(self, intervals: list[tuple], end: float, end_event: Any) -> None:
        phases = [0.0] * len(PHASES)
        data_samples = forward_samples = None
        unknown = False
        for i in intervals:
            phase = i[PHASE]
            if end_event is None:
                phases[_INDEX[phase]] += i[T1] - i[T0]
            else:
                phases[_INDEX[phase]] += i[E0].elapsed_time(i[E1]) / 1e3
            if i[TAG] == "iter":
                continue
            if phase == "data_wait":
                if i[SAMPLES] is None:
                    unknown = True
                else:
                    data_samples = (data_samples or 0) + i[SAMPLES]
            elif phase == "forward" and forward_samples is None:
                forward_samples = i[SAMPLES]
        if end_event is None:
            wall = end - intervals[0][T0]
        else:
            wall = intervals[0][E0].elapsed_time(end_event) / 1e3
            self.device_timed_steps += 1
        timed = sum(phases)
        phases[_OTHER] = max(0.0, wall - timed)
        wall = max(wall, timed)
        # Samples come from the loader's batches, else from the first top-level input.
        samples = None if unknown else data_samples if data_samples is not None else forward_samples
        if samples is None:
            self.samples_known = False
        else:
            self.samples += samples
        self.steps += 1
        self.wall_total += wall
        totals = self._totals
        for k in range(len(phases)):
            totals[k] += phases[k]
        self.series.append((intervals[0][T0], wall, samples, *phases))

    def finish(self) -> None:
        """End of run: decide if still undecided, close the open step, resolve everything."""
        self._active = None
        if self.anchor is None:
            self._decide()
        if self._open:
            last = self._open[-1]
            self._close(last[T1], last[E1])
        if self._cuda and self._closed:
            import torch

            torch.cuda.synchronize()
        self._resolve(block=True)


def _cuda_ready() -> bool:
    """True once the user's code initialised CUDA; never initialises it."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()
