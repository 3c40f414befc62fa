"""jupyter-perf: profile a notebook cell that trains or runs a PyTorch model.

``%load_ext jupyter_perf`` registers ``%%perfprofile``; ``profile()`` does the same
without IPython. Importing this package is cheap on purpose: torch, libcst and
the widgets are imported only when a run needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .optimizations.base import Change, Target
    from .report import Report

__version__ = "0.1.0"
__all__ = ["profile", "apply", "rank_profile", "panel_action", "load_ipython_extension", "unload_ipython_extension",
           "__version__"]


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
    the caller asked for.
    """
    from .execution import compile_source, run_compiled
    from .export import check_export_path, export_report
    from .session import Session

    if export is not None:
        check_export_path(export)
    if namespace is None:
        namespace = {"__name__": "__main__"}
    body, last = compile_source(source)
    session = Session(namespace, source=source, interval=interval, deep=deep, trace_dir=trace_dir)
    session.start()
    error = None
    try:
        run_compiled(body, last, namespace)
    except BaseException as exc:  # KeyboardInterrupt included: the run stops, the report survives
        error = exc
    report = session.stop(error)
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
    from . import cells, frontend
    from .magic import PerfMagics

    ipython.register_magics(PerfMagics)
    cells.install(ipython)
    frontend.CHANNEL.open()


def unload_ipython_extension(ipython: Any) -> None:
    """Stop tracking cells and close the frontend channel; magics stay registered, as with IPython's own."""
    from . import cells, frontend

    cells.uninstall()
    frontend.CHANNEL.close()


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The built JupyterLab extension, for ``jupyter labextension develop``; pip installs it as shared data."""
    return [{"src": "labextension", "dest": "jupyter-perf"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension (the status bar's metrics endpoint), imported by jupyter_server only."""
    return [{"module": "jupyter_perf.server"}]
