"""The protocol under every optimization: catalog, Change lifecycle, parameters, guard, cells, frontend."""

import pytest
import torch
from optimization_fixtures import ODD, FakeNotebook, connected, notebook_fixture  # noqa: F401  (fixture)
from torch import nn

import jupyter_perf
from jupyter_perf import cells, frontend, state
from jupyter_perf.cells import Edit
from jupyter_perf.optimizations import apply_to_cell, catalog, get, ids, parse_ids
from jupyter_perf.optimizations.base import Context, NotApplicable, Optimization, Target, Undo, applied, find_object
from jupyter_perf.optimizations.guard import THRESHOLDS, HeldBatch, compare
from jupyter_perf.optimizations.rewrite import ensure_call
from jupyter_perf.report import OPTIMIZATIONS, Recommendation, Report


class Scale(Optimization):
    """A test optimization: multiplies a model's weights (so numerics change) and writes a marker call."""

    id = "test.scale"
    title = "Scale the weights"
    changes_numerics = True
    params = {"factor": "what to multiply by (default 1.001)", "kind": "numerics kind"}

    def plan(self, ctx: Context):
        factor = ctx.param("factor", lambda: 1.001)
        kind = ctx.param("kind", lambda: "tf32")
        name, model = find_object(ctx.namespace, nn.Module, "model")
        if ctx.namespace.get("scaled") == factor:
            return ctx.unchanged(f"{name} already scaled")
        ctx.rewrite([ctx.cell] if ctx.cell else [], lambda s: ensure_call(s, "scale", repr(factor)))
        batch = HeldBatch((torch.ones(2, 4),))

        def live(undo: Undo):
            reference = batch.run(model)
            saved = model.weight.detach().clone()
            with torch.no_grad():
                model.weight.mul_(factor)
            ctx.namespace["scaled"] = factor
            undo.push(lambda: (model.weight.data.copy_(saved), ctx.namespace.pop("scaled")))
            return compare(kind, reference, batch.run(model))

        return ctx.change(f"{name} weights ×{factor}", live, expects={name: model})


@pytest.fixture()
def ns():
    torch.manual_seed(0)
    return {"model": nn.Linear(4, 3), "torch": torch}


def test_catalog_lists_every_id_it_implements():
    assert ids() == OPTIMIZATIONS
    assert {"distributed.ddp", "distributed.comm_hook", "distributed.bucket_cap", "distributed.no_sync"} <= set(ids())
    for opt_id, opt in catalog().items():
        assert opt.id == opt_id and opt.title and isinstance(opt.params, dict)
    with pytest.raises(KeyError, match="valid ids: dataloader.workers"):
        get("distributed.fsdp")
    assert parse_ids(" dataloader.workers, cpu.threads ") == ["dataloader.workers", "cpu.threads"]
    with pytest.raises(ValueError, match="unknown optimization bogus; valid ids"):
        parse_ids("dataloader.workers,bogus")


def test_preview_touches_nothing_commit_applies_undo_restores(ns):
    weight = ns["model"].weight.detach().clone()
    change = Scale().preview(ns, cell="import torch\nx = 1  " + ODD)
    assert change.status == "preview" and "scale(1.001)" in change.diff
    assert torch.equal(ns["model"].weight, weight) and "scaled" not in ns
    change.commit()
    assert change.status == "applied" and change.numerics.passed and change in applied()
    assert not torch.equal(ns["model"].weight, weight)
    again = Scale().apply(ns, cell=change.new_source)
    assert again.status == "already applied" and again.diff == "" and again.commit() is again  # no stacking
    change.undo()
    change.undo()  # twice is harmless
    assert change.status == "undone" and change not in applied()
    assert torch.equal(ns["model"].weight, weight) and "scaled" not in ns


def test_numerics_over_the_threshold_revert_and_say_by_how_much(ns):
    weight = ns["model"].weight.detach().clone()
    change = Scale().apply(ns, factor=1.05, kind="compile")
    assert change.status == "reverted" and not change.numerics.passed
    assert "differed by" in change.description and "0.10%" in change.description
    assert torch.equal(ns["model"].weight, weight) and "scaled" not in ns
    assert Scale().apply(ns, factor=1.05, kind="quantize").status == "applied"  # 10% allowed there


def test_reordering_kinds_allow_a_16_bit_models_own_rounding():
    before = torch.linspace(1, 2, 64)
    moved = before * 1.01  # what fusing a bfloat16 model's work moves its outputs by
    assert not compare("compile", before, moved).passed  # float32: 1e-3 still catches a miscompile
    result = compare("compile", before.bfloat16(), moved.bfloat16())
    assert result.passed and result.threshold == THRESHOLDS.amp_bf16
    assert compare("compile", before.half(), moved.half()).threshold == THRESHOLDS.amp_fp16
    assert compare("quantize", before.bfloat16(), moved.bfloat16()).threshold == THRESHOLDS.quantize


def test_commit_refuses_a_plan_whose_objects_changed(ns):
    change = Scale().preview(ns)
    ns["model"] = nn.Linear(4, 3)
    with pytest.raises(NotApplicable, match="model changed since"):
        change.commit()


def test_a_failing_live_step_rolls_back_what_it_did(ns):
    class Broken(Scale):
        def plan(self, ctx):
            def live(undo):
                ctx.namespace["half"] = 1
                undo.push(lambda: ctx.namespace.pop("half"))
                raise RuntimeError("boom")
            return ctx.change("breaks", live)

    with pytest.raises(RuntimeError):
        Broken().apply(ns)
    assert "half" not in ns


def test_parameters_given_then_recommended_then_default(ns):
    report = Report(recommendations=[Recommendation("test.scale", "why", params={"factor": 1.002, "other": 1})])
    assert Scale().preview(ns).params["factor"] == 1.001
    assert Scale().preview(ns, report=report).params["factor"] == 1.002
    assert Scale().preview(ns, report=report, factor=1.003).params["factor"] == 1.003
    with pytest.raises(TypeError, match="takes no parameter bogus"):
        Scale().preview(ns, bogus=1)


def test_applicable_gives_the_reason(ns):
    assert Scale().applicable(None, ns) is None
    assert Scale().applicable(None, {}) == "no model is bound to a name in the namespace"
    two = {"a": nn.Linear(1, 1), "b": nn.Linear(1, 1)}
    assert "several models (a, b): pass name=" in Scale().applicable(None, two)


def test_edits_go_to_the_notebook_and_undo_restores_the_exact_text(ns, notebook):
    original = "import torch\r\nx = 1  " + ODD.rstrip("\n")
    target = notebook.add("c1", original)
    change = Scale().apply(ns, cell=target)
    assert notebook.cells["c1"] == change.edits[0].new_text != original
    change.undo()
    assert notebook.cells["c1"] == original  # byte for byte


def test_an_edit_applies_only_to_the_text_it_was_computed_from(ns, notebook):
    target = notebook.add("c1", "x = 1\n")
    change = Scale().preview(ns, cell=target)
    notebook.cells["c1"] = "x = 2\n"  # the user edited the cell meanwhile
    change.commit()
    assert notebook.refused == ["c1"] and notebook.cells["c1"] == "x = 2\n"
    change.undo()


class AnsweringNotebook(FakeNotebook):
    """The fake notebook answering each edit as the extension does: later (``answer()``), once the kernel is idle.

    It keeps the notices the kernel sends it, as the extension shows them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[dict] = []
        self.notices: list[str] = []

    def send(self, data: dict) -> None:
        if data["type"] == "notice":
            self.notices.append(data["text"])
            return
        refused = len(self.refused)
        super().send(data)
        ok = len(self.refused) == refused
        self.answers.append({"type": "edit_result", "request": data["request"], "ok": ok,
                             "reason": "" if ok else "the cell changed since it was profiled"})

    def answer(self) -> None:
        while self.answers:
            state.current().channel.handle({"content": {"data": self.answers.pop(0)}})


@pytest.fixture()
def answering(ipython):
    """A connected extension that answers; what it reported of its cells is forgotten after the test."""
    with connected(AnsweringNotebook()) as book:
        yield book
    state.current().channel.sources.clear()


def test_an_edit_refused_after_apply_takes_the_live_change_back_and_says_so(ns, answering, capsys):
    """jupyter_perf.apply from code: the objects change at once, the notebook refuses the edit later."""
    target = answering.add("c1", "x = 1\n")
    weight = ns["model"].weight.detach().clone()
    change = Scale().preview(ns, cell=target)
    answering.cells["c1"] = "x = 2\n"  # the user edited the cell meanwhile
    change.commit()
    assert change.status == "applied" and not torch.equal(ns["model"].weight, weight)
    answering.answer()
    assert change.status == "refused" and change not in applied()
    assert torch.equal(ns["model"].weight, weight) and "scaled" not in ns  # the objects match the code again
    assert answering.cells["c1"] == "x = 2\n"  # the user's text, untouched
    told = answering.notices[0]
    assert "test.scale was taken back" in told and "the cell starting 'x = 1': the cell changed" in told
    assert "profile again" in told
    assert told in capsys.readouterr().err and "Taken back" in change.summary()
    change.undo()  # nothing left to undo: harmless
    assert torch.equal(ns["model"].weight, weight)


def test_a_partly_refused_change_puts_back_the_cells_that_were_rewritten(ns, answering):
    first, second = answering.add("c1", "x = 1\n"), answering.add("c2", "y = 1\n")

    class TwoCells(Scale):
        def plan(self, ctx):
            ctx.rewrite([first], lambda s: s + "a = 1\n")
            ctx.rewrite([second], lambda s: s + "b = 1\n")
            return ctx.change("two cells", lambda undo: undo.push(lambda: ns.pop("two")) or ns.update(two=1))

    change = TwoCells().preview(ns)
    answering.cells["c2"] = "y = 2\n"
    change.commit()
    assert answering.cells["c1"] == "x = 1\na = 1\n" and ns["two"] == 1
    answering.answer()
    assert change.status == "refused" and "two" not in ns
    answering.answer()  # the request to put c1 back
    assert answering.cells == {"c1": "x = 1\n", "c2": "y = 2\n"}


def reports_sources(cells: dict[str, str]) -> None:
    """The notebook tells the kernel what its cells hold now (the extension's ``sources`` message)."""
    state.current().channel.handle({"content": {"data": {"type": "sources", "cells": {
        cell_id: frontend.sha256(text) for cell_id, text in cells.items()}}}})


def test_a_cell_edited_since_it_ran_is_refused_before_anything_changes(ns, answering):
    """The notebook reports what its cells hold now; a plan from the text as it ran is no plan."""
    target = answering.add("c1", "x = 1\n")
    reports_sources({"c1": "x = 2\n"})
    with pytest.raises(NotApplicable, match="the cell starting 'x = 1' was edited since it ran, so nothing was "
                       "changed: run it as it is now"):
        Scale().apply(ns, cell=target)
    assert "scaled" not in ns and not answering.answers

    reports_sources({"c1": "x = 1\n"})
    change = Scale().preview(ns, cell=target)  # as it ran again: fine
    reports_sources({"c1": "x = 3\n"})
    with pytest.raises(NotApplicable, match="was edited since it ran"):
        change.commit()  # edited between the plan and the commit
    assert "scaled" not in ns
    assert change.commit(publish=False).status == "applied"  # the browser checked the text itself
    change.undo(publish=False)


def test_an_edit_the_notebook_confirms_is_its_text_now(ns, answering):
    target = answering.add("c1", "x = 1\n")
    change = Scale().apply(ns, cell=target)
    answering.answer()
    assert state.current().channel.sources["c1"] == frontend.sha256(change.edits[0].new_text)
    assert not state.current().channel.edited_since_run("c1", change.edits[0].new_text)
    change.undo()
    answering.answer()
    assert state.current().channel.sources["c1"] == frontend.sha256("x = 1\n")


def test_a_rerun_runs_the_cell_as_ipython_would(ipython):
    """cells.python: the %%perfprofile line dropped, the body's magics and shell escapes made Python."""
    text = "%%perfprofile --no-live\n%time ran = 1\n!true\nx = 2\n"
    code = cells.python(text)
    assert "%%perfprofile" not in code and "run_line_magic('time', 'ran = 1')" in code and "system('true')" in code
    compile(code, "<cell>", "exec")
    with pytest.raises(SyntaxError):  # what profile() got before: plain Python cannot run the cell
        compile(cells.split_magic(text)[1], "<cell>", "exec")
    assert cells.python("x = 1\n") == "x = 1\n"


def test_fallback_shows_the_new_code_and_says_once_why(monkeypatch):
    monkeypatch.setattr(state.current().channel, "told_no_extension", False)
    first = state.current().channel.fallback_bundle("cell [9]", "a = 1\n", "a = 2\n")
    second = state.current().channel.fallback_bundle("cell [9]", "a = 1\n", "a = 2\n")
    assert "not installed" in first["text/plain"] and "not installed" not in second["text/plain"]
    assert "Copy new code" in first["text/html"] and "-a = 1" in first["text/plain"] and "a = 2" in second["text/html"]


def test_channel_is_ready_only_once_the_extension_answers():
    channel = frontend.Channel()

    class Comm:
        sent = []

        def send(self, data):
            self.sent.append(data)

    channel.comm = Comm()
    assert not channel.ready
    channel.handle({"content": {"data": {"type": "ready"}}})
    assert channel.ready
    n = channel.send_edit("c1", "a\n", "b\n")
    assert Comm.sent == [{"type": "edit", "request": n, "cell_id": "c1",
                          "expected_source_sha256": frontend.sha256("a\n"), "new_source": "b\n"}]
    channel.handle({"content": {"data": {"type": "edit_result", "request": n, "ok": False, "reason": "changed"}}})
    assert channel.results[n] == {"ok": False, "reason": "changed"}


def test_cells_tracks_which_cell_bound_each_name(ipython):
    ipython.run_cell("tracked_a = 1\ndef tracked_f(): pass\n", cell_id="id-a")
    ipython.run_cell("%%perfprofile --no-live\ntracked_b = [1]\n", cell_id="id-b")
    ipython.run_cell("tracked_a = 1\n", cell_id="id-c")  # same object (a cached int): the AST says it was bound
    assert state.current().defining("tracked_a").cell_id == "id-c"
    assert state.current().defining("tracked_f").cell_id == "id-a"
    record = state.current().defining("tracked_b")
    assert record.cell_id == "id-b" and record.target().prefix == "%%perfprofile --no-live\n"
    assert record.target().source == "tracked_b = [1]\n"
    assert state.current().tracker.find("tracked_b = [1]\n") == record
    ipython.run_cell("del tracked_a", cell_id="id-d")
    assert state.current().defining("tracked_a") is None


def test_unloading_the_extension_stops_tracking(ipython):
    ipython.run_line_magic("unload_ext", "jupyter_perf")
    try:
        assert state.current().running_cell() is None and state.current().channel.comm is None
        ipython.run_cell("untracked = 1", cell_id="x")
        assert state.current().defining("untracked") is None
    finally:
        ipython.run_line_magic("load_ext", "jupyter_perf")
    ipython.run_cell("tracked_again = 1", cell_id="y")
    assert state.current().defining("tracked_again").cell_id == "y"


def test_apply_to_cell_chains_rewrites_and_reports_refusals(ns):
    source, outcomes = apply_to_cell(["dataloader.workers", "inference.inference_mode"], ns,
                                     "import torch\nout = model(torch.ones(1, 4))\nprint(out)\n", None)
    assert outcomes[0] == "dataloader.workers not applied: no DataLoader is bound to a name in the namespace"
    assert outcomes[1].status == "applied" and outcomes[1].rewritten("import torch\nout = model(torch.ones(1, 4))\n"
                                                                     "print(out)\n") == source
    assert source == ("import torch\nmodel.eval()\nwith torch.inference_mode():\n    out = model(torch.ones(1, 4))\n"
                      "print(out)\n")
    outcomes[1].undo()


def test_public_apply(ns):
    with pytest.raises(NotApplicable, match="no DataLoader"):
        jupyter_perf.apply("dataloader.workers", ns)


# ----------------------------------------------------------------- guard
def test_relative_error_and_thresholds():
    a = torch.tensor([3.0, 4.0])
    assert compare("tf32", a, a).relative_error == 0
    nested = compare("tf32", (a, {"k": a}), (a * 1.001, {"k": a}))
    assert nested.relative_error == pytest.approx(1e-3 / 2**0.5, rel=1e-3)  # 0.001·‖a‖ over ‖(a, a)‖
    assert not compare("tf32", a, torch.tensor([3.0, float("inf")])).passed
    assert "shape (2,) became" in compare("tf32", a, torch.ones(3)).summary
    assert THRESHOLDS.amp_bf16 > THRESHOLDS.amp_fp16 > THRESHOLDS.tf32 > THRESHOLDS.compile
    with pytest.raises(ValueError, match="known: amp_bf16"):
        compare("bogus", a, a)


def test_held_batch_runs_in_eval_without_grad_and_restores_modes():
    from torch.utils.data import DataLoader, TensorDataset

    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    model[1].eval()  # a submodule deliberately in eval
    loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.zeros(8)), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    state = loader.generator.get_state()
    batch = HeldBatch.from_loader(loader)
    assert torch.equal(loader.generator.get_state(), state)  # the epoch's shuffle is untouched
    out1, out2 = batch.run(model), batch.run(model)
    assert torch.equal(out1, out2) and not out1.requires_grad
    assert model.training and not model[1].training


def test_a_cell_is_named_as_its_prompt_shows_it_never_by_its_internal_id():
    t = Target("x = 1\n", "abc", "%%perfprofile\n", count=5)
    assert t.text == "%%perfprofile\nx = 1\n" and t.label == "cell [5]"
    assert t == Target("x = 1\n", "abc", "%%perfprofile\n")  # the count names the cell; it is not its identity
    assert Target("\n  loader = DataLoader(data)\n", "abc").label == "the cell starting 'loader = DataLoader(data)'"
    assert Target("").label == "the cell" and "abc" not in Target("x", "abc").label
    assert "--- a/cell [5]" in Edit(t, "x = 2\n").diff


def test_a_tracked_cell_carries_the_number_its_prompt_shows(ipython):
    # IPython 9 counts the cell before pre_run_cell and IPython 8 after: the label must match the prompt on both
    ipython.run_cell("tracked_a = 1", store_history=True)
    first = ipython.execution_count - 1  # the prompt of the cell just run
    ipython.run_cell("tracked_b = 2", store_history=True)
    tracker = state.current().tracker
    assert tracker.defining("tracked_a").count == first
    assert tracker.defining("tracked_b").count == first + 1
    assert tracker.defining("tracked_b").target().label == f"cell [{first + 1}]"
    ipython.run_cell("tracked_c = 3", store_history=False)  # a silent run has no prompt number
    assert tracker.defining("tracked_c").count is None
