"""memory.release_graph: stored losses give up their graphs, live and in the code; undo exact."""

import pytest
import torch
from optimization_fixtures import ODD, assert_parses, notebook_fixture, release_namespaces, run  # noqa: F401

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


def test_dicts_and_tuples(ns):
    w = ns["w"]
    ns["by_step"] = {i: (w * i).sum() for i in range(3)}
    ns["pair"] = ((w * 2).sum(), (w * 3).sum())
    keep = ns["pair"]
    d = get("memory.release_graph").apply(ns, container="by_step")
    t = get("memory.release_graph").apply(ns, container="pair")
    assert ns["by_step"] == {0: 0.0, 1: 3.0, 2: 6.0} and ns["pair"] == (6.0, 9.0)
    assert d.snippet == "by_step.append(loss.item())  # instead of by_step.append(loss)"
    t.undo()
    d.undo()
    assert ns["pair"] is keep and all(v.grad_fn is not None for v in ns["by_step"].values())


def test_reasons(ns):
    opt = get("memory.release_graph")
    ns["more"] = [(ns["w"] * 2).sum() for _ in range(2)]
    assert "several containers hold graphs (losses, more)" in opt.applicable(None, ns)
    report = Report(signals={"retained_graphs": [{"name": "losses", "tensors": 4}]})
    assert opt.applicable(report, ns) is None  # the report says which
    assert "holds tensors of more than one element" in opt.applicable(
        None, {"xs": [torch.ones(2, requires_grad=True) * 1, torch.ones(2, requires_grad=True) * 1]}, mode="item")
    assert opt.applicable(None, {"xs": [1.0]}, container="xs") == "xs holds no tensor with an autograd graph"
    assert "no list, tuple or dict" in opt.applicable(None, {})
