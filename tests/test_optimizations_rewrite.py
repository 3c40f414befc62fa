"""libcst rewrites: formatting and comments kept, idempotent, None (never a guess) when the pattern is absent."""

import pytest

from jupyter_perf.optimizations import rewrite as rw

MULTILINE = """\
import torch
from torch.utils.data import DataLoader
# build the loader
loader = DataLoader(
    ds,  # the data
    batch_size=8
)
"""


def test_keywords_are_appended_in_the_calls_own_style():
    new = rw.set_call_arguments(MULTILINE, "loader", "DataLoader", {"num_workers": "2", "persistent_workers": "True"})
    expected = "batch_size=8,\n    num_workers=2,\n    persistent_workers=True\n"
    assert new == MULTILINE.replace("batch_size=8\n", expected)
    assert rw.set_call_arguments(new, "loader", "DataLoader", {"num_workers": "2"}) == new  # already there


@pytest.mark.parametrize("before, after", [
    ("loader = DataLoader(ds)\n", "loader = DataLoader(ds, num_workers=2)\n"),
    ("loader = DataLoader(ds,)\n", "loader = DataLoader(ds, num_workers=2,)\n"),
    ("loader = DataLoader(\n    ds,\n)\n", "loader = DataLoader(\n    ds,\n    num_workers=2,\n)\n"),
    ("loader = DataLoader()\n", "loader = DataLoader(num_workers=2)\n"),
    ("loader = DataLoader(ds, num_workers = 0)  # c\n", "loader = DataLoader(ds, num_workers = 2)  # c\n"),
    ("loader = torch.utils.data.DataLoader(ds)\n", "loader = torch.utils.data.DataLoader(ds, num_workers=2)\n"),
    ("loader: DataLoader = DataLoader(ds)\n", "loader: DataLoader = DataLoader(ds, num_workers=2)\n"),
])
def test_keyword_layouts(before, after):
    assert rw.set_call_arguments(before, "loader", "DataLoader", {"num_workers": "2"}) == after


def test_an_argument_passed_by_position_is_replaced_where_it_stands():
    src = "loader = DataLoader(ds, 1, True)\n"
    new = rw.set_call_arguments(src, "loader", "DataLoader", {"batch_size": "64"}, ("dataset", "batch_size", "shuffle"))
    assert new == "loader = DataLoader(ds, 64, True)\n"


@pytest.mark.parametrize("src", [
    "loader = make_loader(ds)\n",                        # not a DataLoader call
    "other = DataLoader(ds)\n",                          # another name
    "loader = DataLoader(ds, **kw)\n",                   # the keyword could be inside **kw
    "loader = DataLoader(a)\nloader = DataLoader(b)\n",  # ambiguous: which one built the live object?
    "%time loader = DataLoader(ds)\n",                   # not plain Python
])
def test_no_pattern_no_guess(src):
    assert rw.set_call_arguments(src, "loader", "DataLoader", {"num_workers": "2"}) is None


def test_non_blocking_in_loops_over_the_loader_only():
    src = """\
x0 = x0.to(device)
for i, (x, y) in enumerate(loader):  # loop
    x, y = x.to(device), y.cuda()
    z = x.to(dev).to(torch.float16)
    w = w.to(device, non_blocking=False)
"""
    new = rw.add_non_blocking(src, "loader")
    assert new == """\
x0 = x0.to(device)
for i, (x, y) in enumerate(loader):  # loop
    x, y = x.to(device, non_blocking=True), y.cuda(non_blocking=True)
    z = x.to(dev, non_blocking=True).to(torch.float16, non_blocking=True)
    w = w.to(device, non_blocking=False)
"""
    assert rw.add_non_blocking(new, "loader") == new
    assert rw.add_non_blocking("for b in self.loader:\n    b.to(d)\n", "loader") is None


def test_release_appends():
    src = """\
for x in xs:
    losses.append(loss)   # keep
    losses.append(loss * 2)
    losses.append(loss.item())
    losses.append(float(loss))
    others.append(loss)
"""
    new = rw.release_appends(src, "losses", "item")
    assert new == """\
for x in xs:
    losses.append(loss.item())   # keep
    losses.append((loss * 2).item())
    losses.append(loss.item())
    losses.append(float(loss))
    others.append(loss)
"""
    assert rw.release_appends(new, "losses", "item") == new
    assert rw.release_appends(src, "absent", "item") is None
    assert "losses.append(loss.detach())" in rw.release_appends(src, "losses", "detach")


WRAP = """\
import torch
# evaluate
for (x,) in loader:  # each batch
    out = model(x)
print(out.shape)
"""


def test_wrap_calls_wraps_the_span_and_puts_prelude_before_it():
    new = rw.wrap_calls(WRAP, "model", "torch.inference_mode()", ("torch.no_grad()",), ("model.eval()",))
    assert new == """\
import torch
# evaluate
model.eval()
with torch.inference_mode():
    for (x,) in loader:  # each batch
        out = model(x)
print(out.shape)
"""
    assert rw.wrap_calls(new, "model", "torch.inference_mode()", ("torch.no_grad()",), ("model.eval()",)) == new


def test_wrap_calls_swaps_no_grad_and_refuses_what_it_cannot_keep():
    src = "with torch.no_grad():\n    preds = [model(x) for x in xs]\n"
    assert rw.wrap_calls(src, "model", "torch.inference_mode()", ("torch.no_grad()",)) == \
        "with torch.inference_mode():\n    preds = [model(x) for x in xs]\n"
    assert rw.wrap_calls("x = 1\nmodel(x)\n", "model", "torch.inference_mode()") is None  # displayed value
    assert rw.wrap_calls("with open(f) as g:\n    model(x)\n", "model", "torch.inference_mode()") is None
    assert rw.wrap_calls("y = 2\n", "model", "torch.inference_mode()") is None


def test_ensure_call():
    src = "import torch\nimport os\nx = 1\n"
    new = rw.ensure_call(src, "torch.set_num_threads", "2")
    assert new == "import torch\nimport os\ntorch.set_num_threads(2)\nx = 1\n"
    assert rw.ensure_call(new, "torch.set_num_threads", "3") == new.replace("(2)", "(3)")


def test_unified_diff():
    assert rw.unified_diff("a\n", "a\n", "cell") == ""
    diff = rw.unified_diff("a", "b", "cell 1")
    assert diff.startswith("--- a/cell 1\n+++ b/cell 1\n") and diff.endswith("+b\n")
