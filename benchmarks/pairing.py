"""The drift-cancelling ratio of interleaved runs, shared by the overhead benchmarks."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def bracketed_ratio(profiled: Sequence[float], plain: Sequence[float], keep: Sequence[bool] | None = None) -> float:
    """Median over rounds of a profiled run's time against the mean of the plain runs on either side of it.

    Rounds run plain, profiled, plain, profiled, …. On the development VM a run's time drifts by tens of
    percent over minutes; against the plain run just before it, each ratio carries half a round of that
    drift (all in one direction while the machine slows down), while the mean of the two neighbours cancels
    a linear drift. The last profiled run has no plain run after it and is compared with the one before.
    ``keep``: which rounds count (all by default); NaN when none does.
    """
    ratios = []
    for i, run in enumerate(profiled):
        if keep is not None and not keep[i]:
            continue
        neighbours = plain[i:i + 2]
        ratios.append(run / (sum(neighbours) / len(neighbours)))
    return statistics.median(ratios) if ratios else float("nan")
