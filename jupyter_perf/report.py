"""What a profiled run produced, as plain data that survives a JSON round trip.

The Report is the only thing diagnosis reads and the only thing the UI renders,
so everything a rule or a view needs lives here, in SI units (seconds, bytes,
percent). Signals a run could not observe are absent (``None`` or a missing key),
never zero: "no GPU" and "the GPU was idle" must not look alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from .catalog import CATALOG
from .trend import Line, after_warmup, fit_line

#: The phases of one step, in the order a step goes through them (contract). ``communication`` is the
#: exposed time blocked on collectives, carved out of the phase it blocked (docs/report.md).
PHASES = ("data_wait", "host_to_device", "forward", "backward", "communication", "optimizer", "other")

#: Every value ``Report.bottleneck`` can take, with what it means in the user's words (contract, docs/report.md).
BOTTLENECKS: dict[str, str] = {
    "input_pipeline": "the device waits on the DataLoader / preprocessing",
    "host_to_device": "copies from host memory stall the step",
    "launch_overhead": "many small ops: Python and kernel-launch cost dominate",
    "host_sync": "frequent device-to-host syncs starve the device",
    "compute": "busy with the model's math (the healthy case)",
    "memory_capacity": "peak memory near the device's limit",
    "memory_leak": "memory grows step over step",
    "disk_io": "reading input from storage dominates",
    "communication": "distributed collectives dominate",
    "none": "too little ran to say",
}

#: Every optimization id a Recommendation may name (contract): the catalog's.
OPTIMIZATIONS = tuple(CATALOG)

SEVERITIES = ("high", "medium", "low", "info")


@dataclass
class Finding:
    """One detected issue, with the numbers that made a rule fire."""

    id: str
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    #: The bottleneck id this finding argues for, if it is one of them.
    bottleneck: str | None = None
    #: Fraction of step time (0..1) the finding accounts for, used to rank.
    share: float | None = None


@dataclass
class Recommendation:
    """An optimization worth trying, why, and what it should gain."""

    optimization: str
    reason: str
    expected_speedup: float | None = None
    #: The finding id that motivated it.
    finding: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: Memory fixes: bytes it would free at the peak, estimated from ``Report.memory_breakdown``.
    expected_freed_bytes: float | None = None


@dataclass
class Report:
    """Everything one profiled run measured (contract: field names used by tests)."""

    source: str = ""
    started_at: str = ""
    wall_time: float = 0.0
    #: Number of steps recognised, and what delimited them (``data``, ``optimizer``, ``forward``).
    steps: int = 0
    step_anchor: str | None = None
    #: Sum of the recognised steps' wall times, seconds.
    step_time_total: float = 0.0
    samples: int | None = None
    throughput: dict[str, float | None] = field(default_factory=dict)
    #: Mean seconds per step per phase; sums to the mean step time (contract).
    phases: dict[str, float] = field(default_factory=dict)
    #: Phase totals over the whole run, seconds.
    phase_totals: dict[str, float] = field(default_factory=dict)
    #: Per-step series, downsampled for long runs: ``wall``, ``start`` and one list per phase (None: not measured).
    step_series: dict[str, list[float | None]] = field(default_factory=dict)
    #: Maxima over the run: ``rss_bytes``, ``rss_children_bytes``, ``rss_total_bytes``,
    #: ``gpu{i}_mem_used_bytes``, ``cuda_allocated_bytes``, ``cuda_reserved_bytes`` ...
    peaks: dict[str, float] = field(default_factory=dict)
    #: What the steps' model costs (language models above all): ``flops_per_step``, ``flops_per_s``,
    #: ``peak_flops`` and ``mfu`` (None where the device's peak is unknown), ``dtype``, ``method``,
    #: ``counting_s`` (the count's own cost), ``formula_flops_per_step`` (transformers). Empty if not measured.
    compute: dict[str, Any] = field(default_factory=dict)
    #: Bytes at the run's peak: ``parameters``, ``gradients``, ``optimizer_state``, ``activations``, ``other``,
    #: and ``peak``, ``device``. Empty if not measured.
    memory_breakdown: dict[str, Any] = field(default_factory=dict)
    #: Sampled columns against ``t`` (seconds from the start), equal length.
    timeline: dict[str, list[float | None]] = field(default_factory=dict)
    #: What the probes saw: data loaders, models, optimizers, copies, syncs, forwards ...
    signals: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    bottleneck: str = "none"
    findings: list[Finding] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    #: Things the run could not observe or that degraded, said once each.
    notes: list[str] = field(default_factory=list)
    #: ``{"type", "message", "oom"}`` when the profiled code raised.
    error: dict[str, Any] | None = None
    interrupted: bool = False
    #: ``--deep``: ``trace_path`` and ``top_ops`` (name, self seconds, calls).
    deep: dict[str, Any] | None = None
    #: A distributed run: each rank's Report, rank order (empty for one process); this Report is then their
    #: merged view (docs/distributed.md).
    ranks: list[Report] = field(default_factory=list)

    # ------------------------------------------------------------------ helpers
    @property
    def step_time(self) -> float | None:
        """Mean wall seconds of one step, or None when no step was recognised."""
        return self.step_time_total / self.steps if self.steps else None

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def recommended(self) -> list[str]:
        return [r.optimization for r in self.recommendations]

    # --------------------------------------------------------------- JSON trip
    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["findings"] = [Finding(**f) for f in data.get("findings", [])]
        values["recommendations"] = [Recommendation(**r) for r in data.get("recommendations", [])]
        values["ranks"] = [cls.from_dict(r) for r in data.get("ranks") or []]
        return cls(**values)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        tp = self.throughput.get("steps_per_s")
        rate = f", {tp:.1f} steps/s" if tp else ""
        ranks = f", {len(self.ranks)} ranks" if self.ranks else ""
        return f"<Report {self.wall_time:.2f}s, {self.steps} steps{rate}{ranks}, bottleneck={self.bottleneck}>"


#: A before/after change within this fraction is the same whatever the runs' own scatter says: a run rarely
#: repeats its throughput or its peak closer than this on a shared machine.
NOISE_FLOOR = 0.03
#: A peak memory within this fraction is the same: Apply & re-run runs again in the same process, whose peak
#: starts from what the first run left allocated (allocator pools, caches, a leak's objects), so peaks of the
#: two runs differ by several percent with nothing changed (+4% after a leak fix that stopped the growth, +6%
#: after a batch of 16 instead of 1 on a 260 MiB kernel, in tests/ui/test_verdict_browser.py's runs).
PEAK_NOISE = 0.10
#: How many standard errors a change must exceed to count: two, about 95% of repeats of a steady run.
NOISE_SIGMAS = 2.0
#: Samples per step that differ by more than this make a step different work: rows go per sample.
BATCH_CHANGE = 0.01
#: The throughput a comparison reads, best first: useful tokens, tokens, samples, steps (per second).
_RATES = (("real_tokens_per_s", "real tokens/s"), ("tokens_per_s", "tokens/s"), ("samples_per_s", "samples/s"),
          ("steps_per_s", "steps/s"))
#: Timeline columns a memory growth is fitted on, and what they are called.
_GROWTH_SERIES = {"rss_total": "host RSS", "heap_in_use": "host heap", "cuda_allocated": "torch allocated"}
#: Peaks a memory fix is judged by, the device's first.
_PEAKS = (("cuda_allocated_bytes", "peak torch allocated"), ("gpu0_mem_used_bytes", "peak GPU0 memory"),
          ("rss_total_bytes", "peak total RSS"), ("rss_bytes", "peak kernel RSS"))


@dataclass(frozen=True)
class Metric:
    """One quantity of a comparison in both runs, which way is better, and how big a change is only noise."""

    name: str
    before: float | None
    after: float | None
    #: ``/s`` rates, ``s`` times, ``B`` bytes, ``B/step`` a memory growth per step.
    unit: str
    higher_is_better: bool
    #: The change that is still noise: a fraction (ratio − 1) for rates, times and peaks; bytes per step for a
    #: growth, whose values can be zero or negative.
    noise: float
    #: A part of the row above it (a phase of the step).
    indent: bool = False

    @property
    def ratio(self) -> float | None:
        """After over before; None where either is missing or the before is not positive."""
        if self.before is None or self.after is None or self.before <= 0 or self.unit == "B/step":
            return None
        return self.after / self.before

    @property
    def verdict(self) -> str | None:
        """``better``, ``worse`` or ``same`` (a change within the noise); None where a run lacks the value."""
        if self.before is None or self.after is None:
            return None
        if self.unit == "B/step":
            change = self.after - self.before
            if abs(change) <= self.noise:
                return "same"
            return "better" if (change > 0) == self.higher_is_better else "worse"
        ratio = self.ratio
        if ratio is None:
            return None
        gain = ratio if self.higher_is_better else (1 / ratio if ratio else math.inf)
        return "better" if gain > 1 + self.noise else "worse" if gain < 1 - self.noise else "same"


@dataclass
class Comparison:
    """Before/after of two runs of the same work, judged by the metric the optimization targets.

    A leak fix is judged by the memory a step adds, a memory fix by the peak (it may run slower: that is its
    price, not a regression), anything else by the work done per second. A change counts only beyond the
    noise the two runs' own step times show (``noise``); where a step holds a different number of samples
    after (a batch-size change), the per-step rows are per sample.
    """

    before: Report
    after: Report
    #: The optimization whose effect this measures; its catalog entry names the metric judged.
    optimization: str | None = None
    #: Why 'after' no longer describes the code (the change was undone); None while it does.
    outdated: str | None = None

    @property
    def target(self) -> str:
        entry = CATALOG.get(self.optimization or "")
        return entry.target if entry is not None else "throughput"

    @property
    def basis(self) -> str | None:
        """What the speedup compares: tokens or samples per second where both runs counted them (a batch-size
        change alters what a step is), else steps/s, else wall time."""
        for key, name in _RATES:
            if self.before.throughput.get(key) and self.after.throughput.get(key):
                return name
        return "wall time" if self.before.wall_time and self.after.wall_time else None

    @property
    def speedup(self) -> float | None:
        """After over before on :attr:`basis`: > 1 means 'after' is faster."""
        basis = self.basis
        if basis is None:
            return None
        if basis == "wall time":
            return self.before.wall_time / self.after.wall_time
        key = next(key for key, name in _RATES if name == basis)
        before, after = self.before.throughput.get(key), self.after.throughput.get(key)
        return after / before if before and after else None

    @property
    def noise(self) -> float:
        """The relative change of a rate or a time that is still noise: two standard errors of the ratio of the
        two runs' mean step times (each from its own steps' scatter), at least ``NOISE_FLOOR``."""
        errors = [step_time_error(r) for r in (self.before, self.after)]
        known = [e for e in errors if e is not None]
        return max(NOISE_FLOOR, NOISE_SIGMAS * math.sqrt(sum(e * e for e in known))) if known else NOISE_FLOOR

    @property
    def per_sample(self) -> bool:
        """Whether a step holds a different number of samples after than before (rows then go per sample)."""
        b, a = samples_per_step(self.before), samples_per_step(self.after)
        return b is not None and a is not None and abs(a / b - 1) > BATCH_CHANGE

    def judged(self) -> Metric | None:
        """The row of the metric the optimization targets; None where the runs cannot show it."""
        if self.target == "memory_growth":
            return self._growth()
        if self.target == "peak_memory":
            return self._peak()
        return self._throughput()

    @property
    def regression(self) -> bool:
        """The targeted metric got worse beyond the noise."""
        judged = self.judged()
        return judged is not None and judged.verdict == "worse"

    def rows(self) -> list[Metric]:
        """Every metric both runs could measure: the judged one first, then the run's shape, then memory."""
        b, a, noise = self.before, self.after, self.noise
        rows: list[Metric | None] = [self.judged(), Metric("wall time", b.wall_time, a.wall_time, "s", False, noise)]
        rows += [self._rate(key, name) for key, name in _RATES
                 if not (self.per_sample and key == "steps_per_s")]  # a step is other work after: its rate misleads
        scale_b, scale_a = (samples_per_step(b), samples_per_step(a)) if self.per_sample else (1, 1)
        per = "per sample" if self.per_sample else "per step"
        rows.append(Metric(f"time {per}", _over(b.step_time, scale_b), _over(a.step_time, scale_a), "s", False,
                           noise))
        rows += [Metric(p, _over(b.phases.get(p), scale_b), _over(a.phases.get(p), scale_a), "s", False, noise,
                        indent=True) for p in PHASES if b.phases.get(p) or a.phases.get(p)]
        if self.target != "throughput":  # (memory a step adds is noise to a throughput fix)
            rows.append(self._growth())
        rows += self._peaks()
        seen: set[str] = set()
        out = []
        for row in rows:
            if row is not None and row.name not in seen and (row.before is not None or row.after is not None):
                seen.add(row.name)
                out.append(row)
        return out

    # ------------------------------------------------------------ metrics
    def _rate(self, key: str, name: str) -> Metric | None:
        b, a = self.before.throughput.get(key), self.after.throughput.get(key)
        return Metric(name, b, a, "/s", True, self.noise) if b or a else None

    def _throughput(self) -> Metric | None:
        basis = self.basis
        if basis is None:
            return None
        if basis == "wall time":
            return Metric("wall time", self.before.wall_time, self.after.wall_time, "s", False, self.noise)
        return self._rate(next(key for key, name in _RATES if name == basis), basis)

    def _growth(self) -> Metric | None:
        """Memory added per step, on the series that grew most before (the one the leak rule named)."""
        fits = {col: (_growth(self.before, col), _growth(self.after, col)) for col in _GROWTH_SERIES}
        fits = {col: pair for col, pair in fits.items() if pair[0] is not None and pair[1] is not None}
        if not fits:
            return None
        col, (b, a) = max(fits.items(), key=lambda kv: kv[1][0].slope)  # type: ignore[union-attr]
        noise = NOISE_SIGMAS * math.hypot(b.slope_error, a.slope_error)  # type: ignore[union-attr]
        return Metric(f"{_GROWTH_SERIES[col]} growth per step", b.slope, a.slope,  # type: ignore[union-attr]
                      "B/step", False, noise)

    def _peaks(self) -> list[Metric]:
        b, a = self.before.peaks, self.after.peaks
        return [Metric(name, b.get(key), a.get(key), "B", False, PEAK_NOISE) for key, name in _PEAKS
                if key in b or key in a]

    def _peak(self) -> Metric | None:
        return next((m for m in self._peaks() if m.before is not None and m.after is not None), None)


def step_time_error(report: Report) -> float | None:
    """The relative standard error of a run's mean step time, from its own steps' scatter.

    Robust to a slow first step (warm-up, compilation) and to the odd pause: the median absolute deviation
    stands in for the standard deviation. Rows of the step series are means of a few steps each in a long
    run, and their scatter is that of such means, so the error is still that of the run's mean.
    """
    walls = sorted(w for w in report.step_series.get("wall") or [] if w is not None and w > 0)
    if len(walls) < 3:
        return None
    middle = statistics.median(walls)
    spread = 1.4826 * statistics.median(abs(w - middle) for w in walls)  # a normal scatter's standard deviation
    return spread / middle / math.sqrt(len(walls))


def _growth(report: Report, column: str) -> Line | None:
    """The line of ``column`` (bytes) against steps completed, after warm-up (trend.py)."""
    timeline = report.timeline
    if column not in timeline or "steps" not in timeline:
        return None
    return fit_line(after_warmup(timeline["steps"], timeline[column]))


def samples_per_step(report: Report) -> float | None:
    """Samples in a step on average, where the run counted them."""
    return report.samples / report.steps if report.samples and report.steps else None


def _over(value: float | None, scale: float | None) -> float | None:
    return None if value is None or not scale else value / scale


def _json_safe(value: Any) -> Any:
    """Turn NaN/inf into None and tuples into lists so json.dumps never fails or lies."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
