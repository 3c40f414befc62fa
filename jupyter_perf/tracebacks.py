"""The user's traceback as it would be without the profiler: the profiler's own frames taken out.

A profiled cell's exception passes through frames the plain cell never has:
the magic that runs it (``magic.py``, ``execution.py``) above the cell, and
the probes' wrappers (``probes/``: a model's ``__call__``, the DataLoader
iterator, ``backward``) between the user's frames. IPython cannot be told to
hide them: IPython 8 skips a fixed number of leading frames (``tb_offset``),
IPython 9 ignores that number and skips only its own modules. So the
frames are unlinked from the traceback objects themselves, and what any
IPython (or ``%debug``, or ``traceback``) shows is what it would show unprofiled.
"""

from __future__ import annotations

from types import TracebackType

#: Modules whose frames are the profiler's: the runner of the cell, and everything under ``probes``.
_RUNNER_MODULES = ("jupyter_perf.magic", "jupyter_perf.execution")
_PROBES = "jupyter_perf.probes."


def is_profiler_frame(tb: TracebackType) -> bool:
    name = tb.tb_frame.f_globals.get("__name__", "")
    return name in _RUNNER_MODULES or name.startswith(_PROBES)


def strip_profiler_frames(error: BaseException) -> BaseException:
    """Unlink the profiler's frames from ``error``'s traceback and from those of its causes and contexts.

    The innermost frame always stays: an exception raised by the profiler
    itself must still show where. Returns ``error``, its ``__traceback__``
    now the user's.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = _without_profiler_frames(exc.__traceback__)
        pending += [exc.__cause__, exc.__context__]
    return error


def _without_profiler_frames(tb: TracebackType | None) -> TracebackType | None:
    kept: list[TracebackType] = []
    while tb is not None:
        if tb.tb_next is None or not is_profiler_frame(tb):
            kept.append(tb)
        tb = tb.tb_next
    for outer, inner in zip(kept, kept[1:]):
        outer.tb_next = inner
    return kept[0] if kept else None
