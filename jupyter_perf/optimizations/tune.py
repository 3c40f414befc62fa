"""Measured tuning: try a few values of one DataLoader knob on the real loop, keep the fastest, apply it.

A default is a guess about this machine, and guesses lose: ``dataloader.workers``
promised ×1.46 and delivered ×1.11 because training's own threads already
used both cores, while on a wait-bound dataset (a sleep per sample, like
network storage) 2 workers on 2 cores gave ×1.76 where 4 gave ×3.07. So
``tune`` measures: each candidate value runs the profiled cell's own loop for
a few batches (trial.py: how a trial measures, and why nothing stays), from
the smallest value up, until one four times the fastest so far gains
nothing. The fastest
value is applied through the optimization's own plan (live loader, cell
rewrite, diff, undo), and the Change carries the measured curve
(``Change.tuning``).

Batch sizes are tried only where they fit: each trial measures the memory
its steps add (trial.MemoryWatch), from which each larger size's peak is
predicted before it runs (``predict_peak``: the measured per-sample slope,
or, from one size alone, its peak per sample, which over-predicts); a
prediction over the budget (a safe fraction of the free memory, or
``memory_budget=``) is not tried. A size that runs out of memory anyway ends
the upward search.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import state
from ..cells import Target, python
from .base import NotApplicable
from .dataloader import available_cpus, rebuild
from .trial import MIN_BATCHES, MemoryWatch, Meter, Sandbox, run_code, swapped_iteration

if TYPE_CHECKING:
    from ..report import Report
    from .base import Change

#: Throughputs within this fraction of each other count as equal, at least: a value must beat the best by more
#: to count as a gain while searching. Choosing, the band is the spread measured between two trials of one
#: value (on a loaded two-core machine: 2-30%) between NOISE and MAX_BAND, and of the values within it of the
#: fastest, the current one (no change) or else the smallest (fewer processes, less memory) is kept.
NOISE = 0.05
#: The widest band: two trials 30% apart say one caught another process's burst, not that values 30% apart
#: are equal (a band that wide once chose 2 workers where 4 ran ×1.36 faster).
MAX_BAND = 0.15
#: Larger values are not tried once one this many times the fastest so far (at least 1) gained nothing: two
#: doublings past it. Counted from the fastest, not in misses: one worker is often no faster than none where
#: loading dominates (it only overlaps the step), yet two or four are.
SPAN = 4

#: Fraction of the free memory a batch size's predicted peak may take. Lower on the host: resident memory
#: under-counts what malloc keeps for reuse, and the kernel's out-of-memory killer takes the whole kernel.
SAFE_FRACTION = {"cuda": 0.8, "cpu": 0.5}
#: The most workers tried: worker counts past the cores pay off only while loading waits (storage, network).
MAX_WORKERS = 32
#: Seconds of measured steps per trial (at least trial.MIN_BATCHES batches), unless ``seconds=`` says.
TRIAL_SECONDS = 1.0
MiB = 2**20


@dataclass(frozen=True)
class Trial:
    """One value tried: samples/s over its measured batches, or why it has none (``note``)."""

    value: int
    samples_per_s: float | None = None
    batches: int = 0
    seconds: float = 0.0
    #: Peak bytes its steps added (batch-size tuning predicts larger sizes from it).
    peak_bytes: int | None = None
    note: str = ""
    #: Trials merged into this one (the two fastest run again): samples/s over all their batches.
    runs: int = 1
    #: How far the merged trials' samples/s differed, over the larger: the measurement's own noise.
    spread: float | None = None

    def merged(self, again: Trial) -> Trial:
        """This value's trials together: their samples over their seconds, and how far they differed."""
        mine, theirs = self.samples_per_s, again.samples_per_s
        if theirs is None:
            return self
        assert mine is not None  # (only a trial that ran is tried again)
        seconds = self.seconds + again.seconds
        samples = mine * self.seconds + theirs * again.seconds
        peaks = [p for p in (self.peak_bytes, again.peak_bytes) if p is not None]
        spread = abs(mine - theirs) / max(mine, theirs)
        return Trial(self.value, samples / seconds, self.batches + again.batches, seconds,
                     max(peaks) if peaks else None, self.note, self.runs + 1, spread)


@dataclass
class Tuning:
    """The measured curve of one knob (``Change.tuning``): each value tried and what it gave."""

    param: str
    current: int
    chosen: int
    trials: list[Trial]
    #: How the trials measured, in words.
    how: str
    #: Throughputs within this fraction of the fastest counted as equal (the spread measured, within
    #: NOISE..MAX_BAND).
    band: float = NOISE

    def rate(self, value: int) -> float | None:
        return next((t.samples_per_s for t in self.trials if t.value == value), None)

    @property
    def gain(self) -> float | None:
        """Samples/s of the chosen value over the current one's, in the trials."""
        chosen, current = self.rate(self.chosen), self.rate(self.current)
        return chosen / current if chosen and current else None

    def table(self) -> str:
        lines = [f"{self.param:>12}  {'samples/s':>10}  {'batches':>7}   (within {self.band:.0%} of the fastest: "
                 "equal)"]
        for t in self.trials:
            rate = f"{t.samples_per_s:10.0f}" if t.samples_per_s is not None else f"{'—':>10}"
            mark = " ← chosen" if t.value == self.chosen else (" (current)" if t.value == self.current else "")
            runs = f"{t.runs} runs, {t.spread:.0%} apart" if t.spread is not None else ""
            notes = [n for n in (runs, t.note) if n]
            lines.append(f"{t.value:>12}  {rate}  {t.batches:>7}{mark}{'  ' + '; '.join(notes) if notes else ''}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Knob:
    """The parameter a tunable optimization searches, and its candidate values for a loader."""

    param: str
    values: Callable[[Any], list[int]]
    #: Whether larger values need more memory (each predicted before it is tried).
    memory: bool


def _worker_values(loader: Any) -> list[int]:
    """0 and powers of two up to twice the cores (at least 8: past the cores pays while loading waits)."""
    cap = min(MAX_WORKERS, max(8, 2 * available_cpus()))
    return sorted({0, loader.num_workers, *(2**k for k in range(int(math.log2(cap)) + 1))})


def _batch_values(loader: Any) -> list[int]:
    """Powers of two from half the current size to 16× it (at least 256), at most the dataset's length."""
    size = loader.batch_size
    try:
        length = len(loader.dataset)
    except TypeError:
        length = None
    top = max(16 * size, 256) if length is None else min(max(16 * size, 256), length)
    powers = [2**k for k in range(int(math.log2(top)) + 1) if 2**k >= size / 2]
    return sorted({size, *powers})


KNOBS = {
    "dataloader.workers": Knob("num_workers", _worker_values, memory=False),
    "dataloader.batch_size": Knob("batch_size", _batch_values, memory=True),
}


def tune(opt_id: str, namespace: dict[str, Any], cell: str | Target | None = None, report: Report | None = None,
         *, values: list[int] | None = None, seconds: float | None = None, memory_budget: int | None = None,
         **params: Any) -> Change:
    """Measure each candidate value of ``opt_id``'s knob on the real loop, apply the fastest, return the Change.

    ``cell`` is the code rewritten (as for ``apply``) and the loop the trials
    run; without it, the report's profiled code; without either, the loader
    alone is timed (training's own threads then do not compete: said in
    ``tuning.how``). ``values`` replaces the candidates; ``seconds`` is each
    trial's measured length (default TRIAL_SECONDS, at least 3 batches);
    ``memory_budget`` caps the bytes a batch size may add (default: a safe
    fraction of the free memory).
    Other ``params`` go to the optimization. Ctrl-C stops it with nothing
    changed. Raises NotApplicable where the optimization cannot apply or
    nothing could be measured.
    """
    from . import get

    knob = KNOBS.get(opt_id)
    if knob is None:
        raise NotApplicable(f"tune measures {', '.join(KNOBS)}; {opt_id} has no value to search")
    if knob.param in params:
        raise TypeError(f"tune chooses {knob.param} by measuring: pass values=[...] to say which to try")
    opt, target = get(opt_id), state.current().target(cell)
    plan = opt.preview(namespace, target, report, **params)  # picks the loader; refuses where apply would
    name = plan.params["name"]
    loader = namespace[name]
    current = getattr(loader, knob.param)
    loop = target or (state.current().target(report.source) if report is not None and report.source.strip() else None)
    search = _Search(opt, namespace, target, report, params, knob, name, loader, loop, seconds or TRIAL_SECONDS)
    trials = search.run(sorted({current, *(values or knob.values(loader))}), current, memory_budget)
    band = min(MAX_BAND, max([NOISE, *(t.spread for t in trials if t.spread is not None)]))
    chosen = _choose(trials, current, band)
    tuning = Tuning(knob.param, current, chosen, trials, search.how, band)
    change = opt.preview(namespace, target, report, **params, **{knob.param: chosen})
    change.tuning = tuning
    gain = f", ×{tuning.gain:.2f} over {current} in the trials" if tuning.gain and chosen != current else ""
    change.description = f"Tuned {knob.param}={chosen} (measured{gain}). {change.description}"
    if knob.param == "num_workers" and chosen > available_cpus():
        change.warnings.append(f"{chosen} workers for {available_cpus()} cores, measured fastest here: loading waits "
                               "(storage, network) overlap past the core count; torch warns about the count")
    return change.commit()


def _choose(trials: list[Trial], current: int, band: float) -> int:
    """The current value if within ``band`` of the fastest, else the smallest value within ``band`` of it."""
    rates = {t.value: t.samples_per_s for t in trials if t.samples_per_s}
    if not rates:
        notes = "; ".join(f"{t.value}: {t.note}" for t in trials if t.note)
        raise NotApplicable(f"no value could be measured ({notes or 'no trial ran'})")
    best = max(rates.values())
    if rates.get(current, 0) >= best * (1 - band):
        return current
    return min(v for v, r in rates.items() if r >= best * (1 - band))


class _Search:
    """Runs the trials of one tuning, in a sandbox saved once and restored after each."""

    def __init__(self, opt: Any, namespace: dict[str, Any], target: Target | None, report: Report | None,
                 params: dict[str, Any], knob: Knob, name: str, loader: Any, loop: Target | None, seconds: float):
        from torch.utils.data import DataLoader

        self.opt, self.namespace, self.target, self.report, self.params = opt, namespace, target, report, params
        self.knob, self.name, self.loader, self.loop, self.seconds = knob, name, loader, loop, seconds
        self.others = [v for v in namespace.values() if isinstance(v, DataLoader) and v is not loader]
        self.how = (f"the profiled cell's loop over {name}, per value ≥ {MIN_BATCHES} batches and {seconds:g} s "
                    "after 1 + num_workers × prefetch_factor warm-up batches, in a copy of the namespace; weights, "
                    "optimizer state and RNGs put back after each" if loop is not None else
                    f"{name} alone, without the training step (no cell to run: pass cell= so that training's "
                    "own threads compete with the workers, as they do for real)")

    def run(self, values: list[int], current: int, budget: int | None) -> list[Trial]:
        """From the smallest value up: stop once a value SPAN× the fastest so far gained nothing, and (batch
        sizes) at a size predicted over the memory budget or out of memory."""
        watch = MemoryWatch()
        if self.knob.memory and budget is None:
            budget = int(SAFE_FRACTION["cuda" if watch.cuda else "cpu"] * watch.free())
        sandbox = Sandbox(self.namespace, [self.loader])
        trials: list[Trial] = []
        best, fastest, stop = 0.0, 0, ""
        for value in values:
            over = _over_budget(trials, value, budget) if budget is not None and self.knob.memory and value > current \
                else ""
            if over or stop:  # (a size that would not fit says so, whatever else stopped the search)
                trials.append(Trial(value, note=over or stop))
                continue
            trial = self._trial(value, sandbox, watch)
            trials.append(trial)
            if trial.samples_per_s is None:
                stop = "not tried: a smaller size ran out of memory" if "out of memory" in trial.note else ""
                continue
            if trial.samples_per_s > best * (1 + NOISE):
                fastest = value
            best = max(best, trial.samples_per_s)
            if value > current and value > fastest and value >= SPAN * max(fastest, 1):
                stop = f"not tried: {value} gained nothing over {fastest}, {SPAN}× smaller"
        return self._again(trials, sandbox, watch)

    def _again(self, trials: list[Trial], sandbox: Sandbox, watch: MemoryWatch) -> list[Trial]:
        """The two fastest run once more, the larger first: the choice is between them, one window can catch
        another process's burst on a shared machine, and how far two trials of one value differ is the noise
        the choice must see past."""
        ranked = sorted((t for t in trials if t.samples_per_s), key=lambda t: t.samples_per_s or 0.0,
                        reverse=True)
        if len(ranked) < 2:
            return trials
        again = {t.value: self._trial(t.value, sandbox, watch) for t in sorted(ranked[:2], key=lambda t: -t.value)}
        return [t.merged(again[t.value]) if t.value in again else t for t in trials]

    def _trial(self, value: int, sandbox: Sandbox, watch: MemoryWatch) -> Trial:
        """One value: planned like the change (which settings, which code), measured, everything put back."""
        import torch

        try:
            plan = self.opt.preview(self.namespace, self.target, self.report, **self.params,
                                    **{self.knob.param: value})
        except NotApplicable as exc:
            return Trial(value, note=f"not tried: {exc}")
        settings = {k: v for k, v in plan.params.items() if k != "name" and v is not None}
        with warnings.catch_warnings():  # torch's "more workers than cores": trying that is the point
            warnings.simplefilter("ignore")
            trial_loader = rebuild(self.loader, **settings)
        code = self._code(plan)
        meter = Meter(1 + trial_loader.num_workers * (trial_loader.prefetch_factor or 0), self.seconds)
        namespace = sandbox.copy({id(self.loader): trial_loader})
        note, peak = "", None
        try:
            with swapped_iteration(self.loader, trial_loader, meter, self.others):
                watch.start()
                try:
                    run_code(code, namespace)
                finally:
                    peak = watch.peak()  # before the restore, which allocates copies of its own
        except torch.OutOfMemoryError:
            note = "out of memory"
        except Exception as exc:  # noqa: BLE001 - the value failed: the others may not; the note says why
            note = f"failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
        finally:
            namespace.clear()
            sandbox.restore()
        measured = meter.result(peak)
        if not meter.marks and not note:
            raise NotApplicable(f"the cell ran without iterating {self.name}: pass cell= a cell whose loop draws "
                                f"batches from {self.name}")
        if measured.samples_per_s is None and not note:
            note = (f"the cell left its loop after {len(meter.sizes)} batches, {meter.warmup} of them warm-up: too "
                    "few to measure")
        elif measured.cut_short and not note:
            note = f"the cell left its loop after {measured.batches} measured batches"
        if note == "out of memory" and watch.cuda:
            torch.cuda.empty_cache()
        return Trial(value, measured.samples_per_s, measured.batches, measured.seconds, measured.peak_bytes, note)

    def _code(self, plan: Change) -> str:
        """The loop a trial runs: the cell as the plan would rewrite it (it may build the loader itself), as
        IPython runs it; without a cell, a bare loop over the loader."""
        if self.loop is None:
            return f"for _ in {self.name}:\n    pass\n"
        return python(plan.rewritten(self.loop) or self.loop.source)


def _over_budget(trials: list[Trial], value: int, budget: int) -> str:
    """Why ``value`` must not be tried (its predicted peak is over ``budget``), or "" where it fits."""
    predicted = predict_peak(trials, value)
    if predicted is None:
        return "not tried: no smaller size's memory was measured to predict this one's"
    if predicted > budget:
        return f"not tried: predicted {predicted / MiB:.0f} MiB, over the {budget / MiB:.0f} MiB budget"
    return ""


def predict_peak(trials: list[Trial], value: int) -> float | None:
    """The peak bytes a batch of ``value`` samples should add, from the sizes measured so far.

    Per sample: the slope between the two largest sizes measured (the step's fixed part, gradients set to
    None and allocated again each step, cancels out), where they are at least 2× apart and the slope is
    positive; else the largest size's peak over its samples, which counts the fixed part per sample and so
    over-predicts larger sizes: on the safe side. The largest size's peak plus that per extra sample.
    """
    measured = sorted((t.value, t.peak_bytes) for t in trials if t.peak_bytes is not None and t.value)
    if not measured:
        return None
    size, peak = measured[-1]
    per_sample = peak / size
    if len(measured) > 1 and size >= 2 * measured[-2][0] and peak > measured[-2][1]:
        per_sample = (peak - measured[-2][1]) / (size - measured[-2][0])
    return peak + per_sample * (value - size)
