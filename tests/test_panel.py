"""The optimization panel without a browser: its cards, and both ways a click reaches the kernel.

A real profiled report of the planted input pipeline (tests/scenarios.py), its
DataLoader built in a setup cell of its own, in an IPython shell that tracks
cells by id. The widget message (no JupyterLab extension) and
``jupyter_perf.panel_action`` (the extension made the edits already) are
driven as the browser would drive them; ``FakeNotebook`` plays the notebook
behind the cell-edit channel. The browser itself is in tests/ui/test_panel_browser.py.
"""

from __future__ import annotations

import _thread
import dataclasses
import gc
import threading

import pytest
import torch
from conftest import run_setup
from optimization_fixtures import FakeNotebook, notebook_fixture  # noqa: F401  (the ``notebook`` fixture)
from scenarios import INPUT_PIPELINE
from test_optimizations_base import AnsweringNotebook

import jupyter_perf
from jupyter_perf import cells, frontend, state
from jupyter_perf.optimizations import applied
from jupyter_perf.optimizations import tune as tune_module
from jupyter_perf.optimizations.base import Target
from jupyter_perf.optimizations.guard import NumericsResult
from jupyter_perf.report import Comparison, Recommendation
from jupyter_perf.ui import frontend_detect
from jupyter_perf.ui import panel as panel_module
from jupyter_perf.ui.panel import OptimizationPanel

PROFILED = "%%perfprofile --no-live -o rep\n" + INPUT_PIPELINE.cell
WORKERS = "dataloader.workers"
OLD_LOADER = "loader = DataLoader(SlowDataset(), batch_size=8)"
NEW_LOADER = "loader = DataLoader(SlowDataset(), batch_size=8, num_workers=2, persistent_workers=True)"
CHANGED = "the cell changed since it was profiled — nothing was rewritten"


@pytest.fixture(scope="module")
def profiled(ipython):
    """The setup cell and the profiled cell run once, by id; the namespace is emptied after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # time the planted problem, not OpenMP on a busy two-core machine
    before = set(ipython.user_ns)
    assert ipython.run_cell(INPUT_PIPELINE.setup, store_history=True, cell_id="setup").success  # as a notebook runs it
    assert ipython.run_cell(PROFILED, cell_id="loop").success
    report, loop = ipython.user_ns["rep"], state.current().running_cell().target()
    assert report.recommended()[0] == WORKERS
    yield report, loop
    for panel in list(state.current().panels.values()):
        panel.retire()
    state.current().panels.clear()
    for name in set(ipython.user_ns) - before:
        del ipython.user_ns[name]
    gc.collect()
    torch.set_num_threads(threads)


@pytest.fixture()
def panel(profiled, ipython):
    """A fresh panel on the profiled report; whatever a test applied is undone after it."""
    report, loop = profiled
    yield OptimizationPanel(report, ipython.user_ns, loop)
    for change in applied():
        change.undo(publish=False)


@pytest.fixture(autouse=True)
def fresh_sources():
    """What the notebook reported of its cells belongs to one test (the fake notebook reports nothing)."""
    yield
    state.current().channel.sources.clear()


@pytest.fixture()
def book(notebook):
    """The fake notebook holding the two cells as they ran."""
    notebook.add("setup", INPUT_PIPELINE.setup)
    notebook.add("loop", PROFILED)
    return notebook


def setup_label() -> str:
    """The setup cell as the panel names it: by its prompt's number (``cell [3]``), never by its internal id."""
    label = state.current().defining("loader").target().label
    assert label.startswith("cell [") and "setup" not in label
    return label


def card(panel: OptimizationPanel, opt_id: str = WORKERS) -> dict:
    return next(c for c in panel.cards if c["id"] == opt_id)


def click(panel: OptimizationPanel, action: str, opt_id: str = WORKERS) -> dict:
    """The event detail a button carries, as the view builds it from the card it drew."""
    edits = card(panel, opt_id)["actions"][action]["edits"]
    return {"action": action, "optimization": opt_id, "token": panel.token, "edits": edits}


def by_widget(panel: OptimizationPanel, detail: dict) -> None:
    """No extension took the click: the view sends it on the widget's comm."""
    panel._on_msg(panel, detail, [])


def by_extension(book: FakeNotebook, detail: dict, refuse: str | None = None) -> list[dict]:
    """The extension's part: the edits now, under the hash rule (or refused), then ``panel_action`` with the results."""
    results = []
    for edit in detail["edits"]:
        current = book.cells[edit["cell_id"]]
        ok = refuse is None and frontend.sha256(current) == edit["expected_source_sha256"]
        if ok:
            book.cells[edit["cell_id"]] = edit["new_source"]
        results.append({"cell_id": edit["cell_id"], "ok": ok, "reason": "" if ok else refuse or CHANGED})
    jupyter_perf.panel_action({**detail, "edit_results": results, "source_cell_id": "loop"})
    return results


# ------------------------------------------------------------------ the cards

def remeasured_as(ratio: float):
    """A stand-in for ``remeasure`` whose re-run measured ``ratio`` times the throughput of the run before."""

    def remeasure(change, namespace, cell, report, profile):
        after = dataclasses.replace(report, throughput={k: v * ratio for k, v in report.throughput.items() if v},
                                    step_time_total=report.step_time_total / ratio)
        change.remeasured = ratio
        return Comparison(report, after, change.optimization)

    return remeasure


def test_a_card_shows_what_why_the_gain_and_the_diff_it_applies(panel, profiled):
    report, _ = profiled
    shown = card(panel)
    assert shown["title"] == "Load batches in worker processes"
    assert shown["reason"] == report.recommendations[0].reason and "num_workers=0" in shown["reason"]
    assert shown["gain"] == f"expected ×{report.recommendations[0].expected_speedup:.2f}" and shown["estimated"]
    assert "num_workers 0 → 2" in shown["description"]
    assert f"+{NEW_LOADER}" in shown["diff"] and f"--- a/{setup_label()}" in shown["diff"]
    assert shown["cells"] == [{"cell_id": "setup", "label": setup_label()}]  # linked, named as the prompt shows it
    edits = shown["actions"]["apply"]["edits"]  # the DataLoader's own cell, not the profiled one
    assert edits == [{"cell_id": "setup", "expected_source_sha256": frontend.sha256(INPUT_PIPELINE.setup),
                      "new_source": INPUT_PIPELINE.setup.replace(OLD_LOADER, NEW_LOADER)}]
    assert {a: v["enabled"] for a, v in shown["actions"].items()} == {"apply": True, "apply-rerun": True, "undo": False,
                                                                    "tune": True}
    assert shown["actions"]["tune"]["edits"] == []  # the value is measured first: the kernel publishes the edit


def test_an_optimization_that_cannot_apply_says_why_and_has_apply_off(profiled, ipython):
    report, loop = profiled
    extra = [Recommendation("dataloader.pin_memory", "copies wait", 1.2)]
    more = dataclasses.replace(report, recommendations=[*report.recommendations, *extra])
    panel = OptimizationPanel(more, ipython.user_ns, loop)
    pinned = card(panel, "dataloader.pin_memory")
    assert "CUDA" in pinned["blocked"]
    assert not any(v["enabled"] for v in pinned["actions"].values())


def test_code_it_cannot_rewrite_comes_as_a_snippet(profiled):
    """A DataLoader bound where no tracked cell builds it: the code to add by hand, no guess."""
    report, _ = profiled
    namespace = run_setup(INPUT_PIPELINE.setup.replace("loader", "feed"))
    panel = OptimizationPanel(report, namespace, Target(INPUT_PIPELINE.cell))
    shown = card(panel)
    assert shown["snippet"] and "feed = DataLoader(..., num_workers=2" in shown["snippet"] and not shown["diff"]


# ------------------------------------------------------------------ the widget message (no extension)
def test_widget_message_applies_publishes_the_edit_and_undo_restores_the_exact_text(panel, book, ipython):
    original, sent = ipython.user_ns["loader"], state.current().channel.requests
    by_widget(panel, click(panel, "apply"))
    assert ipython.user_ns["loader"] is not original and ipython.user_ns["loader"].num_workers == 2
    assert NEW_LOADER in book.cells["setup"] and state.current().channel.requests == sent + 1  # the kernel published it
    assert card(panel)["state"] == "applied" and card(panel)["actions"]["undo"]["enabled"]

    by_widget(panel, click(panel, "undo"))
    assert ipython.user_ns["loader"] is original
    assert book.cells["setup"] == INPUT_PIPELINE.setup and book.cells["loop"] == PROFILED  # byte for byte
    assert card(panel)["state"] == "undone" and card(panel)["actions"]["apply"]["enabled"]


def test_without_the_extension_the_code_to_paste_is_shown(panel, ipython, capsys):
    assert not state.current().channel.ready
    by_widget(panel, click(panel, "apply"))
    out = capsys.readouterr().out
    assert ipython.user_ns["loader"].num_workers == 2
    assert f"New code for {setup_label()}" in out and NEW_LOADER in out


def test_applying_twice_does_not_stack(panel, book, ipython):
    detail, count = click(panel, "apply"), len(applied())
    by_widget(panel, detail)
    loader, sent = ipython.user_ns["loader"], state.current().channel.requests
    by_widget(panel, detail)  # the same click again (a second view, a double click)
    assert ipython.user_ns["loader"] is loader and len(applied()) == count + 1
    assert state.current().channel.requests == sent
    assert card(panel)["message"].startswith("already applied")
    assert book.cells["setup"].count("num_workers") == 1

    again = OptimizationPanel(panel.report, ipython.user_ns, panel.cell)  # a new plan sees it done
    assert card(again)["blocked"].startswith("already applied") and not card(again)["actions"]["apply"]["enabled"]


# ------------------------------------------------------------------ panel_action (the extension took the click)
def test_panel_action_does_the_live_part_only_and_undo_likewise(panel, book, ipython):
    original, sent = ipython.user_ns["loader"], state.current().channel.requests
    assert by_extension(book, click(panel, "apply"))[0]["ok"]
    assert ipython.user_ns["loader"].num_workers == 2 and NEW_LOADER in book.cells["setup"]
    assert state.current().channel.requests == sent  # the browser made the edit: the kernel sends it no second time
    assert card(panel)["state"] == "applied"

    by_extension(book, click(panel, "undo"))
    assert ipython.user_ns["loader"] is original and book.cells["setup"] == INPUT_PIPELINE.setup
    assert state.current().channel.requests == sent and card(panel)["state"] == "undone"


def test_a_refused_edit_leaves_the_objects_alone_and_says_once_what_works(panel, book, ipython, capsys):
    original = ipython.user_ns["loader"]
    by_extension(book, click(panel, "apply"), refuse=CHANGED)
    assert ipython.user_ns["loader"] is original and not applied()
    shown = card(panel)
    assert shown["state"] == "refused" and shown["message"] == (
        f"not done: {setup_label()} changed since it was profiled, so nothing was changed; run it as it is now and "
        "profile again to apply the fix to the new code")
    assert capsys.readouterr().err == ""  # said once, on the card
    assert shown["actions"]["apply"]["enabled"]  # free to try again


def test_a_stale_plan_is_not_applied_and_the_browser_edit_is_put_back(panel, book, ipython):
    """The namespace moved between the plan and the click: nothing live, and the cell gets its text back."""
    detail, original = click(panel, "apply"), ipython.user_ns["loader"]
    ipython.user_ns["loader"] = torch.utils.data.DataLoader(list(range(8)))  # rebound since the plan
    try:
        by_extension(book, detail)
        assert card(panel)["state"] == "refused" and "changed since" in card(panel)["message"]
        assert book.cells["setup"] == INPUT_PIPELINE.setup  # the kernel asked the browser to restore it
        assert not applied()
    finally:
        ipython.user_ns["loader"] = original


def test_a_change_the_numerics_guard_reverts_puts_the_code_back_too(panel, book, ipython):
    """The browser rewrote the cell at the click; the guard then refused the outputs: both go back."""
    original, plan = ipython.user_ns["loader"], panel._cards[WORKERS].change
    live = plan._live

    def drifting(undo):
        live(undo)
        return NumericsResult("amp_bf16", relative_error=0.12, threshold=0.05, max_abs_error=0.3)

    plan._live = drifting
    by_extension(book, click(panel, "apply"))
    shown = card(panel)
    assert shown["state"] == "reverted" and "12.00% relative error" in shown["message"]
    assert "5.00% allowed" in shown["message"]
    assert ipython.user_ns["loader"] is original and book.cells["setup"] == INPUT_PIPELINE.setup


def test_a_rerun_that_fails_keeps_the_applied_change_and_its_code(panel, book, ipython, monkeypatch):
    def broken(*args):
        raise SyntaxError("cannot compile the cell")

    monkeypatch.setattr(panel_module, "remeasure", broken)
    by_extension(book, click(panel, "apply-rerun"))
    shown = card(panel)
    assert shown["state"] == "error" and "cannot compile the cell" in shown["message"]
    assert ipython.user_ns["loader"].num_workers == 2 and NEW_LOADER in book.cells["setup"]
    assert shown["actions"]["undo"]["enabled"]


def test_apply_and_rerun_shows_the_comparison_on_the_card_and_undo_marks_it_out_of_date(panel, book, capsys):
    by_extension(book, click(panel, "apply-rerun"))
    change = panel._cards[WORKERS].change
    assert change.status == "applied" and change.remeasured is not None
    assert "before/after" not in capsys.readouterr().out  # on the card, not a second time under the panel
    shown = card(panel)
    assert shown["message"].startswith(f"re-measured: samples/s ×{change.remeasured:.2f}")
    assert shown["state"] in ("remeasured", "regression")
    assert "judged by samples/s" in shown["comparison"] and "jp-perf-comparison" in shown["comparison"]
    assert shown["actions"]["undo"]["enabled"] and shown["actions"]["apply-rerun"]["enabled"]

    by_extension(book, click(panel, "undo"))
    shown = card(panel)
    assert "jpp-outdated" in shown["comparison"] and "out of date: the change was undone" in shown["comparison"]
    text = panel.record["text/plain"]
    assert text.count("undone:") == 1 and text.count("jupyter-perf before/after") == 1  # once each


def test_the_card_says_running_while_the_kernel_carries_the_click_out(panel, book, monkeypatch):
    seen = []

    def remeasure(*args):
        seen.append((card(panel)["running"], card(panel)["handled"]))
        return remeasured_as(1.2)(*args)

    monkeypatch.setattr(panel_module, "remeasure", remeasure)
    before = card(panel)["handled"]
    by_extension(book, click(panel, "apply-rerun"))
    assert seen == [(True, before)]  # sent to the view before the re-run started
    assert not card(panel)["running"] and card(panel)["handled"] == before + 1


def test_a_slower_rerun_is_flagged_as_a_regression(panel, book, monkeypatch):
    monkeypatch.setattr(panel_module, "remeasure", remeasured_as(0.71))
    by_widget(panel, click(panel, "apply-rerun"))
    shown = card(panel)
    assert shown["state"] == "regression" and shown["message"].startswith("re-measured: samples/s ×0.71, worse beyond")
    assert shown["actions"]["undo"]["enabled"]


def test_an_edit_refused_after_a_widget_click_takes_the_change_back(profiled, ipython):
    """The kernel published the edit (a click on the widget's comm); the notebook refused it once idle."""
    book = AnsweringNotebook()
    book.add("setup", INPUT_PIPELINE.setup.replace("batch_size=8", "batch_size=16"))  # edited, not run
    saved = state.current().channel.comm, state.current().channel.ready
    state.current().channel.comm, state.current().channel.ready = book, True
    try:
        report, loop = profiled
        panel, original = OptimizationPanel(report, ipython.user_ns, loop), ipython.user_ns["loader"]
        by_widget(panel, click(panel, "apply"))
        assert card(panel)["state"] == "applied" and ipython.user_ns["loader"] is not original
        book.answer()
    finally:
        state.current().channel.comm, state.current().channel.ready = saved
    shown = card(panel)
    assert shown["state"] == "refused" and "Taken back" in shown["message"] and setup_label() in shown["message"]
    assert ipython.user_ns["loader"] is original and not applied() and shown["actions"]["apply"]["enabled"]
    assert "  Taken back" in panel.record["text/plain"]


# ------------------------------------------------------------------ Tune
@pytest.fixture()
def short_trials(monkeypatch):
    monkeypatch.setattr(tune_module, "TRIAL_SECONDS", 0.2)


def test_tune_by_either_route_measures_applies_the_best_shows_the_curve_and_undoes(panel, book, ipython,
                                                                                   short_trials):
    original, sent = ipython.user_ns["loader"], state.current().channel.requests
    assert by_extension(book, click(panel, "tune")) == []  # the browser had nothing to edit
    shown = card(panel)
    chosen = panel._cards[WORKERS].tuning.chosen
    assert shown["state"] == "applied" and shown["message"].startswith(f"tuned: num_workers={chosen} applied")
    assert chosen > 0 and ipython.user_ns["loader"].num_workers == chosen  # sleep-bound data: workers won
    assert f"num_workers={chosen}, persistent_workers=True)" in book.cells["setup"]
    assert state.current().channel.requests == sent + 1  # the kernel published the tuned edit
    rows = shown["curve"]["rows"]
    assert [r["value"] for r in rows][:3] == [0, 1, 2] and sum(r["chosen"] for r in rows) == 1
    assert shown["curve"]["how"].startswith("the profiled cell's loop over loader")
    assert "measured: the profiled cell's loop" in panel.record["text/plain"] and 'class="jpp-curve"' in panel.record[
        "text/html"]
    assert shown["actions"]["undo"]["enabled"] and not shown["actions"]["tune"]["enabled"]

    by_widget(panel, click(panel, "undo"))
    assert ipython.user_ns["loader"] is original and book.cells["setup"] == INPUT_PIPELINE.setup
    assert card(panel)["state"] == "undone" and card(panel)["actions"]["tune"]["enabled"]
    by_widget(panel, click(panel, "tune"))  # the widget's comm: the same outcome
    assert card(panel)["state"] == "applied" and ipython.user_ns["loader"].num_workers > 0


def test_an_interrupted_tune_changes_nothing_and_says_so(panel, book, ipython, short_trials):
    original = ipython.user_ns["loader"]
    timer = threading.Timer(0.5, _thread.interrupt_main)  # the kernel's interrupt, while the trials run
    timer.start()
    try:
        by_extension(book, click(panel, "tune"))
    finally:
        timer.cancel()
    assert ipython.user_ns["loader"] is original and book.cells["setup"] == INPUT_PIPELINE.setup
    assert card(panel)["message"] == "tuning interrupted: the loader and the code are as they were"


def test_only_optimizations_with_a_value_to_measure_offer_tune(profiled, ipython):
    report, loop = profiled
    extra = [Recommendation("dataloader.batch_size", "small batches", 1.2), Recommendation("cpu.threads", "x")]
    panel = OptimizationPanel(dataclasses.replace(report, recommendations=extra), ipython.user_ns, loop)
    assert "tune" in card(panel, "dataloader.batch_size")["actions"]
    assert "tune" not in card(panel, "cpu.threads")["actions"]


# ------------------------------------------------------------------ the record a saved notebook keeps
def test_the_panel_is_displayed_with_its_static_record_next_to_the_widget(profiled, ipython, monkeypatch):
    """Without its kernel, a widget cannot be drawn: the output carries what to show instead."""
    shown = []
    monkeypatch.setattr(panel_module, "display", lambda bundle, raw: shown.append(bundle))
    report, _ = profiled
    panel = panel_module.show_panel(report, ipython.user_ns, PROFILED)
    bundle = shown[0]
    assert bundle[panel_module.MIME] == bundle[panel_module.WIDGET_VIEW]  # the extension's renderer picks
    assert bundle["text/html"] == panel.record["text/html"] and bundle["text/plain"] == panel.record["text/plain"]
    text = bundle["text/plain"]
    assert text.startswith(panel_module.TEXT)
    assert f"* {WORKERS} — Load batches in worker processes (expected ×" in text and "not applied" in text
    assert f"+{NEW_LOADER}" in text  # the code change it proposes
    assert 'class="jp-perf-panel jp-perf-panel-record"' in bundle["text/html"] and "data-optimization" not in bundle[
        "text/html"]  # no button, nothing a click could reach


def test_the_record_follows_each_click_and_outlives_the_panel(panel, book, monkeypatch):
    monkeypatch.setattr(panel_module, "remeasure", remeasured_as(1.5))
    by_extension(book, click(panel, "apply-rerun"))
    text = panel.record["text/plain"]
    assert "re-measured: samples/s ×1.50, better" in text and "jupyter-perf before/after · " in text
    assert "jp-perf-summary" in panel.record["text/html"]  # the before/after, as the summary draws it
    panel.retire()
    assert panel.record["text/plain"] == text  # what was applied stays on record


def test_apply_and_rerun_runs_magics_in_the_cell_as_ipython_would(panel, book, monkeypatch):
    ran, real = [], jupyter_perf.profile

    def recording(source, namespace, **options):
        ran.append(source)
        return real(source, namespace, **options)

    monkeypatch.setattr(panel_module, "run", recording)
    monkeypatch.setattr(panel_module, "display", lambda *args: None)
    panel.cell = Target("%time warmup = 1\n" + panel.cell.source, panel.cell.cell_id, panel.cell.prefix)
    by_extension(book, click(panel, "apply-rerun"))
    assert ran == [cells.python(panel.cell.text)]
    assert "run_line_magic('time', 'warmup = 1')" in ran[0] and "%%perfprofile" not in ran[0]
    assert card(panel)["message"].startswith("re-measured: ")  # the expanded cell ran


# ------------------------------------------------------------------ lifetime and the magic
def test_old_panels_let_go_and_say_so(panel, profiled, ipython, capsys):
    report, loop = profiled
    newer = [OptimizationPanel(report, ipython.user_ns, Target(loop.source)) for _ in range(panel_module.KEEP)]
    assert panel.report is None and card(panel)["state"] == "expired" and not card(panel)["actions"]
    jupyter_perf.panel_action({"action": "apply", "optimization": WORKERS, "token": panel.token, "edits": []})
    assert "profile the cell again" in capsys.readouterr().err
    assert all(p.token in state.current().panels for p in newer)


def test_the_magic_shows_the_panel_where_widgets_show_and_survives_its_failure(profiled, ipython, monkeypatch,
                                                                                capsys):
    ipython.run_cell(PROFILED, cell_id="magic")
    assert not any(p.cell.cell_id == "magic" for p in state.current().panels.values())  # plain IPython: text only

    monkeypatch.setattr(frontend_detect, "widgets_unavailable", lambda shell: None)
    ipython.run_cell(PROFILED, cell_id="magic")
    assert any(p.cell.cell_id == "magic" for p in state.current().panels.values())
    assert panel_module.TEXT in capsys.readouterr().out

    def broken(*args, **kwargs):
        raise RuntimeError("no widgets today")

    monkeypatch.setattr(state.current(), "said", set())
    monkeypatch.setattr(OptimizationPanel, "__init__", broken)
    del ipython.user_ns["rep"]
    assert ipython.run_cell(PROFILED, cell_id="magic").success
    assert "rep" in ipython.user_ns
    said = capsys.readouterr()
    assert "optimization panel failed to open (RuntimeError: no widgets today)" in said.err
    assert "Fixes\n  1. dataloader.workers" in said.out  # the list the summary left to the panel, shown instead


def test_a_plan_on_code_another_change_rewrote_is_held_back(profiled, book, ipython):
    """Two optimizations of the loader's cell: once one is applied, the other's plan would drop it from the code."""
    report, loop = profiled
    batch = Recommendation("dataloader.batch_size", "bigger batches", 1.1, params={"batch_size": 32})
    panel = OptimizationPanel(dataclasses.replace(report, recommendations=[*report.recommendations, batch]),
                              ipython.user_ns, loop)
    assert card(panel, "dataloader.batch_size")["actions"]["apply"]["enabled"]
    by_extension(book, click(panel, "apply"))
    held = card(panel, "dataloader.batch_size")  # the browser said it rewrote the cell: the plan's text is gone
    assert f"{setup_label()} was edited since it ran" in held["blocked"]
    assert not held["actions"]["apply"]["enabled"]
    state.current().channel.sources.clear()  # as without the extension: the panel knows what it applied
    panel._refresh()
    held = card(panel, "dataloader.batch_size")
    assert "dataloader.workers has rewritten" in held["blocked"] and not held["actions"]["apply"]["enabled"]
    by_extension(book, click(panel, "undo"))
    assert card(panel, "dataloader.batch_size")["blocked"] is None


def test_a_card_waiting_for_an_edited_cell_is_planned_again_once_a_cell_runs(panel, ipython):
    """The setup cell was edited by hand: Apply is off and says what works; after the cell runs, the card works."""
    state.current().channel.sources["setup"] = frontend.sha256("loader = 'edited by hand'\n")
    panel._refresh()
    held = card(panel)
    assert held["blocked"].startswith(f"{setup_label()} was edited since it ran, so nothing was changed")
    assert "profile again" in held["blocked"] and not held["actions"]["apply"]["enabled"]
    state.current().channel.sources.clear()  # the edit undone in the notebook (Ctrl+Z)
    assert ipython.run_cell("x_after_the_edit = 1").success  # any cell ending plans the waiting card again
    assert card(panel)["blocked"] is None and card(panel)["actions"]["apply"]["enabled"]
    del ipython.user_ns["x_after_the_edit"]
