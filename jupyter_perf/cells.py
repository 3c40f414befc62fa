"""Which notebook cell defined each name in the namespace.

An optimization rewrites the cell that *built* an object (``loader =
DataLoader(...)`` lives in a setup cell, not in the profiled loop), so the
extension watches IPython's ``pre_run_cell``/``post_run_cell`` events and
remembers, for each name a cell bound, that cell's id and its text as it ran.
A name counts as bound by a cell when the cell's code assigns it at top level
(found from its AST) or when the namespace holds a different object under it
after the cell than before (which also catches names bound by magics,
``exec`` or ``%run``).

A record is the text as the cell *ran*; the user may edit the cell in the
browser without running it. The JupyterLab extension reports each cell's
current text (frontend.py), and a rewrite computed from a record the
notebook reports changed is refused (optimizations/base.py).

Only records still referenced by a name (plus the running cell) are kept, so
memory stays proportional to the namespace, not to the session's history.

A rewrite is described here too, below the optimizations that compute it and the
channel that carries it: a ``Target`` (a cell's code as it was when the rewrite
was computed from it), an ``Edit`` (its new text, which applies to exactly that
text) and its unified diff.
"""

from __future__ import annotations

import ast
import difflib
import sys
from dataclasses import dataclass, field
from typing import Any

#: Cell magics whose body is plain Python that a rewrite may edit; the magic line is kept verbatim.
_PYTHON_CELL_MAGICS = ("%%perfprofile",)


@dataclass(frozen=True)
class CellRecord:
    """A cell as it ran: the notebook's cell id (None outside a notebook), its exact text, and the execution
    count its prompt shows (``[5]``; None for a silent run)."""

    cell_id: str | None
    text: str
    count: int | None = None

    def target(self) -> Target:
        prefix, body = split_magic(self.text)
        return Target(body, self.cell_id, prefix, self.count)


def cell_label(count: int | None, text: str) -> str:
    """How a person finds a cell: by the number its prompt shows (``cell [5]``), else by how it starts.

    Never by the notebook's internal id, which the page does not show.
    """
    if count:
        return f"cell [{count}]"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"the cell starting {first[:40]!r}" if first else "the cell"


def _prompt_count(shell: Any) -> int:
    """The number the running cell's prompt shows, from inside ``pre_run_cell``.

    IPython 9 increments ``execution_count`` before that event and IPython 8 after it, so the counter is off by
    one on one of them; both store the cell's input in the history only after the event, so the history's
    length (it starts with one blank entry) is the running cell's number on either.
    """
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    return len(history) if history else shell.execution_count


def split_magic(text: str) -> tuple[str, str]:
    """(``%%perfprofile ...`` line with its newline, the Python body), or ("", text) for a plain cell."""
    first, newline, body = text.partition("\n")
    if first.strip().split(" ")[0] in _PYTHON_CELL_MAGICS:
        return first + newline, body
    return "", text


def python(text: str) -> str:
    """The Python that runs for a cell's ``text`` when it is run again outside IPython's ``run_cell``.

    A re-run (Apply & re-run profiles the rewritten cell) must run the cell as
    IPython does: a ``%%perfprofile`` line is dropped (the re-run has its own
    profiler; the magic likewise runs its body) and the body goes through
    IPython's ``transform_cell``, which turns ``%timeit``, ``!cmd`` and the
    like into calls; plain ``exec`` would fail on them with a SyntaxError.
    Outside IPython the text is Python already.
    """
    body = split_magic(text)[1]
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell.transform_cell(body) if shell is not None else body


class CellTracker:
    """Watches one shell's cells (``install``/``uninstall`` register it with IPython's events)."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.current: CellRecord | None = None
        self.defined: dict[str, CellRecord] = {}
        self._before: dict[str, int] = {}

    def install(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def uninstall(self) -> None:
        self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
        self.shell.events.unregister("post_run_cell", self.post_run_cell)

    def defining(self, name: str) -> CellRecord | None:
        """The cell that last bound ``name``."""
        return self.defined.get(name)

    def pre_run_cell(self, info: Any) -> None:
        count = _prompt_count(self.shell) if getattr(info, "store_history", False) else None
        self.current = CellRecord(getattr(info, "cell_id", None), info.raw_cell or "", count)
        self._before = {k: id(v) for k, v in self.shell.user_ns.items()}

    def post_run_cell(self, result: Any) -> None:
        record, namespace = self.current, self.shell.user_ns
        if record is None:
            return
        names = {k for k, v in namespace.items() if self._before.get(k) != id(v)}
        names |= {k for k in self._bound_names(record.text) if k in namespace}
        for name in names:
            if not name.startswith("_"):
                self.defined[name] = record
        for name in [k for k in self.defined if k not in namespace]:  # deleted since
            del self.defined[name]
        self._before = {}

    def _bound_names(self, text: str) -> set[str]:
        """Names the cell's top-level statements bind; empty where it is not Python."""
        prefix, body = split_magic(text)
        try:
            tree = ast.parse(body if prefix else self.shell.transform_cell(text))
        except (SyntaxError, ValueError):
            return set()
        names: set[str] = set()
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
            else:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
                for target in targets:
                    if target is not None:
                        names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        return names

    def find(self, source: str) -> CellRecord | None:
        """The tracked cell whose text, or whose body after a ``%%perfprofile`` line, is ``source``.

        IPython hands a cell magic its body with a newline added when the cell
        has none at its end; that body still names the cell.
        """
        records = ([self.current] if self.current else []) + list(self.defined.values())
        for record in records:
            body = split_magic(record.text)[1]
            if source in (record.text, body, body + "\n"):
                return record
        return None


# ------------------------------------------------------------------ rewrites
@dataclass(frozen=True)
class Target:
    """A cell's code as it was when a rewrite was computed from it.

    ``source`` is the Python the rewrite works on; ``prefix`` is kept verbatim in
    front of it (a ``%%perfprofile`` line), so the cell's whole text is
    ``prefix + source``. ``cell_id`` is the notebook's id for it, when known.
    """

    source: str
    cell_id: str | None = None
    prefix: str = ""
    #: The execution count of the run the text was recorded from, to name the cell by (not part of its identity).
    count: int | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return self.prefix + self.source

    @property
    def label(self) -> str:
        """``cell [5]``, or ``the cell starting 'loader = ...'`` (``cell_label``)."""
        return cell_label(self.count, self.text)

    @classmethod
    def of(cls, cell: str | Target | None, tracker: CellTracker | None = None) -> Target | None:
        """A Target for a cell given as text: with its id where ``tracker`` has a cell of exactly this text."""
        if cell is None or isinstance(cell, Target):
            return cell
        record = tracker.find(cell) if tracker is not None else None
        return record.target() if record is not None else cls(cell)


@dataclass(frozen=True)
class Edit:
    """One cell's rewrite: applies only to ``target.text``, exactly."""

    target: Target
    new_source: str

    @property
    def new_text(self) -> str:
        return self.target.prefix + self.new_source

    @property
    def diff(self) -> str:
        return unified_diff(self.target.source, self.new_source, self.target.label)


def unified_diff(old: str, new: str, label: str) -> str:
    """A unified diff of one cell, every line ending in a newline; empty when nothing changed."""
    if old == new:
        return ""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{label}",
                                 f"b/{label}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
