"""dataloader.workers / pin_memory / batch_size: live loader rebuilt, code rewritten, undo exact, no stacking."""

import warnings

import pytest
import torch
from optimization_fixtures import ODD, assert_parses, notebook_fixture, release_namespaces, run  # noqa: F401
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import jupyter_perf
from jupyter_perf.optimizations import get
from jupyter_perf.optimizations.dataloader import available_cpus, loader_arguments, rebuild
from jupyter_perf.report import Report

SETUP = """\
import torch
from torch.utils.data import DataLoader, Dataset

class Squares(Dataset):
    def __len__(self): return 24
    def __getitem__(self, i): return torch.tensor([float(i * i)]), i % 3

def add_one(batch):   # a collate_fn of the user's
    x, y = torch.utils.data.default_collate(batch)
    return x + 1, y

gen = torch.Generator().manual_seed(7)
loader = DataLoader(Squares(), batch_size=4,  # four at a time
                    shuffle=True, generator=gen, collate_fn=add_one, drop_last=True)""" + ODD.rstrip("\n")


def batches(loader, generator=None):
    """Every batch of one epoch, from a fixed generator state so two loaders can be compared."""
    if generator is not None:
        generator.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pin_memory without a GPU
        return [tuple(t.tolist() for t in b) for b in loader]


@pytest.fixture()
def ns():
    return run(SETUP, {"__name__": "__main__"})


def test_rebuild_keeps_everything(ns):
    loader = ns["loader"]
    same = rebuild(loader)
    assert loader_arguments(same) == {**loader_arguments(loader), "sampler": loader.sampler}
    assert batches(same, ns["gen"]) == batches(loader, ns["gen"])
    own = DataLoader(TensorDataset(torch.arange(6.0)), batch_sampler=[[0, 1], [5, 4, 3]])
    assert batches(rebuild(own, num_workers=2)) == [([0.0, 1.0],), ([5.0, 4.0, 3.0],)]


def test_workers_live_code_undo_and_no_stacking(ns, notebook):
    old = ns["loader"]
    target = notebook.add("setup", SETUP)
    change = jupyter_perf.apply("dataloader.workers", ns, cell=target, num_workers=2)
    new = ns["loader"]
    assert change.status == "applied" and new is not old
    assert (new.num_workers, new.persistent_workers) == (2, True) and old.num_workers == 0
    assert (new.dataset, new.collate_fn, new.generator, new.drop_last) == (old.dataset, old.collate_fn, old.generator,
                                                                          old.drop_last)
    assert "drop_last=True, num_workers=2, persistent_workers=True)  # ünïcode" in change.new_source
    assert change.new_source.endswith(ODD.rstrip("\n")) and notebook.cells["setup"] == change.new_source
    assert_parses(change.new_source)
    rewritten = run(change.new_source, {"__name__": "__main__"})
    assert rewritten["loader"].num_workers == 2
    assert batches(rewritten["loader"], rewritten["gen"]) == batches(new, ns["gen"]) == batches(old, ns["gen"])

    again = jupyter_perf.apply("dataloader.workers", ns, cell=change.new_source, num_workers=2)
    assert again.status == "already applied" and ns["loader"] is new

    change.undo()
    assert ns["loader"] is old and old.num_workers == 0
    assert notebook.cells["setup"] == SETUP  # byte for byte


def test_workers_default_comes_from_the_cores(ns):
    change = get("dataloader.workers").preview(ns)
    assert change.params["num_workers"] == min(available_cpus(), 8) and change.params["persistent_workers"] is True
    assert change.snippet and "num_workers=" in change.snippet  # no cell given: code to add by hand
    assert change.snippet_reason == "no cell was given to look for loader = DataLoader(...) in"
    none = get("dataloader.workers").preview(ns, num_workers=0)  # DataLoader refuses persistent workers without any
    assert none.params["persistent_workers"] is False and none.status == "already applied"
    assert get("dataloader.workers").applicable(None, ns, num_workers=0, persistent_workers=True) == (
        "persistent_workers and prefetch_factor need num_workers > 0")


def test_workers_refuses_where_workers_cannot_work(ns, monkeypatch):
    import multiprocessing

    opt = get("dataloader.workers")
    ns["loader"] = DataLoader(ns["Squares"](), num_workers=1, multiprocessing_context="forkserver")
    assert "dataset class Squares is defined in the notebook, and workers start with 'forkserver'" in \
        opt.applicable(None, ns, num_workers=2)
    ns["loader"] = DataLoader(ns["Squares"](), collate_fn=ns["add_one"])
    assert opt.applicable(None, ns) is None  # fork (Linux's default) copies the notebook's classes
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "spawn")
    assert "class Squares, collate_fn add_one is defined in the notebook" in opt.applicable(None, ns)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    assert "IterableDataset" in opt.applicable(None, {"loader": DataLoader(Stream())})

    class MyLoader(DataLoader):
        pass

    assert "DataLoader subclass" in opt.applicable(None, {"loader": MyLoader(ns["Squares"]())})
    assert "several DataLoaders" in opt.applicable(None, {"a": DataLoader([1]), "b": DataLoader([2])})


def test_the_report_chooses_the_loader_and_its_params(ns):
    from jupyter_perf.report import Recommendation

    ns["other"] = DataLoader(ns["Squares"]())
    report = Report(signals={"dataloaders": [{"name": "other", "data_wait_s": 0.1},
                                             {"name": "loader", "data_wait_s": 2.0}]},
                    recommendations=[Recommendation("dataloader.workers", "why", params={"num_workers": 3})])
    change = get("dataloader.workers").preview(ns, report=report)
    assert change.params["name"] == "loader" and change.params["num_workers"] == 3


def test_pin_memory(ns, notebook, monkeypatch):
    loop = "for x, y in loader:\n    x = x.to('cuda')  # copy\n    y = y.cuda()\n"
    assert get("dataloader.pin_memory").applicable(None, ns).startswith("no CUDA device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    old = ns["loader"]
    loop_cell = notebook.add("loop", loop)
    notebook.add("setup", SETUP)
    with monkeypatch.context() as m:
        from jupyter_perf import cells, state
        m.setattr(state.current(), "defining",
                  lambda name: cells.CellRecord("setup", SETUP) if name == "loader" else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            change = get("dataloader.pin_memory").apply(ns, cell=loop_cell)
    assert ns["loader"].pin_memory and not old.pin_memory
    assert {e.target.cell_id for e in change.edits} == {"loop", "setup"}
    assert notebook.cells["loop"] == ("for x, y in loader:\n    x = x.to('cuda', non_blocking=True)  # copy\n"
                                      "    y = y.cuda(non_blocking=True)\n")
    assert "drop_last=True, pin_memory=True)" in notebook.cells["setup"]
    assert batches(ns["loader"], ns["gen"]) == batches(old, ns["gen"])
    change.undo()
    assert ns["loader"] is old and notebook.cells == {"loop": loop, "setup": SETUP}
    assert loop_cell.text == loop


def test_pin_memory_warns_for_in_memory_data_and_missing_copies(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ns = {"loader": DataLoader(TensorDataset(torch.ones(4, 2)))}
    change = get("dataloader.pin_memory").preview(ns, cell="for (x,) in loader:\n    pass\n")
    assert any("×1.25–1.45" in w for w in change.warnings) and any("non_blocking=True" in w for w in change.warnings)
    ns = {"loader": DataLoader(TensorDataset(torch.ones(4, 2)), num_workers=4)}
    change = get("dataloader.pin_memory").preview(ns, cell="for (x,) in loader:\n    pass\n")
    assert any("with 4 workers it ran ×0.71" in w for w in change.warnings)


def test_batch_size(ns, notebook):
    old = ns["loader"]
    target = notebook.add("setup", SETUP)
    change = get("dataloader.batch_size").apply(ns, cell=target, batch_size=8)
    assert ns["loader"].batch_size == 8 and old.batch_size == 4 and "batch_size=8," in change.new_source
    rewritten = run(change.new_source, {"__name__": "__main__"})
    flat = lambda bs: sorted(v for b in bs for v in b[0])  # noqa: E731 - same samples, bigger batches
    assert flat(batches(rewritten["loader"], rewritten["gen"])) == flat(batches(old, ns["gen"]))
    assert get("dataloader.batch_size").apply(ns, cell=change.new_source, batch_size=8).status == "already applied"
    change.undo()
    assert ns["loader"] is old and notebook.cells["setup"] == SETUP


def test_batch_size_default_and_refusals():
    data = TensorDataset(torch.ones(1000, 2))
    opt = get("dataloader.batch_size")
    assert opt.preview({"loader": DataLoader(data, batch_size=1)}).params["batch_size"] == 64  # may train
    assert opt.preview({"loader": DataLoader(data, batch_size=32)}).params["batch_size"] == 128
    assert opt.preview({"loader": DataLoader(TensorDataset(torch.ones(10, 2)))}).params["batch_size"] == 10
    infers = Report(signals={"backward": {"calls": 0}})
    assert opt.preview({"loader": DataLoader(data, batch_size=1)}, report=infers).params["batch_size"] == 256
    assert "its own batch_sampler" in opt.applicable(None, {"loader": DataLoader(data, batch_sampler=[[0]])})
    assert "batch_size=None" in opt.applicable(None, {"loader": DataLoader(data, batch_size=None)})
    change = opt.preview({"loader": DataLoader(data, batch_size=1)}, cell="loader = DataLoader(data, 1)\n")
    assert change.new_source == "loader = DataLoader(data, 256)\n"  # the cell does not train
    assert any("one sample per batch" in w for w in change.warnings)
    assert not any("learning rate" in w for w in change.warnings)  # the cell does not train


# ------------------------------------------------------------------ **kwargs: pytorch/examples' loaders
MNIST_SETUP = """\
import torch
from torch.utils.data import DataLoader, TensorDataset
use_cuda = False  # torch.cuda.is_available() in the example
dataset1 = TensorDataset(torch.rand(256, 1, 28, 28), torch.randint(0, 10, (256,)))
dataset2 = TensorDataset(torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))
train_kwargs = {'batch_size': 64}
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
#: pytorch/examples' vae and word_language_model style: keywords, then the platform's **kwargs.
VAE_SETUP = """\
import torch
from torch.utils.data import DataLoader, TensorDataset
kwargs = {'num_workers': 1, 'pin_memory': False}
train_loader = DataLoader(TensorDataset(torch.rand(256, 784)), batch_size=64, shuffle=True, **kwargs)
"""


def roundtrip_kwargs(notebook, setup: str, opt_id: str, expected_line: str, **params):
    """Apply to the setup cell: the loader rebuilt, the code rewritten where the value wins, undo exact."""
    ns = run(setup, {"__name__": "__main__"})
    old = ns["train_loader"]
    change = jupyter_perf.apply(opt_id, ns, cell=notebook.add("setup", setup), name="train_loader", **params)
    assert change.status == "applied" and not change.snippet, change.summary()
    assert expected_line in change.new_source and notebook.cells["setup"] == change.new_source
    rewritten = run(change.new_source, {"__name__": "__main__"})  # from scratch, the same loader settings
    for key, value in params.items():
        assert getattr(ns["train_loader"], key) == getattr(rewritten["train_loader"], key) == value
    again = jupyter_perf.apply(opt_id, ns, cell=change.new_source, name="train_loader", **params)
    assert again.status == "already applied"
    change.undo()
    assert ns["train_loader"] is old and notebook.cells["setup"] == setup
    return rewritten


@pytest.mark.parametrize("use_cuda", ["False", "True"])
def test_mnist_style_loader_built_from_updated_kwargs_is_rewritten(notebook, use_cuda):
    setup = MNIST_SETUP.replace("use_cuda = False", f"use_cuda = {use_cuda}").replace("'pin_memory': True",
                                                                                     "'pin_memory': False")
    merged = "train_loader = DataLoader(dataset1, **{**train_kwargs, 'num_workers': 2, 'persistent_workers': True})"
    rewritten = roundtrip_kwargs(notebook, setup, "dataloader.workers", merged, num_workers=2, persistent_workers=True)
    assert rewritten["test_loader"].num_workers == (1 if use_cuda == "True" else 0)  # its own kwargs untouched
    roundtrip_kwargs(notebook, setup, "dataloader.batch_size",
                     "train_loader = DataLoader(dataset1, **{**train_kwargs, 'batch_size': 128})", batch_size=128)


def test_vae_style_kwargs_defined_in_the_same_cell_are_edited_in_place(notebook):
    roundtrip_kwargs(notebook, VAE_SETUP, "dataloader.workers",
                     "kwargs = {'num_workers': 2, 'pin_memory': False, 'persistent_workers': True}\n"
                     "train_loader = DataLoader(TensorDataset(torch.rand(256, 784)), batch_size=64, shuffle=True, "
                     "**kwargs)", num_workers=2, persistent_workers=True)
    roundtrip_kwargs(notebook, VAE_SETUP, "dataloader.batch_size", "batch_size=256, shuffle=True, **kwargs)",
                     batch_size=256)


def test_a_loader_that_cannot_be_rewritten_gets_a_snippet_with_the_reason():
    ns = run(VAE_SETUP, {"__name__": "__main__"})
    cell = "args = (ds,)\ntrain_loader = DataLoader(*args, **kwargs)\n"
    change = get("dataloader.workers").preview(ns, cell=cell, num_workers=2)
    assert change.snippet and change.snippet_reason == (
        "the cell starting 'args = (ds,)': the call passes *args: which parameters its items fill is known only "
        "when it runs")  # the cell named as a person finds it (no prompt number outside a notebook)
    assert "code not rewritten (the cell starting 'args = (ds,)': the call passes *args" in change.summary()
    change = get("dataloader.workers").preview(ns, cell="for (x,) in train_loader:\n    pass\n", num_workers=2)
    assert change.snippet_reason == ("train_loader = DataLoader(...) was not found in the cell starting "
                                     "'for (x,) in train_loader:'")
