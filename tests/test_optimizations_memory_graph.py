"""memory.release_graph: stored losses give up their graphs, live and in the code; undo exact."""

import pytest
import torch
from optimization_fixtures import ODD, assert_parses, notebook_fixture, release_namespaces, run  # noqa: F401

from jupyter_perf.diagnosis import diagnose
from jupyter_perf.optimizations import get
from jupyter_perf.report import Report

SETUP = """\
import torch
w = torch.ones(3, requires_grad=True)
losses = []
"""
LOOP = """\
for i in range(4):
    loss = (w * i).sum()
    losses.append(loss)""" + ODD


@pytest.fixture()
def ns():
    return run(LOOP, run(SETUP, {"__name__": "__main__"}))


def test_live_values_code_and_exact_undo(ns, notebook):
    losses = ns["losses"]
    graphs = list(losses)
    target = notebook.add("loop", LOOP)
    change = get("memory.release_graph").apply(ns, cell=target)
    assert change.params == {"container": "losses", "mode": "item"}
    assert ns["losses"] is losses and losses == [0.0, 3.0, 6.0, 9.0]  # same list, now plain numbers
    assert change.new_source == LOOP.replace("losses.append(loss)", "losses.append(loss.item())")
    assert notebook.cells["loop"] == change.new_source
    assert_parses(change.new_source)
    rerun = run(change.new_source, run(SETUP, {"__name__": "__main__"}))
    assert rerun["losses"] == losses  # the rewritten cell stores the same values

    again = get("memory.release_graph").apply(ns, cell=change.new_source)
    assert again.status == "already applied"

    change.undo()
    assert ns["losses"] is losses and all(a is b for a, b in zip(losses, graphs, strict=True))
    assert notebook.cells["loop"] == LOOP


def test_detach_for_tensors_that_are_not_one_number(ns):
    ns["outs"] = [torch.ones(2, requires_grad=True) * 2 for _ in range(3)]
    change = get("memory.release_graph").apply(ns, cell="for i in range(3):\n    outs.append(y)\n", container="outs")
    assert change.params["mode"] == "detach" and "outs.append(y.detach())" in change.new_source
    assert all(t.grad_fn is None and t.tolist() == [2.0, 2.0] for t in ns["outs"])
    change.undo()
    assert all(t.grad_fn is not None for t in ns["outs"])


def test_dicts_released_in_place_tuples_refused(ns):
    w = ns["w"]
    ns["by_step"] = {i: (w * i).sum() for i in range(3)}
    ns["pair"] = ((w * 2).sum(), (w * 3).sum())
    keep = dict(ns["by_step"])
    d = get("memory.release_graph").apply(ns, container="by_step")
    assert ns["by_step"] == {0: 0.0, 1: 3.0, 2: 6.0}
    assert d.snippet == "by_step[key] = loss.item()  # where the loop stores a tensor with a graph in by_step"
    # A tuple is rebuilt, not grown: it holds the last step's graphs, which rebinding it frees.
    assert get("memory.release_graph").applicable(None, ns, container="pair") == (
        "pair is a tuple, not a list or dict that grows step after step: nothing to rewrite")
    d.undo()
    assert all(ns["by_step"][k] is v for k, v in keep.items())


def diagnosed(report: Report) -> Report:
    """The report as the optimization reads it: its diagnosis says which containers grew."""
    diagnose(report)
    return report


def census(name: str, kind: str, tensors: int, gained: int, steps: int = 4) -> dict:
    return {"name": name, "type": kind, "tensors": tensors, "baseline_tensors": tensors - gained,
            "baseline_step": 0, "gained": gained, "steps": steps, "per_step": gained / steps}


def test_reasons(ns):
    opt = get("memory.release_graph")
    ns["more"] = [(ns["w"] * 2).sum() for _ in range(2)]
    assert "several containers hold graphs (losses, more)" in opt.applicable(None, ns)
    report = diagnosed(Report(signals={"retained_graphs": [census("losses", "list", 4, 4),
                                                           census("more", "list", 2, 0)]}))
    assert opt.applicable(report, ns) is None  # the report says which grew
    assert "more (list) did not grow during the profiled run" in opt.applicable(report, ns, container="more")
    assert "holds tensors of more than one element" in opt.applicable(
        None, {"xs": [torch.ones(2, requires_grad=True) * 1, torch.ones(2, requires_grad=True) * 1]}, mode="item")
    assert opt.applicable(None, {"xs": [1.0]}, container="xs") == "xs holds no tensor with an autograd graph"
    assert "no list or dict" in opt.applicable(None, {})


def test_a_model_output_is_refused_with_a_reason_not_its_library_exception():
    """transformers' ModelOutput raises on update(); the container did not grow, so there is nothing to do."""
    transformers = pytest.importorskip("transformers")
    w = torch.ones(3, requires_grad=True)
    outputs = transformers.modeling_outputs.CausalLMOutputWithCrossAttentions(loss=(w * 2).sum(), logits=w * 3)
    ns = {"outputs": outputs, "hidden": ((w * 4).sum(), (w * 5).sum())}
    opt = get("memory.release_graph")
    assert opt.applicable(None, ns) == "no list or dict in the namespace holds tensors with autograd graphs"
    assert opt.applicable(None, ns, container="outputs") == (
        "outputs is a CausalLMOutputWithCrossAttentions, not a list or dict that grows step after step: "
        "nothing to rewrite")
    report = diagnosed(Report(signals={"retained_graphs": [
        census("outputs", "CausalLMOutputWithCrossAttentions", 2, 0), census("hidden", "tuple", 2, 0)]}))
    reason = opt.applicable(report, ns)
    assert "outputs (CausalLMOutputWithCrossAttentions) did not grow" in reason
    assert "hidden (tuple) did not grow" in reason
    assert outputs.loss.grad_fn is not None  # untouched


def test_without_a_report_the_list_the_cell_appends_to_is_chosen(ns):
    """IPython's Out caches a cell's value, a loss with its graph: holding graphs, but not what the loop grows."""
    ns["Out"] = {3: (ns["w"] * 2).sum()}
    change = get("memory.release_graph").apply(ns, cell=LOOP)
    assert change.params["container"] == "losses"
    assert ns["Out"][3].grad_fn is not None
