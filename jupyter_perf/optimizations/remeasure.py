"""Apply & re-run: advice is a hypothesis until re-measured on this machine.

The optimization is applied, the profiled cell runs again under the profiler
(rewritten, where the change edited it), and the two Reports are compared. A
regression is said plainly, with the undo, because textbook fixes can lose
(pinned memory plus workers ran ×0.71 on an in-memory dataset on an H200, benchmarks/results/gpu_check_h200.txt).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import state, units
from ..cells import Target, python
from ..report import Comparison, Report
from .base import Change

#: What re-runs the cell: ``(python_source, namespace) -> Report``, profiled and diagnosed (runs.run); the
#: caller passes it in, since profiling sits above the optimizations.
Profile = Callable[[str, dict[str, Any]], Report]


def apply_and_rerun(opt_id: str, namespace: dict[str, Any], cell: str | Target, report: Report, profile: Profile,
                    **params: Any) -> tuple[Change, Comparison | None]:
    """Apply ``opt_id``, profile the cell again, compare with ``report`` (None when nothing was applied)."""
    from . import get

    target = state.current().target(cell)
    change = get(opt_id).apply(namespace, target, report, **params)
    if change.status != "applied":
        return change, None
    return change, remeasure(change, namespace, target, report, profile)


def remeasure(change: Change, namespace: dict[str, Any], cell: str | Target, report: Report,
              profile: Profile) -> Comparison:
    """Profile ``cell`` again as the applied ``change`` left it and compare with ``report``, the run before.

    Split from ``apply_and_rerun`` for the panel, which commits the Change it
    previewed (the diff the user saw) before re-running. The Comparison judges
    the metric the optimization targets (its catalog entry: throughput, memory
    growth per step, peak memory) against the runs' own noise; a regression of
    that metric, or a failing re-run, adds a warning to the Change saying so and
    offering ``change.undo()``. ``change.remeasured`` holds the throughput ratio.
    """
    target = state.current().target(cell)
    # The cell as IPython runs it: its %%perfprofile line dropped, %timeit / !cmd lines made Python.
    after = profile(python(change.rewritten(target) or target.source), namespace)
    comparison = Comparison(report, after, change.optimization)
    change.remeasured = comparison.speedup  # samples (or tokens) per second first: a batch-size change alters a step
    judged = comparison.judged()
    if after.error is not None:
        change.warnings.append(f"the re-run raised {after.error['type']}: {after.error['message'][:200]}; "
                               "undo with change.undo()")
    elif comparison.regression and judged is not None:
        moved = f" {units.ratio(judged.ratio)}" if judged.ratio is not None else ""
        change.warnings.append(f"re-measured: {judged.name}{moved}, worse beyond the run-to-run noise; undo with "
                               "change.undo()")
    return comparison
