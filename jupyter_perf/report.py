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
from dataclasses import dataclass, field
from typing import Any

from .catalog import CATALOG

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


@dataclass
class Comparison:
    """Before/after of two runs of the same work: ratios > 1 mean 'after' is better."""

    before: Report
    after: Report

    @property
    def basis(self) -> str | None:
        """What the speedup compares: samples/s where both runs counted samples (a batch-size
        change alters what a step is), else steps/s, else wall time."""
        for key in ("samples_per_s", "steps_per_s"):
            if self.before.throughput.get(key) and self.after.throughput.get(key):
                return key.replace("_per_s", "/s")
        return "wall time" if self.before.wall_time and self.after.wall_time else None

    @property
    def speedup(self) -> float | None:
        """After over before on :attr:`basis`: > 1 means 'after' is faster."""
        basis = self.basis
        if basis is None:
            return None
        if basis == "wall time":
            return self.before.wall_time / self.after.wall_time
        key = basis.replace("/s", "_per_s")
        return self.after.throughput[key] / self.before.throughput[key]

    def rows(self) -> list[tuple[str, float | None, float | None, str]]:
        """(metric, before, after, unit) for every metric both runs could measure."""
        b, a = self.before, self.after
        rows = [
            ("wall time", b.wall_time, a.wall_time, "s"),
            ("steps/s", b.throughput.get("steps_per_s"), a.throughput.get("steps_per_s"), "/s"),
            ("samples/s", b.throughput.get("samples_per_s"), a.throughput.get("samples_per_s"), "/s"),
            ("step time", b.step_time, a.step_time, "s"),
        ]
        rows += [(f"  {p}", b.phases.get(p), a.phases.get(p), "s") for p in PHASES if b.phases.get(p) or a.phases.get(p)]
        for key in sorted(set(b.peaks) | set(a.peaks)):
            if key.endswith("_bytes"):
                rows.append((f"peak {key[:-6]}", b.peaks.get(key), a.peaks.get(key), "B"))
        return [r for r in rows if r[1] is not None or r[2] is not None]


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
