"""The Optimization protocol and the Change it returns.

An optimization first *plans*: it picks the live objects it acts on, computes
the rewritten cell text and says what it would do, touching nothing
(``preview``). ``Change.commit()`` then performs the live part, runs the
numerics guard where the optimization changes numerics, and asks the
notebook to edit the cells; ``Change.undo()`` reverses all of it. Splitting
the two is what lets the panel show the diff before anything changes, and
guarantees the edit applied is the one shown: an edit carries the exact text
it was computed from, and the frontend refuses it if the cell differs now.

The notebook answers an edit only after the cell that asked has ended. If
it refuses one (the user changed the cell meanwhile), the code kept its old
text, so the live part is taken back too and the user is told: objects and
code always agree, and nothing the user typed is overwritten. A plan is not
even made from a cell that the notebook reports edited since it last ran.

Applying twice does not stack: planning sees that the live state and the
code already have the change and returns a Change whose status is
``"already applied"``, which commits to nothing.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from .. import state
from ..cells import Edit, Target

if TYPE_CHECKING:
    from ..catalog import Entry
    from ..report import Report
    from .guard import NumericsResult
    from .tune import Tuning


class NotApplicable(ValueError):  # noqa: N818 - a reason, not an error: the panel shows it to the user
    """The optimization cannot act on this namespace/cell; the message says why, for the user."""


class CellEdited(NotApplicable):
    """A cell to rewrite was edited in the notebook since it ran: a plan made after it runs again may apply."""


def applied() -> list[Change]:
    """Changes committed in this kernel and not undone, oldest first (``applied()[-1].undo()``)."""
    return list(state.current().applied)


class Undo:
    """Undo actions, run last-registered first; registered as each live step succeeds."""

    def __init__(self) -> None:
        self._actions: list[Callable[[], object]] = []

    def push(self, action: Callable[[], object]) -> None:
        self._actions.append(action)

    def run(self) -> None:
        while self._actions:
            self._actions.pop()()


#: A live step: changes objects, registers how to undo each change, returns the guard's verdict (or None).
LiveStep = Callable[[Undo], "NumericsResult | None"]


# ------------------------------------------------------------------ change
@dataclass(eq=False)
class Change:
    """What one optimization changes: live objects, cell edits, and how to undo both.

    ``new_source``/``diff``/``target`` describe the first (main) edit; ``edits``
    holds every cell edited (the cell that built a DataLoader and the loop that
    uses it may differ). ``snippet`` is set when the code pattern was not
    recognised: the code to add by hand, since guessing could lose user code.
    """

    optimization: str
    description: str
    edits: list[Edit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snippet: str | None = None
    #: Why the code was not rewritten, where ``snippet`` is set: the pattern was not found where it was looked
    #: for, or it was found and no edit of it is sure to do the same (rewrite.NoRewrite).
    snippet_reason: str | None = None
    numerics: NumericsResult | None = None
    #: The parameters used, defaults resolved.
    params: dict[str, Any] = field(default_factory=dict)
    #: ``preview``, ``applied``, ``already applied``, ``reverted`` (numerics guard), ``refused`` (the notebook
    #: refused a cell edit after the commit, so the live part was taken back) or ``undone``.
    status: str = "preview"
    #: Throughput ratio after/before once re-measured (remeasure.py); < 1 is a regression.
    remeasured: float | None = None
    #: The measured curve where ``jupyter_perf.tune`` chose the value (tune.py).
    tuning: Tuning | None = None
    _live: LiveStep | None = field(default=None, repr=False)
    #: Namespace bindings the plan was computed for: commit refuses if one changed since.
    _expects: dict[str, Any] = field(default_factory=dict, repr=False)
    _undo: Undo = field(default_factory=Undo, repr=False)
    _published: bool = field(default=False, repr=False)
    _namespace: dict[str, Any] | None = field(default=None, repr=False)
    #: The notebook's answers to the published edits, and how many it was asked.
    _answers: dict[Edit, dict[str, Any]] = field(default_factory=dict, repr=False)
    _asked: int = field(default=0, repr=False)
    _listeners: list[Callable[[Change], None]] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------ the edit
    @property
    def target(self) -> Target | None:
        return self.edits[0].target if self.edits else None

    @property
    def new_source(self) -> str | None:
        return self.edits[0].new_source if self.edits else None

    @property
    def diff(self) -> str:
        return "".join(edit.diff for edit in self.edits)

    def rewritten(self, cell: str | Target) -> str | None:
        """The new text of ``cell``'s code if this Change edits exactly that code, else None."""
        source = cell.source if isinstance(cell, Target) else cell
        return next((e.new_source for e in self.edits if e.target.source == source), None)

    # ------------------------------------------------------------ lifecycle
    def commit(self, publish: bool = True) -> Change:
        """Make the change live (guarded), then request the cell edits. A no-op unless previewed.

        ``publish=False``: the frontend already made the edits (a panel button the JupyterLab
        extension took, docs/labextension.md); requesting them again would be refused as stale.
        """
        if self.status != "preview":
            return self
        if publish:  # (else the frontend has just checked each cell's text itself)
            refuse_edited_cells(self.edits)
        if self._namespace is not None:
            stale = [n for n, obj in self._expects.items() if self._namespace.get(n) is not obj]
            if stale:
                raise NotApplicable(f"{', '.join(stale)} changed since this change was planned; plan it again")
        try:
            self.numerics = self._live(self._undo) if self._live is not None else None
        except BaseException:
            self._undo.run()
            raise
        if self.numerics is not None and not self.numerics.passed:
            self._undo.run()
            self.status = "reverted"
            self.description = f"Reverted: {self.numerics.summary}. Not applied: {self.description}"
            return self
        self.status = "applied"
        state.current().applied.append(self)
        if not publish:
            self._published = True
        elif _in_ipython():
            self._publish(reverse=False)
        return self

    def undo(self, publish: bool = True) -> None:
        """Restore the live objects and request the exact original cell text; twice is harmless.

        ``publish=False``: the frontend already restored the text (as for ``commit``).
        """
        if self.status != "applied":
            return
        self._undo.run()
        if self._published and publish:
            self._publish(reverse=True)
        self._published = False
        self.status = "undone"
        if self in state.current().applied:
            state.current().applied.remove(self)

    def watch(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener(change)`` if the change is taken back after its commit (status ``refused``)."""
        self._listeners.append(listener)

    def _publish(self, reverse: bool) -> None:
        channel = state.current().channel
        self._published = not reverse  # first: an answer may come back while the requests go out
        if reverse:
            for edit in reversed(self.edits):
                _request_original(edit)
        else:
            self._answers = {}
            self._asked = sum(channel.reaches(edit.target.cell_id) for edit in self.edits)
            for edit in self.edits:
                channel.request_edit(edit.target.cell_id, edit.target.text, edit.new_text,
                                     partial(self._answered, edit), label=edit.target.label)

    def _answered(self, edit: Edit, result: dict[str, Any]) -> None:
        """The notebook's answer to one published edit; once all are in, a refusal takes the change back."""
        self._answers[edit] = result
        refused = {e: r for e, r in self._answers.items() if not r["ok"]}
        if refused and len(self._answers) == self._asked and self.status == "applied":
            self._take_back(refused)

    def _take_back(self, refused: dict[Edit, dict[str, Any]]) -> None:
        """Put the live objects back, and the cells the notebook did rewrite, so objects and code agree; say so."""
        self._undo.run()
        for edit, result in self._answers.items():
            if result["ok"]:
                _request_original(edit)
        why = "; ".join(f"{e.target.label}: {r['reason'] or 'refused'}" for e, r in refused.items())
        self.status, self._published = "refused", False
        if self in state.current().applied:
            state.current().applied.remove(self)
        self.description = f"Taken back: the notebook did not rewrite the code ({why}). Not applied: {self.description}"
        state.current().channel.tell(f"jupyter-perf: {self.optimization} was taken back: the notebook did not rewrite "
                                     f"the code ({why}), so the live objects were put back to match it. Run the cell "
                                     "as it is now and profile again to apply it to the new code.")
        for listener in self._listeners:
            listener(self)

    # ------------------------------------------------------------ display
    def summary(self, diff: bool = True) -> str:
        """Status, description, warnings, guard verdict, then the diff (``diff=False``: where it is shown apart)."""
        lines = [f"{self.optimization} [{self.status}]: {self.description}"]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.numerics is not None:
            lines.append(f"numerics: {self.numerics.summary}")
        if self.remeasured is not None:
            lines.append(f"re-measured: ×{self.remeasured:.2f}")
        if self.tuning is not None:
            lines += [f"tuned on {self.tuning.how}:", self.tuning.table()]
        if diff and self.diff:
            lines.append(self.diff.rstrip("\n"))
        if self.snippet:
            why = f" ({self.snippet_reason})" if self.snippet_reason else ""
            lines += [f"code not rewritten{why}; add by hand:", self.snippet.rstrip("\n")]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Change {self.optimization} [{self.status}]: {self.description}>"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        text = self.summary()
        return {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


# ------------------------------------------------------------------ planning
class Context:
    """What a plan is computed from: the namespace, the cell, the report, the parameters.

    ``rewrite`` applies a text transformation to the first candidate cell where
    it finds its pattern; rewrites of the same cell chain, so two changes to one
    cell make one edit. Where none is rewritten, ``why_not`` says why, for the
    snippet shown instead.
    """

    def __init__(self, opt: Optimization, namespace: dict[str, Any], cell: Target | None, report: Report | None,
                 params: dict[str, Any]):
        self.opt = opt
        self.namespace = namespace
        self.cell = cell
        self.report = report
        self._given = params
        self.params: dict[str, Any] = {}
        self._texts: dict[Target, str] = {}
        #: Why the latest ``rewrite`` rewrote nothing (None after one that did).
        self.why_not: str | None = None

    def given(self, name: str) -> Any:
        """The value passed (or recommended) for ``name``, None where the default will be chosen."""
        return self._given.get(name)

    def param(self, name: str, default: Callable[[], Any]) -> Any:
        """The given (or recommended) value of ``name``, else its machine-chosen default; recorded."""
        value = self._given[name] if self._given.get(name) is not None else default()
        self.params[name] = value
        return value

    def targets(self, name: str | None = None) -> list[Target]:
        """Cells to look in: the cell given, then the cell that defined ``name`` (cells.py)."""
        found = [self.cell] if self.cell is not None else []
        record = state.current().defining(name) if name else None
        if record is not None and record.target() not in found:
            found.append(record.target())
        return found

    def rewrite(self, targets: list[Target], transform: Callable[[str], str | None],
                what: str = "the code this change rewrites") -> Target | None:
        """Rewrite the first target ``transform`` recognises (it returns None where it does not, and raises
        NoRewrite where it cannot edit what it found); else None, with ``why_not`` saying why (``what``: the
        pattern, in words)."""
        from .rewrite import NoRewrite

        refused = []
        for target in targets:
            try:
                new = transform(self._texts.get(target, target.source))
            except NoRewrite as exc:
                refused.append(f"{target.label}: {exc}")
                continue
            if new is not None:
                self._texts[target] = new
                self.why_not = None
                return target
        looked = " or ".join(t.label for t in targets)
        self.why_not = "; ".join(refused) or (f"{what} was not found in {looked}" if targets else
                                              f"no cell was given to look for {what} in")
        return None

    def has_edits(self) -> bool:
        return any(text != t.source for t, text in self._texts.items())

    def change(self, description: str, live: LiveStep | None = None, warnings: list[str] | None = None,
               snippet: str | None = None, expects: dict[str, Any] | None = None,
               snippet_reason: str | None = None) -> Change:
        """The Change planned; a ``snippet``'s reason defaults to why the latest rewrite rewrote nothing."""
        edits = [Edit(t, text) for t, text in self._texts.items() if text != t.source]
        refuse_edited_cells(edits)
        return Change(self.opt.id, description, edits, list(warnings or []), snippet,
                      snippet_reason=(snippet_reason or self.why_not) if snippet else None, params=dict(self.params),
                      _live=live, _expects=dict(expects or {}), _namespace=self.namespace)

    def unchanged(self, description: str) -> Change:
        """Nothing to do: the live objects and the code already have this optimization."""
        return Change(self.opt.id, f"Already applied: {description}", params=dict(self.params),
                      status="already applied")


class Optimization:
    """One optimization: subclasses set the class attributes and implement ``plan``.

    ``params`` documents each parameter and how its default is chosen; a value
    passed by the caller wins, then the one the report's recommendation
    proposes, then the machine-chosen default.
    """

    #: Its declaration in the catalog (catalog.py), which its id, title and numerics flag come from.
    entry: ClassVar[Entry]
    id: ClassVar[str]
    title: ClassVar[str]
    #: True where outputs may differ (AMP, TF32, quantization, pruning, compile): commit runs the guard.
    changes_numerics: ClassVar[bool] = False
    params: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        entry = cls.__dict__.get("entry")
        if entry is not None:
            cls.id, cls.title, cls.changes_numerics = entry.id, entry.title, entry.changes_numerics

    def plan(self, ctx: Context) -> Change:
        """Compute the Change without touching anything; raise NotApplicable with the reason."""
        raise NotImplementedError

    def preview(self, namespace: dict[str, Any], cell: str | Target | None = None, report: Report | None = None,
                **params: Any) -> Change:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(self.params) or "none"
            raise TypeError(f"{self.id} takes no parameter {', '.join(unknown)} (valid: {valid})")
        given = {**self._recommended(report), **params}
        return self.plan(Context(self, namespace, state.current().target(cell), report, given))

    def apply(self, namespace: dict[str, Any], cell: str | Target | None = None, report: Report | None = None,
              **params: Any) -> Change:
        return self.preview(namespace, cell, report, **params).commit()

    def applicable(self, report: Report | None, namespace: dict[str, Any], **params: Any) -> str | None:
        """None when the optimization can act here, else the reason it cannot."""
        try:
            self.preview(namespace, report=report, **params)
        except NotApplicable as exc:
            return str(exc)
        return None

    def _recommended(self, report: Report | None) -> dict[str, Any]:
        rec = next((r for r in report.recommendations if r.optimization == self.id), None) if report else None
        return {k: v for k, v in rec.params.items() if k in self.params} if rec else {}


# ------------------------------------------------------------------ helpers
def _request_original(edit: Edit) -> None:
    """Ask the notebook to put ``edit``'s cell back to the text the edit was computed from."""
    state.current().channel.request_edit(edit.target.cell_id, edit.new_text, edit.target.text,
                                         label=edit.target.label)


def refuse_edited_cells(edits: list[Edit]) -> None:
    """Raise NotApplicable where the notebook reports that a cell to edit no longer holds the text the edit
    was computed from (the user edited it without running it): applying would change the objects for code
    the cell does not hold, and the notebook would refuse the edit anyway."""
    channel = state.current().channel
    edited = [e.target.label for e in edits if channel.edited_since_run(e.target.cell_id, e.target.text)]
    if edited:
        raise CellEdited(f"{', '.join(edited)} was edited since it ran, so nothing was changed: run it as it is "
                         "now and profile again to apply the fix to the new code")


def find_object(namespace: dict[str, Any], kind: type | tuple[type, ...], what: str, name: str | None = None,
                preferred: list[str] | tuple[str, ...] = ()) -> tuple[str, Any]:
    """The (name, object) to act on: ``name`` if given, else a preferred name, else the only one.

    Several candidates and no way to choose is NotApplicable: acting on the
    wrong object would be a guess.
    """
    if name is not None:
        value = namespace.get(name)
        if not isinstance(value, kind):
            held = "nothing" if value is None else f"a {type(value).__name__}"
            raise NotApplicable(f"{name!r} holds {held}, not a {what}")
        return name, value
    found: dict[int, str] = {}
    for key, value in namespace.items():
        if not key.startswith("_") and isinstance(value, kind):
            found.setdefault(id(value), key)
    names = list(found.values())
    for key in preferred:
        if key in names:
            return key, namespace[key]
    if len(names) == 1:
        return names[0], namespace[names[0]]
    if not names:
        raise NotApplicable(f"no {what} is bound to a name in the namespace")
    raise NotApplicable(f"several {what}s ({', '.join(names)}): pass name= to choose one")


def rebind(namespace: dict[str, Any], old: Any, new: Any, undo: Undo) -> list[str]:
    """Point every public name bound to ``old`` at ``new``; the undo points them back."""
    names = [k for k, v in namespace.items() if v is old and not k.startswith("_")]
    for key in names:
        namespace[key] = new
    undo.push(lambda: namespace.update(dict.fromkeys(names, old)))
    return names


def report_names(report: Report | None, signal: str, order: str | None = None) -> list[str]:
    """Names of the objects a report's signal lists (``dataloaders``, ``models``), largest ``order`` first."""
    entries = list((report.signals.get(signal) or []) if report else [])
    if order:
        entries.sort(key=lambda e: e.get(order) or 0, reverse=True)
    return [e["name"] for e in entries if e.get("name")]


def torch_name(namespace: dict[str, Any]) -> str:
    """The name the notebook uses for torch (``torch``, or an alias), for the code written into it."""
    torch = sys.modules["torch"]
    if namespace.get("torch") is torch:
        return "torch"
    alias = next((k for k, v in namespace.items() if v is torch and not k.startswith("_")), None)
    if alias is None:
        raise NotApplicable("torch is not imported in the namespace: the rewritten code could not name it")
    return alias
