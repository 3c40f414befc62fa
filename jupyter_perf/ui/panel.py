"""The optimization panel: under a profiled cell, one card per recommendation, with Apply, Apply & re-run, Undo,
and Tune where the optimization has a value to measure (optimizations/tune.py).

A card shows what the optimization would change, why (the recommendation's
reason and its numbers), the expected gain and the diff it would apply; the
diff is the one applied, because the button carries exactly those edits.
Tune carries no edits: the value is not known until measured, so the kernel
publishes the tuned change's edits itself (as for a click without the
extension), and the card then shows the measured curve.

A click travels one of two ways (docs/labextension.md):

* **The JupyterLab extension takes it** (``dispatchEvent`` returns false): it
  makes the code edits at once, even while a cell runs, and later calls
  :func:`panel_action` with ``edit_results``. The kernel then does the live
  part only (``Change.commit(publish=False)``), and where an edit was refused
  it leaves the objects alone, so code and objects never disagree.
* **No extension** (VS Code, Colab, classic Notebook): the view sends a widget message
  and the kernel commits with publishing; ``frontend.py`` shows the code to
  paste. What that prints or displays lands in an Output under the panel,
  since a widget message belongs to no cell.

A saved notebook keeps a static record of the panel next to the widget
view, in the same output: what was recommended, what was applied, the
before/after of a re-run (``text/html`` and ``text/plain``, for nbconvert,
GitHub or a frontend without widgets). JupyterLab would rather draw the view
and say "model not found" once the kernel is gone, so the output also
carries ``application/vnd.jupyter-perf.panel+json``: the extension's renderer
shows the live widget while its kernel has it and the record otherwise, and
writes each new record the view announces into the output, so the file
always holds the panel's last state (docs/labextension.md).

Either way the kernel hears the click only once the running cell has ended;
the card says "queued" until then, "running" while the kernel carries it out.
Panels are found by a token in the click's payload; only the latest few keep
their Report, plans and namespace alive (an old plan can hold a replaced
model and its memory), older ones say to profile again.

The view is TypeScript (``labextension/src/panel/``) bundled by the package's
build into one self-contained ES module, ``static/panel.js``, its CSS
``static/panel.css``. It also draws the top card's Apply and Apply & re-run
into the verdict box at the top of the summary (``verdict.py``), so the answer
and its fix are the first thing under the cell.

Imports anywidget and ipywidgets: imported only where widgets can show.
"""

from __future__ import annotations

import dataclasses
import html
import secrets
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets
from IPython.display import display

from .. import state
from ..cells import Target
from ..frontend import sha256
from ..optimizations import NotApplicable, applied, get
from ..optimizations.base import CellEdited, Change
from ..optimizations.remeasure import remeasure
from ..optimizations.tune import KNOBS, Tuning, tune
from ..report import Comparison, Recommendation, Report
from ..runs import run
from . import comparison as comparison_view
from . import verdict
from .summary import CSS as SUMMARY_CSS

_STATIC = Path(__file__).with_name("static")
_ESM = _STATIC / "panel.js"
if not _ESM.exists():  # a checkout nobody built: the magic says the panel failed, the summary lists the fixes
    raise ImportError(f"{_ESM} is not built: `pip install -e .` (or `npm run build` in labextension/) builds it")
CSS = (_STATIC / "panel.css").read_text(encoding="utf-8")

ACTIONS = ("apply", "apply-rerun", "undo", "tune")
#: Panels whose buttons work; older ones let go of their Report, plans and namespace.
KEEP = 8
#: The head of the panel's static record, what a saved notebook shows where the widget cannot be drawn.
TEXT = ("jupyter-perf optimization panel — a record; its buttons need a widget frontend and the kernel that "
        "profiled this cell (profile it again for working ones)")
#: The output's own mime type: the extension's renderer picks the live widget or the record (module docstring).
MIME = "application/vnd.jupyter-perf.panel+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: What a card's state says in the record where the last click left no message.
STATE_WORDS = {"ready": "not applied"}
GONE = ("jupyter-perf: this panel has expired (the cell was profiled again, newer panels replaced it, or the "
        "kernel restarted): profile the cell again for a working one")

def show_panel(report: Report, namespace: dict[str, Any], source: str) -> OptimizationPanel:
    """Display the panel for the cell whose code is ``source`` (the profiled cell), with an Output under it."""
    panel = OptimizationPanel(report, namespace, state.current().target(source))
    view = ipywidgets.VBox([panel, panel.output])._repr_mimebundle_()[WIDGET_VIEW]
    display({WIDGET_VIEW: view, MIME: view, **panel.record}, raw=True)
    return panel


def panel_action(payload: dict[str, Any]) -> None:
    """A click the JupyterLab extension took and queued until the kernel was idle (``jupyter_perf.panel_action``)."""
    panel = state.current().panels.get(payload.get("token", ""))
    if panel is None:
        print(GONE, file=sys.stderr)
        return
    panel.handle(payload)


@dataclass
class Card:
    """One recommendation: its plan (or applied Change), why Apply is off, and what the last click did."""

    rec: Recommendation
    change: Change | None = None
    blocked: str | None = None
    state: str = "ready"
    message: str = ""
    #: Clicks handled so far: the view shows "queued" until this passes the count it clicked at.
    handled: int = 0
    #: The kernel is carrying out a click on this card now (the view says "running").
    running: bool = False
    #: The before/after of the last re-run; marked out of date once the change is undone.
    comparison: Comparison | None = None
    #: The curve of the last Tune click: kept here, the Change may be planned again (current value best).
    tuning: Tuning | None = None
    #: Its plan was refused because a cell it edits was edited since it ran: planned again after a cell runs.
    waits_for_run: bool = False


class OptimizationPanel(anywidget.AnyWidget):
    """The cards of one profiled run's recommendations; the kernel side keeps each card's plan or applied Change.

    The view only draws ``cards`` and reports clicks; every decision (what a
    button does, whether it is on, which edits it carries) is made here.
    """

    _esm = _ESM.read_text(encoding="utf-8")
    _css = CSS

    token = traitlets.Unicode("").tag(sync=True)
    #: When the run started (``Report.started_at``): the view finds the summary's verdict box by it.
    started = traitlets.Unicode("").tag(sync=True)
    #: One dict per card, what the view draws (``_view``); actions carry the edits a click makes.
    cards: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    #: The static record of ``cards``, ``{"text/html": ..., "text/plain": ...}``: what a saved notebook shows.
    record = traitlets.Dict().tag(sync=True)

    def __init__(self, report: Report, namespace: dict[str, Any], cell: Target) -> None:
        super().__init__(token=secrets.token_hex(8), started=report.started_at)
        self.report: Report | None = report
        self.namespace: dict[str, Any] | None = namespace
        #: The profiled cell as its text now is (applied changes rewrite it): plans and re-runs start from here.
        self.cell = cell
        self.output = ipywidgets.Output()
        self._cards = {r.optimization: Card(r) for r in report.recommendations}
        #: Texts the browser was told to replace, by SHA-256: what a refused action puts back.
        self._texts: dict[str, str] = {}
        self.on_msg(self._on_msg)
        self._shell = state.current().shell
        if self._shell is not None:  # a card waiting for an edited cell to run is planned again after it runs
            self._shell.events.register("post_run_cell", self._cell_ran)
        self._refresh()
        _register(self)

    def __repr__(self) -> str:
        return TEXT

    # ------------------------------------------------------------ clicks
    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A click no extension took: what it prints and displays goes to the Output under the panel."""
        if isinstance(content, dict):
            with self.output:
                self.handle(content)

    def handle(self, payload: dict[str, Any]) -> None:
        """Carry out one click; ``edit_results`` in ``payload`` means the browser already made its edits."""
        card = self._cards.get(payload.get("optimization", ""))
        action = payload.get("action")
        if card is None or action not in ACTIONS:
            print(GONE if not self._cards else f"jupyter-perf: this panel has no {action!r} for "
                  f"{payload.get('optimization')!r}", file=sys.stderr)
            return
        self._note_edits(payload)
        card.running = True
        self._show()  # sent at once: the view says "running" while the kernel works
        try:
            self._act(card, action, payload)
        except Exception as exc:  # noqa: BLE001 - the card says what went wrong; the kernel and the panel carry on
            wanted = "undone" if action == "undo" else "applied"
            if card.change is None or card.change.status != wanted:  # the objects did not move: nor may the code
                self._restore(payload)
            if isinstance(exc, NotApplicable):  # the namespace moved since the plan: the card shows a fresh one
                self._outcome(card, "refused", f"not done: {exc}; planned again: check the diff and click again")
            else:
                self._outcome(card, "error", f"{action} failed: {type(exc).__name__}: {exc}")
        finally:
            card.handled += 1
            card.running = False
            self._refresh()

    def _act(self, card: Card, action: str, payload: dict[str, Any]) -> None:
        change = card.change
        if action == "apply" and change is not None and change.status == "applied":
            self._restore(payload)
            self._outcome(card, "applied", "already applied: nothing more to do")
            return
        if payload.get("edits", []) != self._edits(card, action):
            self._refuse(card, payload, "the plan changed before the click reached the kernel (another change "
                         "came first): check the new diff and click again")
            return
        if change is None or (card.blocked and action != "undo"):
            self._refuse(card, payload, card.blocked or "nothing to apply")
            return
        results = payload.get("edit_results") or []
        if refused := [r for r in results if not r.get("ok")]:  # the code did not change (or only partly): the
            self._refuse(card, payload, self._refusal(change, refused))  # objects must not either
            return
        if action == "tune":
            self._tune(card)
            return
        publish = not results  # the browser made no edits: the kernel asks for them (or shows the code)
        pasted = publish and not all(state.current().channel.reaches(edit.target.cell_id) for edit in change.edits)
        if action == "undo":
            change.undo(publish=publish)
            self._follow(change, undo=True)
            if card.comparison is not None:
                card.comparison.outdated = "the change was undone"
            self._outcome(card, "undone", "undone: the objects are back; paste the original code shown below"
                          if pasted else "undone: the objects and the original code are back")
            return
        if change.status != "applied":
            if publish:  # the notebook answers later: a refusal takes the change back
                change.watch(partial(self._taken_back, card))
            change.commit(publish=publish)
            if change.status == "reverted":  # the numerics guard put the objects back: the code goes back too
                self._restore(payload)
                self._outcome(card, "reverted", change.description)
                return
            self._follow(change)
            self._outcome(card, "applied", "applied to the live objects; paste the new code shown below"
                          if pasted else "applied: the live objects and the code have it")
        if action == "apply-rerun":
            self._rerun(card)

    def _tune(self, card: Card) -> None:
        """Measure the knob's values on the profiled cell, apply the best, show the curve (tune.py).

        The kernel publishes the edits (the click carried none: the value was
        not known); Ctrl-C (interrupting the kernel) stops it with nothing
        changed, and the card says so.
        """
        assert self.namespace is not None  # a released panel's buttons are off
        try:
            change = tune(card.rec.optimization, self.namespace, self.cell, self.report)
        except KeyboardInterrupt:
            self._outcome(card, "refused", "tuning interrupted: the loader and the code are as they were")
            return
        tuning = card.tuning = change.tuning
        assert tuning is not None  # tune() always says what it measured
        card.change = change
        if change.status != "applied":  # the current value measured fastest
            self._outcome(card, "tuned", f"tuned: {tuning.param}={tuning.chosen}, the current value, measured "
                          "fastest: nothing to change")
            return
        change.watch(partial(self._taken_back, card))  # the notebook answers the published edits later
        self._follow(change)
        gain = f", ×{tuning.gain:.2f} in the trials" if tuning.gain else ""
        pasted = not all(state.current().channel.reaches(edit.target.cell_id) for edit in change.edits)
        self._outcome(card, "applied", f"tuned: {tuning.param}={tuning.chosen} applied{gain}" +
                      ("; paste the new code shown below" if pasted else ""))

    def _rerun(self, card: Card) -> None:
        """Profile the profiled cell again as it now is, as IPython would run it (``remeasure``).

        The card shows the Comparison, judged by what the optimization targets (report.Comparison), and the
        record keeps it.
        """
        assert card.change is not None and self.namespace is not None and self.report is not None
        card.comparison = comparison = remeasure(card.change, self.namespace, self.cell, self.report, run)
        judged = comparison.judged()
        if judged is None:
            self._outcome(card, "remeasured", "re-measured: the runs share no metric to compare")
            return
        said = f"re-measured: {judged.name} {comparison_view.change(judged)}"
        if comparison.regression:
            self._outcome(card, "regression", f"{said}, worse beyond the noise: a regression; Undo puts the objects "
                          "and the code back")
        else:
            self._outcome(card, "remeasured", f"{said}, {comparison_view.VERDICT_WORDS[judged.verdict]}")

    def _refuse(self, card: Card, payload: dict[str, Any], why: str) -> None:
        """Leave the objects as they are, put back any cell the browser rewrote for this click, and say why (on the
        card: once, where the click was)."""
        self._restore(payload)
        self._outcome(card, "refused", f"not done: {why}")

    @staticmethod
    def _refusal(change: Change, refused: list[dict[str, Any]]) -> str:
        """Why the browser refused the edits, naming each cell as its prompt does and saying what works."""
        labels = {e.target.cell_id: e.target.label for e in change.edits}
        cells = ", ".join(dict.fromkeys(labels.get(r.get("cell_id"), "a cell") for r in refused))
        return (f"{cells} changed since it was profiled, so nothing was changed; run it as it is now and profile "
                "again to apply the fix to the new code")

    def _taken_back(self, card: Card, change: Change) -> None:
        """The notebook refused an edit the kernel published for ``card``: the change took itself back."""
        self._follow(change, undo=True)
        self._outcome(card, "refused", change.description)
        self._refresh()

    @staticmethod
    def _outcome(card: Card, state: str, message: str) -> None:
        card.state, card.message = state, message

    # ------------------------------------------------------------ code kept in step
    def _follow(self, change: Change, undo: bool = False) -> None:
        """Keep ``self.cell`` at the profiled cell's current text as changes rewrite it and undo."""
        for edit in change.edits:
            rewritten = dataclasses.replace(edit.target, source=edit.new_source)
            before, after = (rewritten, edit.target) if undo else (edit.target, rewritten)
            if self.cell == before:
                self.cell = after

    def _note_edits(self, payload: dict[str, Any]) -> None:
        """Tell frontend.py which cells the browser rewrote for this click, ahead of the notebook's own report."""
        for edit in _rewritten(payload):
            state.current().channel.edited(edit["cell_id"], edit["new_source"])

    def _restore(self, payload: dict[str, Any]) -> None:
        """Put back what the browser rewrote for a click the kernel did not carry out, so code and objects agree."""
        for edit in _rewritten(payload):
            old = self._texts.get(edit.get("expected_source_sha256", ""))
            if old is not None:
                state.current().channel.request_edit(edit["cell_id"], edit["new_source"], old)

    # ------------------------------------------------------------ plans and the view
    def _refresh(self) -> None:
        """Plan every card not applied again (the namespace and the code may have moved), then redraw."""
        for card in self._cards.values():
            if card.change is None or card.change.status != "applied":
                self._plan(card)
        self._show()

    def _show(self) -> None:
        """Send the view the cards as they stand, and the record of them."""
        with self.hold_sync():
            self.cards = [self._view(card) for card in self._cards.values()]
            self.record = record(self.cards, {c.rec.optimization: c.comparison for c in self._cards.values()})

    def _cell_ran(self, _result: Any = None) -> None:
        """A cell ran: the cards whose plan waited for an edited cell to run are planned again, on its new code."""
        waiting = [card for card in self._cards.values() if card.waits_for_run]
        for card in waiting:
            self._plan(card)
        if waiting:
            self._show()

    def _plan(self, card: Card) -> None:
        card.change, card.blocked, card.waits_for_run = None, None, False
        try:
            assert self.namespace is not None
            card.change = get(card.rec.optimization).preview(self.namespace, self.cell, self.report)
        except KeyError:
            card.blocked = "not a one-click change"
        except CellEdited as exc:
            card.blocked, card.waits_for_run = str(exc), True
        except NotApplicable as exc:
            card.blocked = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken optimization costs its card, not the panel
            card.blocked = f"could not plan it: {type(exc).__name__}: {exc}"
        else:
            card.blocked = self._stale(card.change)

    def _stale(self, change: Change) -> str | None:
        """Why ``change`` must not apply: it was planned on code that an applied change has rewritten.

        A cell other than the profiled one is planned on its text as it last
        ran (cells.py), which a rewrite does not update; applying on top of
        that text would drop the earlier change from the code.
        """
        targets = {edit.target for edit in change.edits}
        for other in applied():
            if other is not change and targets & {edit.target for edit in other.edits}:
                if other.optimization == change.optimization:
                    return "already applied (and not undone)"
                return (f"planned on code that {other.optimization} has rewritten since: run that cell and profile "
                        "again to apply it on top")
        return None

    def _edits(self, card: Card, action: str) -> list[dict[str, str | None]]:
        """The edits a click on ``action`` makes at once in the browser, in the extension's format.

        Empty where the click has no code to change, where its code is not
        known yet (Tune), or where a cell has no id (the kernel then publishes,
        and frontend.py shows the code).
        """
        change = card.change
        applied = change is not None and change.status == "applied"
        if change is None or action == "tune" or (action == "undo") != applied or any(
                e.target.cell_id is None for e in change.edits):
            return []
        pairs = ([(e, e.new_text, e.target.text) for e in reversed(change.edits)] if applied
                 else [(e, e.target.text, e.new_text) for e in change.edits])
        wire = []
        for edit, old, new in pairs:
            digest = sha256(old)
            self._texts[digest] = old
            wire.append({"cell_id": edit.target.cell_id, "expected_source_sha256": digest, "new_source": new})
        return wire

    def _view(self, card: Card) -> dict[str, Any]:
        change, rec = card.change, card.rec
        applied = change is not None and change.status == "applied"
        can_apply = change is not None and change.status == "preview" and card.blocked is None
        enabled = {"apply": can_apply, "apply-rerun": can_apply or applied, "undo": applied}
        if rec.optimization in KNOBS:  # measured values, where the plan stands and nothing is applied yet
            enabled["tune"] = change is not None and not applied and card.blocked is None
        state, message = card.state, card.message
        if change is not None and change.status == "already applied" and state == "ready":
            state, message = "already applied", change.description
        return {
            "id": rec.optimization,
            "title": verdict.title(rec.optimization),
            "reason": rec.reason,
            "gain": verdict.gain(rec),
            "estimated": rec.expected_speedup is not None or bool(rec.expected_freed_bytes),
            "description": change.description if change is not None else "",
            "diff": change.diff if change is not None else "",
            "snippet": change.snippet if change is not None else None,
            "snippet_reason": change.snippet_reason if change is not None else None,
            "curve": _curve(card.tuning),
            "warnings": list(change.warnings) if change is not None else [],
            "blocked": card.blocked,
            "state": state,
            "message": message,
            "handled": card.handled,
            "running": card.running,
            "cells": [{"cell_id": e.target.cell_id, "label": e.target.label} for e in change.edits] if change else [],
            "comparison": comparison_view.html(card.comparison, SUMMARY_CSS) if card.comparison else None,
            "actions": {a: {"enabled": on, "edits": self._edits(card, a) if on else []} for a, on in enabled.items()},
        }

    def retire(self) -> None:
        """Let go of the Report, the plans and the namespace; the cards stay, their buttons off."""
        if self._shell is not None:
            self._shell.events.unregister("post_run_cell", self._cell_ran)
            self._shell = None
        self.report = self.namespace = None
        self._cards = {}  # the record keeps what the cards said last
        self.cards = [{**view, "state": "expired", "message": GONE.removeprefix("jupyter-perf: "), "actions": {}}
                      for view in self.cards]


def _rewritten(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The edits of a click's payload that the browser carried out (its ``edit_results`` say ok)."""
    return [edit for edit, result in zip(payload.get("edits") or [], payload.get("edit_results") or [])
            if result.get("ok")]


# ---------------------------------------------------------------------- the record
def record(views: list[dict[str, Any]], compared: dict[str, Comparison | None]) -> dict[str, str]:
    """The static record of the cards ``views`` (``_view``) and their re-runs' before/after (``compared``).

    What a notebook opened without the kernel shows instead of the panel:
    for each recommendation, why, the expected gain, what became of it (the
    last click's message, else "not applied"), its code change and the
    before/after of a re-run (marked out of date once undone).
    """
    text, cards = [TEXT], []
    for view in views:
        status = _status(view)
        comparison = compared.get(view["id"])
        text += [f"* {view['id']} — {view['title']} ({view['gain']}): {view['reason']}", f"  {status}"]
        before_after = comparison_view.text(comparison) if comparison is not None else ""
        text += [f"  {line}" for line in (view["diff"] + before_after).splitlines()]
        if view.get("curve"):
            curve = view["curve"]
            text += [f"  measured: {curve['how']}", *(f"  {line}" for line in curve["table"].splitlines())]
        diff = (f"<details><summary>Code change</summary><pre>{html.escape(view['diff'])}</pre></details>"
                if view["diff"] else "")
        cards.append(
            f'<div class="jpp-card" data-recorded="{html.escape(view["id"])}" '
            f'data-state="{html.escape(view["state"])}">'
            f'<div class="jpp-head"><code>{html.escape(view["id"])}</code> <b>{html.escape(view["title"])}</b>'
            f'<span class="jpp-gain">{html.escape(view["gain"])}</span></div><div>{html.escape(view["reason"])}</div>'
            f'<div class="jpp-status">{html.escape(status)}</div>{diff}{_curve_html(view.get("curve"))}'
            f'{comparison_view.html(comparison) if comparison is not None else ""}</div>'
        )
    page = (f'<div class="jp-perf-panel jp-perf-panel-record"><style>{CSS}{SUMMARY_CSS}</style><h4>Optimizations</h4>'
            f'<div class="jpp-muted">{html.escape(TEXT.removeprefix("jupyter-perf optimization panel — "))}</div>'
            f'{"".join(cards)}</div>')
    return {"text/html": page, "text/plain": "\n".join(text)}


def _curve(tuning: Tuning | None) -> dict[str, Any] | None:
    """A Tune click's measured curve, for the view and the record."""
    if tuning is None:
        return None
    rows = [{"value": t.value, "samples_per_s": t.samples_per_s, "chosen": t.value == tuning.chosen,
             "current": t.value == tuning.current,
             "note": " · ".join(n for n in (f"{t.runs} runs, {t.spread:.0%} apart" if t.spread is not None else "",
                                            t.note) if n)}
            for t in tuning.trials]
    return {"param": tuning.param, "how": tuning.how, "rows": rows, "table": tuning.table()}


def _curve_html(curve: dict[str, Any] | None) -> str:
    """The measured curve as a small table, for the record."""
    if not curve:
        return ""
    rows = []
    for row in curve["rows"]:
        rate = "—" if row["samples_per_s"] is None else f"{row['samples_per_s']:.0f}"
        mark = "← chosen" if row["chosen"] else "(current)" if row["current"] else ""
        note = " · ".join(part for part in (mark, row["note"]) if part)
        chosen = ' class="jpp-chosen"' if row["chosen"] else ""
        rows.append(f"<tr{chosen}><td>{row['value']}</td><td>{rate}</td><td class=\"jpp-note\">{html.escape(note)}</td>"
                    "</tr>")
    return (f'<table class="jpp-curve" title="{html.escape(curve["how"])}"><tr><th>{html.escape(curve["param"])}</th>'
            f'<th>samples/s</th><th></th></tr>{"".join(rows)}</table>')


def _status(view: dict[str, Any]) -> str:
    """What became of a card, in words: the last click's message, else why it cannot apply, else its state."""
    if view["message"]:
        return view["message"]
    if view["blocked"]:
        return f"not applied: {view['blocked']}"
    return STATE_WORDS.get(view["state"], view["state"])


def _register(panel: OptimizationPanel) -> None:
    """Keep ``panel`` reachable by its token; retire the one it replaces (same cell) and the oldest beyond KEEP."""
    cell_id, panels = panel.cell.cell_id, state.current().panels
    for token, old in list(panels.items()):
        if cell_id is not None and old.cell.cell_id == cell_id:
            del panels[token]
            old.retire()
    panels[panel.token] = panel
    while len(panels) > KEEP:
        panels.popitem(last=False)[1].retire()
