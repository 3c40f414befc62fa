"""Everything jupyter-perf keeps in a kernel between cells, in one object.

``load(shell)`` (the extension loading) makes a fresh ``KernelState``: the cell tracker starts watching the
shell's cells and the channel to the JupyterLab extension opens. ``unload()`` stops both and drops the state,
so unloading leaves nothing behind and a later load starts afresh (tests reload rather than reach into module
globals). Outside IPython (``jupyter_perf.profile``/``apply`` from a script) ``current()`` is a state with no
shell, no tracker and a channel never opened.

The state is plain storage. What it holds belongs to layers above it (optimizations keep their committed
Changes here, the UI its panels and last dashboard), so it names their types only for the reader.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import OrderedDict
from typing import Any, overload

from .cells import CellRecord, CellTracker, Target
from .frontend import Channel


class KernelState:
    def __init__(self, shell: Any = None):
        self.shell = shell
        #: Which cell defined each name (cells.py); None outside IPython.
        self.tracker: CellTracker | None = CellTracker(shell) if shell is not None else None
        #: The comm to the JupyterLab extension (frontend.py).
        self.channel = Channel()
        #: optimizations: Changes committed and not undone, oldest first.
        self.applied: list[Any] = []
        #: ui: the optimization panels still answering clicks, by token, oldest first.
        self.panels: OrderedDict[str, Any] = OrderedDict()
        #: ui: the last live dashboard, closed when the next one opens.
        self.dashboard: Any = None
        #: Degradations said once per kernel ("no widgets frontend", ...), by key.
        self.said: set[str] = set()
        #: Each model's recorded call from the latest profiled run that called it (probes/inputs.py), held
        #: weakly: what the numerics guard replays.
        self.calls: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    # ----------------------------------------------------------- cells
    def defining(self, name: str) -> CellRecord | None:
        """The cell that last bound ``name``, where cells are tracked."""
        return self.tracker.defining(name) if self.tracker is not None else None

    @overload
    def target(self, cell: str | Target) -> Target: ...
    @overload
    def target(self, cell: None) -> None: ...
    @overload
    def target(self, cell: str | Target | None) -> Target | None: ...

    def target(self, cell: str | Target | None) -> Target | None:
        """A Target for ``cell``: with its notebook id where a tracked cell holds exactly this text."""
        return Target.of(cell, self.tracker)

    def running_cell(self) -> CellRecord | None:
        """The cell running now (or last run), where cells are tracked."""
        return self.tracker.current if self.tracker is not None else None

    # ----------------------------------------------------------- runs
    def remember_calls(self, calls: list[tuple[Any, Any]]) -> None:
        """Keep each (model, recorded call) of a run, replacing an earlier run's for the same model."""
        for model, call in calls:
            with contextlib.suppress(TypeError):  # an object that cannot be weakly referenced: nothing to keep it by
                self.calls[model] = call

    def recorded(self, model: Any) -> Any:
        """The recorded call of ``model`` from its latest profiled run, or None."""
        try:
            return self.calls.get(model)
        except TypeError:
            return None

    def say_once(self, key: str, message: str) -> None:
        """Print ``message`` to stderr the first time ``key`` is said in this kernel."""
        import sys

        if key not in self.said:
            self.said.add(key)
            print(f"jupyter-perf: {message}", file=sys.stderr)


_current: KernelState | None = None


def current() -> KernelState:
    """The kernel's state: the loaded extension's, else one for use without IPython (made on first use)."""
    global _current
    if _current is None:
        _current = KernelState()
    return _current


def load(shell: Any) -> KernelState:
    """The extension loads into ``shell``: a fresh state that tracks its cells and opens the channel.
    A second load into the same shell keeps the state it has."""
    global _current
    if _current is not None and _current.shell is shell:
        return _current
    unload()
    _current = KernelState(shell)
    if _current.tracker is not None:
        _current.tracker.install()
    _current.channel.open()
    return _current


def unload() -> None:
    """Stop tracking cells, close the channel and the panels' comms, and drop the state."""
    global _current
    state, _current = _current, None
    if state is None:
        return
    if state.tracker is not None:
        state.tracker.uninstall()
    state.channel.close()
    for panel in state.panels.values():
        retire = getattr(panel, "retire", None)
        if retire is not None:
            retire()
    if state.dashboard is not None:
        state.dashboard.close()
