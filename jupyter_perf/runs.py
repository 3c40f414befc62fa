"""A profiled run, from its code to a diagnosed Report: what ``profile()``, the magic and Apply & re-run share.

The Session measures and builds the Report; diagnosis reads it; the kernel's state keeps what the run recorded
of the models' calls for the numerics guard. Joining the three here keeps each of them ignorant of the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import state
from .diagnosis import diagnose
from .execution import compile_source, run_compiled
from .report import Report
from .session import Session


def session(namespace: dict[str, Any], source: str, *, interval: float = 0.1, deep: bool = False,
            trace_dir: str | Path | None = None) -> Session:
    """A Session for a cell's code that also follows the ranks it launches (distributed/launch.py)."""
    from .distributed.launch import LaunchProbe

    return Session(namespace, source=source, interval=interval, deep=deep, trace_dir=trace_dir,
                   extensions=[LaunchProbe])


def finish(session: Session, error: BaseException | None) -> Report:
    """Stop ``session`` and diagnose its Report (a rule's bug costs a note, never the measurements)."""
    report = session.stop(error)
    try:
        diagnose(report)
    except Exception as exc:  # noqa: BLE001 - the measurements stand without the diagnosis
        report.notes.append(f"diagnosis failed ({type(exc).__name__}: {exc}); the measurements are complete")
    state.current().remember_calls(session.recorded_calls())
    return report


def run(source: str, namespace: dict[str, Any], *, interval: float = 0.1, deep: bool = False,
        trace_dir: str | Path | None = None) -> Report:
    """Run ``source`` in ``namespace`` under the profiler and return its diagnosed Report.

    The code runs unchanged on the calling thread. If it raises, the Report is still returned, with
    ``report.error`` set (and ``report.interrupted`` for Ctrl-C); the exception is not re-raised, since the
    report is what the caller asked for.
    """
    body, last = compile_source(source)
    running = session(namespace, source, interval=interval, deep=deep, trace_dir=trace_dir)
    running.start()
    error = None
    try:
        run_compiled(body, last, namespace)
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt included: the run stops, the report survives
        error = exc
    return finish(running, error)
