"""Straight-line trends of a run's series: memory against steps completed.

The leak rule (diagnosis/memory.py) and a before/after comparison of a leak fix (``report.Comparison``) read
the same fit, so the growth per step a finding names is the one the comparison re-measures. It sits in the
vocabulary layer because both need it and neither may import the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The first 20% of steps fill caches, allocator pools and optimizer state: a trend is fitted after them.
WARMUP_FRACTION = 0.2


@dataclass(frozen=True)
class Line:
    """A least-squares line ``y = slope * x + intercept`` through ``n`` points from ``x_from`` to ``x_to``."""

    slope: float
    intercept: float
    #: How well a line explains the points (1: exactly; a step or a plateau: low).
    r2: float
    #: Standard error of the slope: how far it could move on the same run's scatter.
    slope_error: float
    n: int
    x_from: float
    x_to: float


def after_warmup(xs: Sequence[float | None], ys: Sequence[float | None],
                 fraction: float = WARMUP_FRACTION) -> list[tuple[float, float]]:
    """The (x, y) pairs with both present and ``x`` past the first ``fraction`` of the largest ``x``."""
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    if not pairs:
        return []
    start = fraction * max(x for x, _ in pairs)
    return [(x, y) for x, y in pairs if x >= start]


def fit_line(pairs: Sequence[tuple[float, float]]) -> Line | None:
    """The least-squares line through ``pairs``; None with fewer than three distinct x values."""
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(xs)) < 3:
        return None
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = my - slope * mx
    residual = max(0.0, syy - slope * sxy)  # sum of squared residuals
    error = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    return Line(slope, intercept, sxy * sxy / (sxx * syy) if syy else 0.0, error, n, min(xs), max(xs))
