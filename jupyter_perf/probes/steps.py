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
after the fact (``query()`` as steps are accounted, one synchronize at the end), never
with a synchronize on the hot path. Reading phases on the device's clock
attributes device idle time to the host phase that caused it: while the host
blocks in ``next(loader)`` with an empty queue, the device's clock runs inside
``data_wait``.

The hot path does only what must happen at that moment: two clock reads, one
tuple, and grouping intervals into steps (a few comparisons, a flag instead
of a search), so ``steps_closed``, the count the sampler reads, never lags.
Accounting a step (phase sums, samples, its series row) waits and is done in
batches at most ``ACCOUNT_EVERY_S`` apart: between a small model's MKL calls
per-step bookkeeping runs cache-cold, and a batch runs warm. The live views
(``steps``, ``samples``, ``series``) lag by that much; ``finish()`` catches up.
"""

from __future__ import annotations

import sys
from threading import get_ident
from time import perf_counter
from typing import Any, Callable

from ..report import PHASES
from ..sampling.timeline import Series

#: Intervals to see before choosing what delimits a step, unless a DataLoader decides it at once.
_DECIDE_AFTER = 64
#: Closed steps are accounted in batches at most this far apart (host clock): the live views lag by as much.
ACCOUNT_EVERY_S = 0.05
#: The phase whose interval opens a step, per anchor; optimizer-anchored steps open with any interval.
_OPENER = {"data": "data_wait", "forward": "forward"}
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
        self._thread = get_ident()
        self._active: str | None = None
        self._cuda = False  # CUDA events in use: flips on once the user's code initialised CUDA
        #: Set by the session where a GPU exists, so CPU-only runs never ask torch.cuda anything.
        self.cuda_possible = False
        self._buffer: list[tuple] = []
        self.anchor: str | None = None
        self._opener: str | None = None  # _OPENER[anchor]
        self._open: list[tuple] | None = None  # intervals of the step being built
        self._anchored = False  # the open step holds its opening interval already: the next one starts a step
        self._closed: list[tuple[list[tuple], float, Any]] = []  # (intervals, end, end_event), not yet accounted
        self._account_at = 0.0  # host time from which the next closed step triggers accounting
        self.series = Series(SERIES_COLUMNS, series_capacity)
        #: Steps closed so far, counted on the hot path: what the sampler's ``steps`` column reads.
        self.steps_closed = 0
        #: Steps accounted so far (in ``series``, the totals and ``samples``); equals ``steps_closed`` after finish().
        self.steps = 0
        self.wall_total = 0.0
        self._totals = [0.0] * len(PHASES)
        self.samples = 0
        self.samples_known = True
        self.device_timed_steps = 0
        self.last_duration = 0.0
        #: Called on the profiled thread after each batch of steps is accounted (the module probe rescans there).
        self.on_account: Callable[[], None] | None = None

    @property
    def phase_totals(self) -> dict[str, float]:
        return dict(zip(PHASES, self._totals))

    # ----------------------------------------------------------------- hot path
    def begin(self, phase: str) -> tuple | None:
        """Start timing ``phase`` unless another phase is already being timed (or off-thread)."""
        if self._active is not None or get_ident() != self._thread:
            return None
        self._active = phase
        if self._cuda or (self.cuda_possible and _cuda_ready()):
            return (phase, perf_counter(), self._event())
        return (phase, perf_counter(), None)

    def end(self, token: tuple | None, samples: int | None = None, tag: str | None = None) -> None:
        if token is None:
            return
        phase, t0, e0 = token
        e1 = self._event() if e0 is not None else None
        t1 = perf_counter()
        self._active = None
        self.last_duration = t1 - t0
        if self.anchor is None:
            self._hold((phase, t0, t1, e0, e1, samples, tag))
        else:
            self._feed((phase, t0, t1, e0, e1, samples, tag))

    def cancel(self, token: tuple | None) -> None:
        """Forget a begun interval (e.g. a CPU→CPU ``.to()`` that turned out not to be a copy)."""
        if token is not None:
            self._active = None

    @property
    def idle(self) -> bool:
        return self._active is None and get_ident() == self._thread

    def _event(self):
        self._cuda = True
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    # ------------------------------------------------------------ step building
    def _hold(self, interval: tuple) -> None:
        """Keep intervals until what delimits a step is decided."""
        self._buffer.append(interval)
        if interval[PHASE] == "data_wait" or len(self._buffer) >= _DECIDE_AFTER:
            self._decide()

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
        self._opener = _OPENER.get(self.anchor)
        buffered, self._buffer = self._buffer, []
        for interval in buffered:
            self._feed(interval)

    def _feed(self, i: tuple) -> None:
        """Group an interval into the open step; hot path, so a flag stands in for searching the step."""
        tag = i[TAG]
        if tag == "stop":  # the loader ran dry: the step ends where that last next() began
            if self._open is not None:
                self._close(i[T0], i[E0])
            return
        opens = i[PHASE] == self._opener
        if opens and self._anchored:
            self._close(i[T0], i[E0])
        step = self._open
        if step is None:
            if not (opens or self.anchor == "optimizer"):
                return  # setup work before the first step, or between epochs
            step = self._open = []
        step.append(i)
        if opens and tag != "iter":  # a new loader iterator does not make a batch
            self._anchored = True
        elif tag == "step" and self.anchor == "optimizer":
            self._close(i[T1], i[E1])

    def _close(self, end: float, end_event: Any) -> None:
        """Count the open step as closed; account the closed ones once ``ACCOUNT_EVERY_S`` has passed."""
        self._closed.append((self._open, end, end_event))
        self._open, self._anchored = None, False
        self.steps_closed += 1
        if end >= self._account_at:
            self._account_at = end + ACCOUNT_EVERY_S
            self._resolve(block=False)
            if self.on_account is not None:
                self.on_account()

    def _resolve(self, block: bool) -> None:
        """Account queued steps in order; device-timed ones only once their events completed."""
        closed = self._closed
        if not self._cuda:  # host-timed only: the common case, and thousands of steps a second
            rows = [_row(intervals, end, None) for intervals, end, _ in closed]
        else:
            rows = []
            for intervals, end, end_event in closed:
                device = end_event is not None and all(i[E0] is not None for i in intervals)
                if device and not block and not end_event.query():
                    break
                rows.append(_row(intervals, end, end_event if device else None))
                self.device_timed_steps += device
        del closed[: len(rows)]
        if rows:
            self._add_rows(rows)

    def _add_rows(self, rows: list[tuple]) -> None:
        """Series rows, then the run's totals a column at a time (a batch sums faster than its steps one by one)."""
        append = self.series.append
        for row in rows:
            append(row)
        _start, wall, samples, *phases = zip(*rows)
        self._totals = [total + sum(column) for total, column in zip(self._totals, phases)]
        self.wall_total += sum(wall)
        if None in samples:
            self.samples_known = False
        # samples and steps last and together: the dashboard divides one by the other from its thread
        self.samples += sum(filter(None, samples))  # unknown (None) and empty batches add nothing
        self.steps += len(rows)

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


def _row(intervals: list[tuple], end: float, end_event: Any) -> tuple:
    """One step's series row: start, wall time, samples, then the phases (``other`` is the rest of the wall time).

    With ``end_event``, phases and wall time are read on the device's clock.
    """
    phases = [0.0] * len(PHASES)
    data_samples = forward_samples = None
    unknown = False
    for phase, t0, t1, e0, e1, samples, tag in intervals:
        phases[_INDEX[phase]] += t1 - t0 if end_event is None else e0.elapsed_time(e1) / 1e3
        if tag == "iter":
            continue
        if phase == "data_wait":
            if samples is None:
                unknown = True
            else:
                data_samples = (data_samples or 0) + samples
        elif phase == "forward" and forward_samples is None:
            forward_samples = samples
    first = intervals[0]
    wall = end - first[T0] if end_event is None else first[E0].elapsed_time(end_event) / 1e3
    timed = sum(phases)
    phases[_OTHER] = max(0.0, wall - timed)
    # Samples come from the loader's batches, else from the first top-level input.
    samples = None if unknown else data_samples if data_samples is not None else forward_samples
    return (first[T0], max(wall, timed), samples, *phases)
