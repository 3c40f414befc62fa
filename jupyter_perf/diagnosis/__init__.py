"""Diagnosis: read a Report, name its bottleneck with evidence, and rank the fixes.

``diagnose(report)`` runs every rule family over the Report and nothing else (no
torch, no namespace), so a Report loaded from JSON diagnoses the same as a live
one. Each family lives in its own module; every number it compares against is
named in ``thresholds.py``; docs/diagnosis.md lists the rules.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..report import SEVERITIES, Finding, Report
from . import compute, distributed, inference, input_pipeline, language, launch, memory, sync, transfers
from .common import TIME_BASED
from .recommend import recommend

__all__ = ["diagnose", "pick_bottleneck"]

Rule = Callable[[Report, Sequence[Finding]], list[Finding]]

#: Order matters: launch_overhead asks whether data, copies or syncs already explain
#: an idle GPU, and compute is what is left when no time-based rule fired (communication included).
RULES: tuple[Rule, ...] = (
    memory.check_capacity,
    memory.check_leak,
    input_pipeline.check,
    transfers.check,
    sync.check,
    launch.check,
    inference.check,
    language.check,
    distributed.check,
    compute.check,
)


def diagnose(report: Report) -> None:
    """Fill ``report.findings``, ``report.bottleneck`` and ``report.recommendations`` in place."""
    found: list[Finding] = []
    for rule in RULES:
        found += rule(report, found)
    report.bottleneck = pick_bottleneck(found)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    report.findings = sorted(
        found, key=lambda f: (f.bottleneck != report.bottleneck, rank[f.severity], -(f.share or 0.0))
    )
    report.recommendations = recommend(report)


def pick_bottleneck(findings: Sequence[Finding]) -> str:
    """memory_capacity > memory_leak > the largest time share > compute > none."""
    named = {f.bottleneck for f in findings if f.bottleneck}
    for memory_id in ("memory_capacity", "memory_leak"):
        if memory_id in named:
            return memory_id
    timed = [(f.share, -TIME_BASED.index(b), b) for f in findings if (b := f.bottleneck) in TIME_BASED]
    if timed:
        return max(timed)[2]  # the largest share; on a tie, the earlier (more specific) bottleneck
    return "compute" if "compute" in named else "none"
