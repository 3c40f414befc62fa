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

Even so, timing a model call costs the module probe ≈ 6 µs (two clock reads,
three torch mode checks, an interval, a step, a row): ×1.9 on a 6.5 µs
``nn.Linear(4, 4)`` call, a few percent on a 160 µs small-batch MLP. So a pure
inference loop of short steps is *counted*, not timed call by call: once
``_COUNT_AFTER`` steps in a row were each a single top-level forward (anchor
``forward``, host clock) with a median wall time under ``_COUNT_BELOW_S``, the
model's ``__call__`` wrapper (modules.py) handles most calls itself: a thread
check, a re-entrancy guard (``active``, so a watched model called inside it is
not a step), two torch mode checks, ``steps_closed`` + 1 and the first input's
leading dimension into the samples. One call in about ``_TIME_EVERY_S`` worth of steps, and at least
one in ``_GAP_MAX`` (at random, so a loop's own period cannot alias with it), is
handed to :meth:`turn` and timed: its forward, and its step's wall up to the
next call, which reads the clock once. Timed steps are thus an unbiased sample
of all steps. The counted calls form a *block* whose wall time is measured
exactly (it runs from one clock read at a call's start to another); at such a
clock read once ``ACCOUNT_EVERY_S`` has passed (so the live views lag by that
and at most ``_GAP_MAX`` steps), and when counting stops, the block is
accounted as that many steps of equal mean (``Series.append_block``), its
forward time being the timed steps' forward share of the block's wall. So
steps, samples and wall time stay exact; only the forward / ``other`` split is
an estimate.

Counting stops, at once, when anything else happens: another phase or another
model is timed (at that interval's start), CUDA comes into use, a first input
without a leading dimension, or ``finish()``. Normal timing then resumes and may
turn into counting again by the same rule.
"""

from __future__ import annotations

import statistics
import sys
from bisect import bisect_right
from random import random
from threading import get_ident
from time import perf_counter
from typing import Any, Callable

from ..report import PHASES
from ..sampling.timeline import Series

#: Intervals to see before choosing what delimits a step, unless a DataLoader decides it at once.
_DECIDE_AFTER = 64
#: Closed steps are accounted in batches at most this far apart (host clock): the live views lag by as much.
ACCOUNT_EVERY_S = 0.05
#: Counting mode (module docstring) needs this many single-forward steps in a row: enough for a median
#: that a few odd calls cannot sway, few enough that the fully timed start (these steps at ≈ 6 µs more
#: each, ≈ 1.5 ms) stays a small part of a short loop's cost: 0.25% of the 4000-step MLP benchmark.
_COUNT_AFTER = 256
#: ... with a median wall time below this: timing every call costs ≈ 6 µs, under 1% of a step this long.
_COUNT_BELOW_S = 1e-3
#: While counting, one step is timed about this often (≈ 50 a second): enough to estimate the phase
#: split, and the periodic accounting waits for such a clock read ...
_TIME_EVERY_S = 0.02
#: ... but at least one call in this many, so steps that slow down while counted delay the live views by
#: at most this many steps (a timed call and the next cost ≈ 10 µs more, cache-cold: < 0.1 µs a call).
_GAP_MAX = 128
#: While single-forward steps fill the decision's window, and for ``_WATCH_FOR_S`` after the first step
#: and after counting stops, forward-anchored steps are accounted this often rather than every
#: ``ACCOUNT_EVERY_S``, so counting begins soon after ``_COUNT_AFTER`` steps, not up to 50 ms later.
_WATCH_EVERY_S = 0.005
_WATCH_FOR_S = 1.0
_INDEX = {phase: i for i, phase in enumerate(PHASES)}
_OTHER = _INDEX["other"]
_FORWARD = _INDEX["forward"]
#: Per-step series columns: when the step started, its wall time, samples, the phases, then the tokens its
#: model took (None where its inputs are not token ids).
SERIES_COLUMNS = ("start", "wall", "samples", *PHASES, "tokens")

# An interval is a plain tuple on the hot path (a class costs more to build):
# (phase, t0, t1, e0, e1, samples, tag, tokens), where tag marks what may delimit steps: "step" (the anchor
# optimizer's step; another optimizer's is "other step"), "stop" (the loader ran dry), "iter" (a new loader
# iterator); for a forward, the model's key (an int), or "loss" for a module without parameters (a loss, an
# activation), which is forward time but never a model whose calls make steps or count samples. ``tokens`` is
# None, or for a model call on token ids ``(tokens, real_tokens)``: positions, and those not padding (an int,
# or for a CUDA attention mask a device tensor, read once the step's events show the device got that far).
PHASE, T0, T1, E0, E1, SAMPLES, TAG, TOKENS = range(8)


class StepTrace:
    def __init__(self, series_capacity: int = 4096):
        # First, so they share a cache line: what a counted call (modules.py) reads and writes, between
        # model math that leaves the caches cold.
        #: The phase being timed (None: none); only the outermost is, so this is the re-entrancy guard.
        self.active: str | None = None
        #: Counting mode: the counted model's key while counting, else None.
        self.counting: Any = None
        #: Steps closed so far, counted on the hot path: what the sampler's ``steps`` column reads.
        self.steps_closed = 0
        #: The ``steps_closed`` a counted call would make at which the wrapper hands it to :meth:`turn`.
        self.count_at = 0
        #: Samples of the block's counted calls, and of the last one.
        self.block_samples = self.last_samples = 0
        self._thread = get_ident()
        #: Carved intervals waiting for the interval they were carved from to end (``carve``).
        self._deferred: list[tuple] = []
        self._cuda = False  # CUDA events in use: flips on once the user's code initialised CUDA
        #: Set by the session where a GPU exists, so CPU-only runs never ask torch.cuda anything.
        self.cuda_possible = False
        #: Intervals seen while the anchor is undecided, to build the steps again by the final anchor.
        self._buffer: list[tuple] = []
        #: What delimits a step, once decided: ``optimizer``, ``forward``, ``data`` or ``none`` (module docstring).
        self.anchor: str | None = None
        #: The anchor steps are built by meanwhile: the final one, or the provisional one while undecided.
        self._mode: str | None = None
        #: The model whose calls open forward-anchored steps and give every step its samples (a model key).
        self.primary: Any = None
        #: When the anchor was decided (host clock), and the ends of the steps closed before then, by the
        #: final anchor: what the sampler's live count read until then is corrected from these after the run.
        self.decided_at: float | None = None
        self.early_ends: list[float] = []
        self._series_capacity = series_capacity
        self._reset_steps()
        self.last_duration = 0.0
        #: Called on the profiled thread after each batch of steps is accounted (the module probe rescans there).
        self.on_account: Callable[[], None] | None = None
        # Counting mode (the hot fields are first, above).
        #: Set when counting may begin: the module probe then calls :meth:`count` after the forward that ended.
        self.may_count = False
        #: Calls counted by the wrapper rather than timed by the module probe, per model key, and their
        #: forward time as estimated: the module probe adds both to its own.
        self.counted_calls: dict[Any, int] = {}
        self.counted_forward_s = 0.0
        self._block_t0 = 0.0  # the block's first step began here
        self._block_closed = 0  # steps_closed then
        self._entered_closed = 0  # steps_closed when counting began: the calls counted since are its increments
        self._timed: tuple | None = None  # the timed step still open: its forward interval
        self._timed_at = 0.0  # start of the call being timed
        self._timed_wall = self._timed_forward = 0.0  # summed over the block's timed steps
        self._share = 0.0  # forward share of the wall, for a block without a timed step
        self._gap = 1  # mean calls from one timed step's end to the next timed call

    @property
    def phase_totals(self) -> dict[str, float]:
        return dict(zip(PHASES, self._totals))

    # ----------------------------------------------------------------- hot path
    def begin(self, phase: str) -> tuple | None:
        """Start timing ``phase`` unless another phase is already being timed (or off-thread)."""
        if self.active is not None or get_ident() != self._thread:
            return None
        self.active = phase
        if self._cuda or (self.cuda_possible and cuda_ready()):
            return (phase, perf_counter(), self._event())
        return (phase, perf_counter(), None)

    def end(self, token: tuple | None, samples: int | None = None, tag: Any = None,
            tokens: tuple | None = None) -> None:
        if token is None:
            return
        phase, t0, e0 = token
        e1 = self._event() if e0 is not None else None
        t1 = perf_counter()
        self.active = None
        self.last_duration = t1 - t0
        if self.counting is not None:  # anything but the counted model's own call: counting stops where it began
            self._leave(t0, resume=not (phase == "forward" and tag == self.primary) and tag != "stop")
        interval = (phase, t0, t1, e0, e1, samples, tag, tokens)
        if self._deferred:  # time was carved out of this interval while it ran
            self._book_with_carved(interval)
        elif self.anchor is None:
            self._hold(interval)
        else:
            self._feed(interval)

    def carve(self, from_phase: str, seconds: float, start_event: Any = None, end_event: Any = None) -> None:
        """Move ``seconds`` of the last ``from_phase`` interval into ``communication``: the part of it that
        was spent blocked on a collective (a DDP backward waiting for its last gradient buckets). With
        CUDA events, the carved time is read on the device's clock between them. Call it after that
        interval ended, before the next one begins (probes/buckets.py does, from the backward); called
        while an interval is still open (a collective inside an optimizer step), it is booked once that
        interval ends, so it lands in the same step (probes/collectives.py)."""
        if seconds <= 0 or get_ident() != self._thread:
            return
        t = perf_counter()
        # (the seconds ride in the tag: t - (t - seconds) would lose them to rounding at perf_counter's magnitude)
        interval = ("communication", t - seconds, t, start_event, end_event, None, ("carve", from_phase, seconds), None)
        if self.active is not None:
            self._deferred.append(interval)
        elif self.anchor is None:
            self._hold(interval)
        else:
            self._feed(interval)

    def _book_with_carved(self, interval: tuple) -> None:
        """An interval and the time carved out of it while it ran, in the step it belongs to: the carved time
        goes before an interval that ends a step (the anchor optimizer's step), after any other (a model call
        may open a step)."""
        carved, self._deferred = self._deferred, []
        for i in [*carved, interval] if interval[TAG] == "step" else [interval, *carved]:
            if self.anchor is None:
                self._hold(i)
            else:
                self._feed(i)

    def cancel(self, token: tuple | None) -> None:
        """Forget a begun interval (e.g. a CPU→CPU ``.to()`` that turned out not to be a copy)."""
        if token is not None:
            self.active = None

    @property
    def idle(self) -> bool:
        return self.active is None and get_ident() == self._thread

    def _event(self):
        self._cuda = True
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    # ------------------------------------------------------------ step building
    def _reset_steps(self) -> None:
        """No step built yet: the state a (re)build of the steps starts from."""
        self._open: list[tuple] | None = None  # intervals of the step being built
        self._anchored = False  # the open step holds its opening interval already: the next one starts a step
        self._last_end: tuple | None = None  # (host time, event) where the last step ended: the next one starts there
        self._closed: list[tuple[list[tuple], float, Any]] = []  # (intervals, end, end_event), not yet accounted
        self._account_at = 0.0  # host time from which the next closed step triggers accounting
        self._data_only = True  # every step closed so far held nothing but data waits
        self.series = Series(SERIES_COLUMNS, self._series_capacity)
        #: Steps accounted so far (in ``series``, the totals and ``samples``); equals ``steps_closed`` after finish().
        self.steps = 0
        self.steps_closed = 0
        self.wall_total = 0.0
        self._totals = [0.0] * len(PHASES)
        self.samples = 0
        self.samples_known = True
        #: Token positions the steps' model took, and those not padding (see ``real_tokens``).
        self.tokens = 0
        self._real_tokens = 0
        self._real_tokens_device: Any = None  # CUDA attention masks' sums, added on the device, read at the end
        self.device_timed_steps = 0
        self.early_ends = []
        self._window: list[tuple] = []  # rows of the latest single-forward steps, for counting mode's decision
        self._watch_until: float | None = None  # until then, steps are accounted every _WATCH_EVERY_S

    def _hold(self, interval: tuple) -> None:
        """Undecided: keep the interval, and build steps by the best anchor seen so far, so they count live."""
        buffer = self._buffer
        buffer.append(interval)
        phase, tag = interval[PHASE], interval[TAG]
        if phase == "optimizer" and tag == "step" or len(buffer) >= _DECIDE_AFTER:
            self._decide(pending=interval)
            return
        mode, primary = self._provisional(phase, tag)
        if (mode, primary) != (self._mode, self.primary):
            self._build(mode, primary)
        elif mode is not None:
            self._feed(interval)

    def _provisional(self, phase: str, tag: Any) -> tuple[str | None, Any]:
        """The anchor to count by until decided: a model's calls once one ran, else the loader's batches."""
        if self._mode == "forward":
            return self._mode, self.primary
        if phase == "forward" and _is_model(tag):
            return "forward", tag
        if self._mode is None and phase == "data_wait" and tag is None:
            return "data", None
        return self._mode, self.primary

    def _decide(self, pending: tuple | None = None) -> None:
        """The final anchor, from the intervals seen: an optimizer step, else a model's calls, else batches.

        Work on the model delimits steps, not the data feeding it: a loop that fetches the next batch
        before using the last (nanoGPT's ``get_batch``, accelerate's prefetching loader) fetches N+1
        batches for N steps. Among several models, the one called fewest times is the step's (a GAN's
        generator, not its twice-called discriminator; an encoder, not its decoder called per token).
        ``pending`` is the interval that decided it, not yet grouped into a step.
        """
        buffer = self._buffer
        calls: dict[Any, int] = {}
        for i in buffer:
            if i[PHASE] == "forward" and _is_model(i[TAG]):
                calls[i[TAG]] = calls.get(i[TAG], 0) + 1
        primary = min(calls, key=calls.__getitem__) if calls else None  # ties: the first called
        if any(i[PHASE] == "optimizer" and i[TAG] == "step" for i in buffer):
            anchor = "optimizer"
        elif calls:
            anchor = "forward"
        elif any(i[PHASE] == "data_wait" and i[TAG] is None for i in buffer):
            anchor = "data"
        else:
            anchor = "none"
        if (anchor, primary) != (self._mode, self.primary):
            self._build(anchor, primary)
        elif pending is not None:
            self._feed(pending)
        self.anchor = anchor
        self.decided_at = perf_counter()
        self._buffer = []

    def _build(self, mode: str | None, primary: Any) -> None:
        """Build the steps again from every interval seen, by ``mode`` (the live count may step back or on)."""
        self._mode, self.primary = mode, primary
        self._reset_steps()
        if mode is not None:
            for interval in self._buffer:
                self._feed(interval)

    def _feed(self, i: tuple) -> None:
        """Group an interval into the open step; hot path, so a flag stands in for searching the step."""
        tag = i[TAG]
        mode = self._mode
        if mode == "none":
            return
        if mode == "optimizer":  # a step ends with the optimizer's step; the next begins where it ended
            if tag == "stop":
                return  # the loader ran dry: the step goes on into the next epoch's first batch
            step = self._open
            if step is None:  # it begins where the last step ended, so code between steps is in one
                t, event = self._last_end or (i[T0], i[E0])
                step = self._open = [("other", t, t, event, event, None, "start", None)]
            step.append(i)
            if tag == "step":
                self._close(i[T1], i[E1])
            return
        if tag == "stop":  # the loader ran dry: the step ends where that last next() began
            if self._open is not None:
                self._close(i[T0], i[E0])
            return
        opens = (i[PHASE] == "forward" and tag == self.primary) if mode == "forward" else i[PHASE] == "data_wait"
        if opens and self._anchored:
            self._close(i[T0], i[E0])
        step = self._open
        if step is None:
            if not opens:
                return  # setup work before the first step, or between epochs
            step = self._open = []
        step.append(i)
        if opens and tag != "iter":  # a new loader iterator does not make a batch
            self._anchored = True

    def _close(self, end: float, end_event: Any) -> None:
        """Count the open step as closed; account the closed ones once ``ACCOUNT_EVERY_S`` has passed."""
        step = self._open
        assert step is not None  # every caller has a step open
        self._closed.append((step, end, end_event))
        if self._data_only and self._mode == "data" and any(i[PHASE] != "data_wait" for i in step):
            self._data_only = False
        self._open, self._anchored = None, False
        self._last_end = (end, end_event)
        self.steps_closed += 1
        if self.anchor is None:
            self.early_ends.append(end)
        if end >= self._account_at:
            self._account_at = end + ACCOUNT_EVERY_S
            self._resolve(block=False)
            if self.on_account is not None:
                self.on_account()

    def _resolve(self, block: bool) -> None:
        """Account queued steps in order; device-timed ones only once their events completed."""
        closed = self._closed
        primary = self.primary
        if not self._cuda:  # host-timed only: the common case, and thousands of steps a second
            rows = [_row(intervals, end, None, primary) for intervals, end, _ in closed]
            if self._mode == "forward":
                self._watch(closed, rows)
        else:
            rows = []
            for intervals, end, end_event in closed:
                device = end_event is not None and all(i[E0] is not None for i in intervals)
                if device and not block and not end_event.query():
                    break
                rows.append(_row(intervals, end, end_event if device else None, primary))
                self.device_timed_steps += device
        if rows and any(row[-1] is not None for row in rows):
            for intervals, _end, _event in closed[: len(rows)]:
                self._add_real_tokens(intervals, primary)
        del closed[: len(rows)]
        if rows:
            self._add_rows(rows)

    def _add_real_tokens(self, intervals: list[tuple], primary: Any) -> None:
        """The step's non-padding tokens: ints added at once, CUDA sums on the device (no sync on the way)."""
        for i in intervals:
            if i[TOKENS] is not None and i[TAG] == primary:
                real = i[TOKENS][1]
                if isinstance(real, int):
                    self._real_tokens += real
                elif self._real_tokens_device is None:
                    self._real_tokens_device = real.clone()
                else:
                    self._real_tokens_device += real

    @property
    def real_tokens(self) -> int:
        """Non-padding tokens so far; reading it waits for the device where masks live there (after the run)."""
        device = self._real_tokens_device
        return self._real_tokens + (int(device.item()) if device is not None else 0)

    def _add_rows(self, rows: list[tuple]) -> None:
        """Series rows, then the run's totals a column at a time (a batch sums faster than its steps one by one)."""
        append = self.series.append
        for row in rows:
            append(row)
        _start, wall, samples, *phases, tokens = zip(*rows)
        self._totals = [total + sum(column) for total, column in zip(self._totals, phases)]
        self.wall_total += sum(wall)
        if None in samples:
            self.samples_known = False
        self.tokens += sum(filter(None, tokens))
        # samples and steps last and together: the dashboard divides one by the other from its thread
        self.samples += sum(filter(None, samples))  # unknown (None) and empty batches add nothing
        self.steps += len(rows)

    def finish(self) -> None:
        """End of run: stop counting, decide if still undecided, close the last step if it is one, resolve all.

        The work after an optimizer's last step (a ``zero_grad``, a ``loss.item()``, an evaluation) is not
        a step; nor is a last batch fetched ahead that no step used, where the steps did more than load.
        """
        self.active = None
        if self.counting is not None:
            self._leave(perf_counter(), resume=False)
        if self.anchor is None:
            self._decide()
        step = self._open
        if step and self._mode != "optimizer" and (self._data_only or any(i[PHASE] != "data_wait" for i in step)):
            last = step[-1]
            self._close(last[T1], last[E1])
        self._open = None
        if self._cuda and self._closed:
            import torch

            torch.cuda.synchronize()
        self._resolve(block=True)
        self.may_count = False  # the run is over

    def steps_at(self, t: float) -> int | None:
        """Steps closed by host time ``t``, for times before the anchor was decided (None after: the live
        count was right from then on)."""
        if self.decided_at is None or t >= self.decided_at:
            return None
        return bisect_right(self.early_ends, t)

    # ------------------------------------------------------------ counting mode
    def _watch(self, closed: list[tuple], rows: list[tuple]) -> None:
        """Forward-anchored steps being accounted: may counting begin? (module docstring)"""
        if not rows:
            return
        window = self._window
        for (intervals, _end, _event), row in zip(closed, rows):
            if len(intervals) == 1 and row[2] is not None:  # a lone forward, its samples known
                window.append(row)
            else:
                window.clear()
        if len(window) >= _COUNT_AFTER:
            del window[:-_COUNT_AFTER]
            self.may_count = self.counting is None and statistics.median(r[1] for r in window) < _COUNT_BELOW_S
            return
        last = rows[-1]
        now = last[0] + last[1]
        if self._watch_until is None:
            self._watch_until = now + _WATCH_FOR_S
        if window or now < self._watch_until:
            self._account_at = min(self._account_at, now + _WATCH_EVERY_S)

    def count(self, key: Any) -> None:
        """Count the calls of model ``key`` from here: the forward that just ended opened the open step, which
        becomes the block's first and its first timed step (its wall ends at the next call)."""
        self.may_count = False
        step = self._open
        if self.counting is not None or step is None or len(step) != 1 or self._cuda:
            return
        first = step[0]
        if first[PHASE] != "forward" or first[SAMPLES] is None or first[TOKENS] is not None:
            return  # (a counted call reads no token counts: a model on token ids is always timed)
        self._open, self._anchored = None, False
        self.counting = key
        self._block_t0, self._block_closed = first[T0], self.steps_closed
        self._entered_closed = self.steps_closed
        self.block_samples = self.last_samples = first[SAMPLES]
        self._timed, self.count_at = first, self.steps_closed + 1
        self._timed_wall = self._timed_forward = 0.0
        window = self._window
        wall = sum(r[1] for r in window)
        self._share = sum(r[3 + _FORWARD] for r in window) / wall if wall > 0 else 0.0
        self._set_gap(statistics.median(r[1] for r in window))
        # The module probe timed this call already; the block's estimate will cover its forward again.
        self.counted_forward_s -= first[T1] - first[T0]

    def turn(self, samples: int | None) -> bool | None:
        """A call the counting wrapper hands over: at ``count_at``, or without a leading dimension.

        Returns True for a call to time (the wrapper then runs it and calls :meth:`turned`), False for a
        call that only closes the timed step before it (run it, then :meth:`turned`), None where counting
        stopped at this call's start: the wrapper times it as any other.
        """
        t = perf_counter()
        timed = self._timed
        if samples is None or (timed is None and self.cuda_possible and cuda_ready()):
            self._leave(t, resume=False)
            return None
        n = self.steps_closed = self.steps_closed + 1
        if timed is None:  # this call opens a timed step
            self._timed_at, self.count_at = t, n + 1
        else:  # this call closes the timed step: its wall is known
            self._timed = None
            self._timed_wall += t - timed[T0]
            self._timed_forward += timed[T1] - timed[T0]
            if t >= self._account_at:
                self._account_at = t + ACCOUNT_EVERY_S
                self._account_block(t, n - self._block_closed, self.block_samples)
                if self.on_account is not None:
                    self.on_account()
            self.count_at = n + 1 + int(random() * (2 * self._gap - 1))  # uniform, its mean ``_gap``
        self.block_samples += samples
        self.last_samples = samples
        self.active = "forward"
        return timed is None

    def turned(self, timed: bool) -> None:
        """The call :meth:`turn` let through has returned (or raised)."""
        if timed:
            self._timed = ("forward", self._timed_at, perf_counter(), None, None, self.last_samples, self.counting,
                           None)
        self.active = None

    def _set_gap(self, step_s: float) -> None:
        """Calls from a timed step's end to the next timed call, on average, for steps of ``step_s``."""
        self._gap = min(_GAP_MAX, max(1, round(_TIME_EVERY_S / step_s) - 1)) if step_s > 0 else 1

    def _account_block(self, end: float, steps: int, samples: int) -> None:
        """Account the block's first ``steps`` steps (start to ``end``) as equal rows; the next block starts there."""
        if self._closed:
            self._resolve(block=False)  # steps closed before counting began come first
        if steps > 0:
            wall = end - self._block_t0
            self._set_gap(wall / steps)
            if self._timed_wall > 0:
                self._share = min(1.0, self._timed_forward / self._timed_wall)
            forward = wall * self._share
            phases = [0.0] * len(PHASES)
            phases[_FORWARD], phases[_OTHER] = forward / steps, (wall - forward) / steps
            mean = wall / steps
            start = self._block_t0 + mean * (steps - 1) / 2  # the steps' mean start
            self.series.append_block((start, mean, samples / steps, *phases, None), steps)
            self._totals[_FORWARD] += forward
            self._totals[_OTHER] += wall - forward
            self.wall_total += wall
            self.counted_forward_s += forward
            self.samples += samples  # samples and steps last and together, as in _add_rows
            self.steps += steps
        self._block_t0, self._block_closed = end, self.steps_closed
        self.block_samples = 0
        self._timed_wall = self._timed_forward = 0.0

    def _leave(self, t: float, resume: bool) -> None:
        """Stop counting at ``t``: account the block, and hand the step still open to normal step building.

        That step is the last counted call's. If it was timed it goes on as it is. Otherwise its start is
        unknown: with ``resume`` (something other than a step's opener begins at ``t``) it goes on from ``t``,
        its forward call booked in the block; without, it ends at ``t`` with the block.
        """
        key, closed = self.counting, self.steps_closed - self._block_closed
        timed, self._timed = self._timed, None
        self.counted_calls[key] = self.counted_calls.get(key, 0) + self.steps_closed - self._entered_closed
        if timed is not None:
            self._account_block(timed[T0], closed, self.block_samples - timed[SAMPLES])
            self.counted_forward_s += timed[T1] - timed[T0]
        elif resume:
            start = t if closed else self._block_t0
            self._account_block(t, closed, self.block_samples - self.last_samples)
            timed = ("forward", start, start, None, None, self.last_samples, key, None)
        else:
            self.steps_closed += 1
            self._account_block(t, closed + 1, self.block_samples)
        if timed is not None:
            self._open, self._anchored = [timed], True
        self.counting = None
        self._window.clear()
        self._account_at = t + _WATCH_EVERY_S
        self._watch_until = t + _WATCH_FOR_S


def cuda_ready() -> bool:
    """True once the user's code initialised CUDA; never initialises it."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()


def _is_model(tag: Any) -> bool:
    """A forward interval's tag names a model (a key) rather than a loss or other parameterless module."""
    return tag is not None and tag != "loss"


def _row(intervals: list[tuple], end: float, end_event: Any, primary: Any) -> tuple:
    """One step's series row: start, wall time, samples, then the phases (``other`` is the rest of the wall time).

    With ``end_event``, phases and wall time are read on the device's clock. Samples are what the step's
    model took: the leading dimension of the primary model's inputs, summed over its calls (micro-batches
    accumulated into one optimizer step add up); else the loader's (or data function's) batches; else the
    first input of another model.
    """
    phases = [0.0] * len(PHASES)
    data_samples = model_samples = other_samples = tokens = None
    data_unknown = model_unknown = False
    for phase, t0, t1, e0, e1, samples, tag, step_tokens in intervals:
        host = end_event is None or e0 is None
        if type(tag) is tuple:  # time carved out of the phase it blocked (StepTrace.carve)
            spent = tag[2] if host else e0.elapsed_time(e1) / 1e3
            phases[_INDEX[phase]] += spent
            phases[_INDEX[tag[1]]] -= spent
            continue
        spent = t1 - t0 if host else e0.elapsed_time(e1) / 1e3
        phases[_INDEX[phase]] += spent
        if phase == "data_wait":
            if tag == "iter":
                continue
            if samples is None:
                data_unknown = True
            else:
                data_samples = (data_samples or 0) + samples
        elif phase == "forward":
            if tag == primary:
                if step_tokens is not None:
                    tokens = (tokens or 0) + step_tokens[0]
                if samples is None:
                    model_unknown = True
                else:
                    model_samples = (model_samples or 0) + samples
            elif other_samples is None and _is_model(tag):
                other_samples = samples
    first = intervals[0]
    start = first[T0]
    wall = end - start if end_event is None else first[E0].elapsed_time(end_event) / 1e3
    timed = sum(phases)
    phases[_OTHER] = max(0.0, wall - timed)
    if model_samples is not None and not model_unknown:
        samples = model_samples
    elif data_samples is not None or data_unknown:
        samples = None if data_unknown else data_samples
    else:
        samples = other_samples
    return (start, max(wall, timed), samples, *phases, tokens)
