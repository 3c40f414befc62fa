"""Asserting that one run is faster than another on a machine that others share.

A fixed threshold on a measured ratio ("×1.3 faster") breaks when the machine
is loaded: both runs slow down, a fix's effect shrinks, the scatter grows.
What a test can assert robustly is the direction, by a margin that the
measurements' own scatter sets: the faster run's times (per step, per
sample, per round) must rank below the slower run's by at least ``Z_MIN``
standard deviations of the Mann–Whitney rank statistic, i.e. by more than
two samples of one distribution would show once in a thousand tries. Load
that widens the scatter widens the margin with it; how large the effect is
belongs to ``benchmarks/``, which print it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

#: One-sided p ≈ 0.0013 when both samples come from the same distribution.
Z_MIN = 3.0


def rank_z(slower: Sequence[float], faster: Sequence[float]) -> float:
    """Standard deviations by which ``faster``'s values rank below ``slower``'s (0: no difference; ties count half)."""
    n, m = len(slower), len(faster)
    if not n or not m:
        raise ValueError("rank_z needs values on both sides")
    u = sum(1.0 if f < s else 0.5 if f == s else 0.0 for s in slower for f in faster)
    return (u - n * m / 2) / math.sqrt(n * m * (n + m + 1) / 12)


def assert_faster(slower: Sequence[float], faster: Sequence[float], what: str) -> None:
    z = rank_z(slower, faster)
    ratio = statistics.median(slower) / statistics.median(faster)
    assert z >= Z_MIN, (
        f"{what}: not faster beyond the noise (rank z {z:.2f} < {Z_MIN}; medians ×{ratio:.2f}; "
        f"n = {len(slower)}, {len(faster)})"
    )


def seconds_per_sample(report) -> list[float]:
    """Each step's wall time per sample it processed, from a Report's per-step series."""
    series = report.step_series
    pairs = zip(series.get("wall", []), series.get("samples", []))
    return [wall / samples for wall, samples in pairs if wall is not None and samples]
