"""libcst rewrites: formatting and comments kept, idempotent, None (never a guess) when the pattern is absent."""

import re

import pytest

from jupyter_perf.cells import unified_diff
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
    "%time loader = DataLoader(ds)\n",                   # not plain Python
])
def test_no_pattern_no_guess(src):
    assert rw.set_call_arguments(src, "loader", "DataLoader", {"num_workers": "2"}) is None


@pytest.mark.parametrize("src, why", [
    ("loader = DataLoader(a)\nloader = DataLoader(b)\n", "assigns loader = DataLoader(...) 2 times"),
    ("loader = DataLoader(*args)\n", "passes *args: which parameters its items fill is known only when it runs"),
    ("loader = DataLoader(ds, **a, **b)\n", "unpacks several mappings (**a, **b): one of them may hold"),
])
def test_a_call_found_but_not_safely_editable_says_why(src, why):
    with pytest.raises(rw.NoRewrite, match=re.escape(why)):
        rw.set_call_arguments(src, "loader", "DataLoader", {"num_workers": "2"})


# ------------------------------------------------------------------ **kwargs (pytorch/examples' style)
WORKERS = {"num_workers": "2", "persistent_workers": "True"}
SAME_CELL = """kwargs = {'num_workers': 1, 'pin_memory': True}
loader = DataLoader(ds, batch_size=64, shuffle=True, **kwargs)
"""
MNIST = """train_kwargs = {'batch_size': 64}
test_kwargs = {'batch_size': 1000}
if use_cuda:
    cuda_kwargs = {'num_workers': 1,
                   'pin_memory': True,
                   'shuffle': True}
    train_kwargs.update(cuda_kwargs)
    test_kwargs.update(cuda_kwargs)
train_loader = DataLoader(dataset1, **train_kwargs)
test_loader = DataLoader(dataset2, **test_kwargs)
"""


@pytest.mark.parametrize("src, name, expected", [
    # the dict literal, defined here and used by this call only: edited in place, in its own style
    (SAME_CELL, "loader", SAME_CELL.replace("{'num_workers': 1, 'pin_memory': True}",
                                            "{'num_workers': 2, 'pin_memory': True, 'persistent_workers': True}")),
    ("kw = {\n    'pin_memory': True,\n}\nloader = DataLoader(ds, **kw)\n", "loader",
     "kw = {\n    'pin_memory': True,\n    'num_workers': 2,\n    'persistent_workers': True,\n}\n"
     "loader = DataLoader(ds, **kw)\n"),
    # mnist: update() may add the key (here: cuda_kwargs has num_workers): merged at the call, which wins
    (MNIST, "train_loader", MNIST.replace(
        "DataLoader(dataset1, **train_kwargs)",
        "DataLoader(dataset1, **{**train_kwargs, 'num_workers': 2, 'persistent_workers': True})")),
    # defined in another cell, shared with another loader, conditional: merged at the call
    ("loader = DataLoader(ds, batch_size=64, shuffle=True, **kwargs)\n", "loader",
     'loader = DataLoader(ds, batch_size=64, shuffle=True, **{**kwargs, "num_workers": 2, '
     '"persistent_workers": True})\n'),
    ("kw = {'pin_memory': True}\nloader = DataLoader(a, **kw)\nval = DataLoader(b, **kw)\n", "loader",
     "kw = {'pin_memory': True}\nloader = DataLoader(a, **{**kw, 'num_workers': 2, 'persistent_workers': True})\n"
     "val = DataLoader(b, **kw)\n"),
    ("kw = {'num_workers': 1} if cuda else {}\nloader = DataLoader(ds, **kw)\n", "loader",
     "kw = {'num_workers': 1} if cuda else {}\n"
     "loader = DataLoader(ds, **{**kw, 'num_workers': 2, 'persistent_workers': True})\n"),
    ("loader = DataLoader(ds, **(a if c else b))\n", "loader",
     'loader = DataLoader(ds, **{**(a if c else b), "num_workers": 2, "persistent_workers": True})\n'),
    # a key that a later **base in the dict could override: merged at the call
    ("kw = {'num_workers': 1, **base}\nloader = DataLoader(ds, **kw)\n", "loader",
     "kw = {'num_workers': 1, **base}\n"
     "loader = DataLoader(ds, **{**kw, 'num_workers': 2, 'persistent_workers': True})\n"),
    # an explicit keyword is replaced where it stands (it cannot be in **kw too: the call would raise)
    ("loader = DataLoader(ds, num_workers=0, **kw)\n", "loader",
     'loader = DataLoader(ds, num_workers=2, **{**kw, "persistent_workers": True})\n'),
])
def test_a_call_unpacking_kwargs_gets_the_value_where_it_wins(src, name, expected):
    new = rw.set_call_arguments(src, name, "DataLoader", WORKERS)
    assert new == expected
    assert rw.set_call_arguments(new, name, "DataLoader", WORKERS) == new  # already there: no stacking


@pytest.mark.parametrize("use_cuda", [False, True])
def test_the_kwargs_rewrites_build_what_they_say_when_run(use_cuda):
    """Run from scratch: the loaders get the new values whatever the mappings held, and nothing raises
    "got multiple values" (mnist with CUDA: cuda_kwargs brings num_workers=1 and shuffle)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def built(source: str) -> dict:
        namespace = {"DataLoader": DataLoader, "use_cuda": use_cuda, "dataset1": TensorDataset(torch.zeros(8)),
                     "dataset2": TensorDataset(torch.zeros(4)), "ds": TensorDataset(torch.zeros(8)),
                     "kwargs": {"num_workers": 1, "pin_memory": False}}
        exec(source, namespace)
        return namespace

    for src, name in ((SAME_CELL.replace("True", "False"), "loader"), (MNIST.replace("True", "False"), "train_loader"),
                      ("loader = DataLoader(ds, batch_size=64, shuffle=True, **kwargs)\n", "loader")):
        before, after = built(src), built(rw.set_call_arguments(src, name, "DataLoader", WORKERS))
        old, new = before[name], after[name]
        assert (new.num_workers, new.persistent_workers) == (2, True)
        assert (new.batch_size, type(new.sampler), new.pin_memory) == (old.batch_size, type(old.sampler),
                                                                       old.pin_memory)
        if "test_loader" in before:  # the loader sharing the mappings is untouched
            assert after["test_loader"].num_workers == before["test_loader"].num_workers


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
    assert unified_diff("a\n", "a\n", "cell") == ""
    diff = unified_diff("a", "b", "cell 1")
    assert diff.startswith("--- a/cell 1\n+++ b/cell 1\n") and diff.endswith("+b\n")
