"""jupyter-perf: profile a notebook cell that trains or runs a PyTorch model.

``%load_ext jupyter_perf`` registers ``%%perfprofile``; ``profile()`` does the same
without IPython. Importing this package is cheap on purpose: torch, libcst and
the widgets are imported only when a run needs them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cells import Target
    from .optimizations.base import Change
    from .report import Comparison, Report

__version__ = "0.1.0"
__all__ = ["profile", "apply", "apply_and_rerun", "tune", "rank_profile", "panel_action", "load_ipython_extension",
           "unload_ipython_extension", "__version__"]


def profile(
    source: str,
    namespace: dict[str, Any] | None = None,
    *,
    interval: float = 0.1,
    deep: bool = False,
    export: str | Path | None = None,
    trace_dir: str | Path | None = None,
) -> "Report":
    """Run ``source`` in ``namespace`` under the profiler and return its Report.

    The code runs unchanged on the calling thread. If it raises, the Report is
    still returned, with ``report.error`` set (and ``report.interrupted`` for
    Ctrl-C); the exception itself is not re-raised, since the report is what
    the caller asked for. ``export``: also write it to a ``.json`` or ``.html`` file.
    """
    from .export import check_export_path, export_report
    from .runs import run

    if export is not None:
        check_export_path(export)
    if namespace is None:
        namespace = {"__name__": "__main__"}
    _show_reports_in(_shell())
    report = run(source, namespace, interval=interval, deep=deep, trace_dir=trace_dir)
    if export is not None:
        export_report(report, export)
    return report


def apply(
    opt_id: str,
    namespace: dict[str, Any],
    cell: str | Target | None = None,
    report: Report | None = None,
    **params: Any,
) -> Change:
    """Apply one optimization (docs/optimizations.md) to the live objects in ``namespace`` and to the code.

    ``cell`` is the code to rewrite (the profiled cell); the cell that built the
    object is found too when the extension tracks cells. Returns the Change:
    ``.diff``, ``.new_source``, ``.undo()``. Raises KeyError for an unknown id,
    ``NotApplicable`` (a ValueError) with the reason where it cannot apply.
    """
    from .optimizations import get

    return get(opt_id).apply(namespace, cell, report, **params)


def apply_and_rerun(
    opt_id: str,
    namespace: dict[str, Any],
    cell: str | Target,
    report: Report,
    **params: Any,
) -> tuple[Change, Comparison | None]:
    """``apply``, then profile ``cell`` again as the change left it and compare with ``report`` (the run before).

    Returns the Change (``.remeasured``: after/before throughput; a slower or failing re-run adds a warning
    offering ``change.undo()``) and the Comparison, None where nothing was applied.
    """
    from .optimizations.remeasure import apply_and_rerun as rerun
    from .runs import run

    return rerun(opt_id, namespace, cell, report, run, **params)


def tune(
    opt_id: str,
    namespace: dict[str, Any],
    cell: str | Target | None = None,
    report: Report | None = None,
    **params: Any,
) -> Change:
    """Measure a few values of ``opt_id``'s knob on the real loop and apply the fastest (docs/optimizations.md,
    "Tuning"): ``dataloader.workers`` (num_workers) or ``dataloader.batch_size``.

    Each value runs ``cell`` (else the report's profiled code) for a few
    batches, everything it changed put back after; the best value is applied
    like ``apply`` (live loader, code, diff, undo) and the Change's ``tuning``
    holds the curve (value → samples/s). Keyword ``values=``, ``seconds=``
    (each trial's length) and ``memory_budget=`` (bytes, batch sizes) steer
    the search; other parameters go to the optimization. Ctrl-C stops it with
    nothing changed.
    """
    from .optimizations.tune import tune as run

    return run(opt_id, namespace, cell, report, **params)


def rank_profile(out: str | Path = "perfprofile-ranks", interval: float = 0.1) -> Any:
    """Context manager for one rank of a script (``torchrun ... train.py``): its Report goes to
    ``out/rank-<rank>.json``, for ``%perfprofile --load out`` (docs/distributed.md)."""
    from .distributed.rank import rank_profile as profile_rank

    return profile_rank(out, interval)


def panel_action(payload: dict[str, Any]) -> None:
    """A click on the optimization panel that the JupyterLab extension took (docs/labextension.md).

    The extension made the click's code edits in the browser at once and calls
    this when the kernel is next idle, with ``edit_results`` added: the kernel
    does the live part (or the undo, or the re-run) without sending the edits
    again, and leaves the objects alone where an edit was refused.
    """
    from .ui.panel import panel_action as act

    act(payload)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics, show Reports as summaries, and start the kernel's state (state.py): the cells
    are tracked and the channel to the JupyterLab extension opens. Imports nothing heavy."""
    from . import state
    from .magic import PerfMagics

    ipython.register_magics(PerfMagics)
    _show_reports_in(ipython)
    state.load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Drop the kernel's state (cells no longer tracked, channel and panels closed) and the summary renderers;
    the magics stay registered, as with IPython's own."""
    from . import state
    from .ui import formatters

    state.unload()
    formatters.unregister(ipython)


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _show_reports_in(shell: Any) -> None:
    """Reports and Comparisons display as their summaries in ``shell`` (a no-op outside IPython)."""
    if shell is not None:
        from .ui import formatters

        formatters.register(shell)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The built JupyterLab extension, for ``jupyter labextension develop``; pip installs it as shared data."""
    return [{"src": "labextension", "dest": "jupyter-perf"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension (the status bar's metrics endpoint), imported by jupyter_server only."""
    return [{"module": "jupyter_perf.server"}]
