"""inference.inference_mode: the calls run without autograd recording; eval() said; training refused."""

import pytest
import torch
from optimization_fixtures import ODD, assert_parses, notebook_fixture, release_namespaces, run  # noqa: F401

from jupyter_perf.optimizations import get
from jupyter_perf.report import Report

SETUP = """\
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
batches = [torch.randn(3, 4) for _ in range(5)]
"""
EVAL = """\
outs = []
for x in batches:   # evaluate
    outs.append(model(x))""" + ODD + "total = sum(o.sum() for o in outs)\n"


@pytest.fixture()
def ns():
    return run(SETUP, {"__name__": "__main__"})


def test_wraps_the_calls_switches_to_eval_and_undoes_exactly(ns, notebook):
    model = ns["model"]
    target = notebook.add("eval", EVAL)
    change = get("inference.inference_mode").apply(ns, cell=target)
    assert not model.training and change.params == {"model": "model"}
    assert any("switched to eval()" in w for w in change.warnings)
    assert change.new_source == ("outs = []\nmodel.eval()\nwith torch.inference_mode():\n"
                                 "    for x in batches:   # evaluate\n        outs.append(model(x))" + ODD
                                 + "total = sum(o.sum() for o in outs)\n")
    assert notebook.cells["eval"] == change.new_source
    assert_parses(change.new_source)
    after = run(change.new_source, ns)
    expected = run(EVAL, run(SETUP + "model.eval()\n", {"__name__": "__main__"}))
    assert torch.equal(after["total"], expected["total"])  # same outputs, no graph
    assert after["total"].grad_fn is None and expected["total"].grad_fn is not None

    assert get("inference.inference_mode").apply(ns, cell=change.new_source).status == "already applied"
    change.undo()
    assert model.training and notebook.cells["eval"] == EVAL


def test_no_grad_becomes_inference_mode_and_eval_models_stay_as_they_are(ns):
    ns["model"].eval()
    cell = "with torch.no_grad():\n    preds = [model(x) for x in batches]\n"
    change = get("inference.inference_mode").apply(ns, cell=cell)
    assert change.new_source == cell.replace("torch.no_grad()", "torch.inference_mode()") and not change.warnings


def test_refuses_training_and_says_why(ns):
    opt = get("inference.inference_mode")
    trains = Report(signals={"backward": {"calls": 5}})
    assert opt.applicable(trains, ns).startswith("the profiled cell trains (5 backward calls)")
    with pytest.raises(ValueError, match="calls .backward()"):
        opt.apply(ns, cell="loss = model(batches[0]).sum()\nloss.backward()\n")
    ns["model"].eval()
    no_grad = Report(signals={"forward": {"grad_enabled_calls": 0}})
    assert opt.applicable(no_grad, ns) == "every forward of model already ran without grad"
    assert "torch is not imported" in opt.applicable(None, {"model": ns["model"]})


def test_unrecognised_code_gets_a_snippet(ns):
    change = get("inference.inference_mode").apply(ns, cell="x = 1\nmodel(batches[0])\n")  # the displayed value
    assert change.status == "applied" and not change.edits and not ns["model"].training
    assert change.snippet.startswith("model.eval()\nwith torch.inference_mode():")
    change.undo()
    assert ns["model"].training
