"""jupyter_perf.tune: measured values on the real loop, the best applied like any change, nothing left behind.

Real parts throughout: a dataset that waits per sample (like network storage) behind real worker
processes, a real model trained by the cell, the fake notebook of optimization_fixtures.py behind the
cell-edit channel. What is asserted is what tune decided relative to what it measured, and margins far
wider than a loaded machine's noise (a sleep-bound loader with no worker against several), never a
timing.
"""

from __future__ import annotations

import _thread
import multiprocessing
import random
import re
import threading

import pytest
import torch
from optimization_fixtures import notebook_fixture  # noqa: F401  (fixture)
from torch.utils.data import DataLoader

import jupyter_perf
from jupyter_perf.optimizations import NotApplicable
from jupyter_perf.optimizations.tune import MAX_BAND, NOISE, predict_peak

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch: "more workers than suggested"

SETUP = """\
import time, torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
torch.manual_seed(0)

class WaitingDataset(Dataset):
    '''Each sample waits 4 ms, as a read from network storage does: workers overlap the waits.'''
    def __len__(self): return 256
    def __getitem__(self, i):
        time.sleep(0.004)
        return torch.randn(32), i % 4

model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loader = DataLoader(WaitingDataset(), batch_size=8, shuffle=True)
losses = []
"""
LOOP = """\
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    losses.append(loss.item())
print("epoch done")
"""


@pytest.fixture()
def book(notebook):
    notebook.add("setup", SETUP)
    notebook.add("loop", LOOP)
    return notebook


@pytest.fixture()
def ns(ipython):
    """The setup cell run in the shell by id, so the loader's defining cell is known (cells.py); its names
    removed after."""
    before = set(ipython.user_ns)
    assert ipython.run_cell(SETUP, cell_id="setup").success
    yield ipython.user_ns
    for name in set(ipython.user_ns) - before:
        del ipython.user_ns[name]


def state(namespace: dict) -> dict:
    """What a trial must not change: weights, optimizer moments, RNGs, the list the loop appends to."""
    return {"weights": [p.detach().clone() for p in namespace["model"].parameters()],
            "momentum": [s["momentum_buffer"].clone() for s in namespace["opt"].state.values()],
            "rng": torch.get_rng_state(), "random": random.getstate(), "losses": list(namespace["losses"]),
            "training": namespace["model"].training, "loss": namespace.get("loss")}


def assert_state(before: dict, namespace: dict) -> None:
    after = state(namespace)
    assert all(torch.equal(a, b) for a, b in zip(before["weights"], after["weights"], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before["momentum"], after["momentum"], strict=True))
    assert torch.equal(before["rng"], after["rng"]) and before["random"] == after["random"]
    assert before["losses"] == after["losses"] and before["training"] == after["training"]
    assert before["loss"] is after["loss"]


def assert_nothing_left() -> None:
    assert multiprocessing.active_children() == []  # every trial's worker processes joined
    assert "__iter__" not in vars(DataLoader) or vars(DataLoader)["__iter__"] is ORIGINAL_ITER


ORIGINAL_ITER = vars(DataLoader)["__iter__"]


def test_tune_workers_on_a_wait_bound_dataset_applies_a_top_value_and_undoes_exactly(ns, book, capsys):
    exec(LOOP, ns)  # one epoch trained: momentum buffers and a loss exist, as after a real run
    capsys.readouterr()
    before, old = state(ns), ns["loader"]
    change = jupyter_perf.tune("dataloader.workers", ns, cell=book.add("loop", LOOP), seconds=0.3)
    tuning = change.tuning
    rates = {t.value: t.samples_per_s for t in tuning.trials if t.samples_per_s}
    assert tuning.current == 0 and {0, 1, 2} <= set(rates)
    spread = max(t.spread for t in tuning.trials if t.spread is not None)
    assert NOISE <= tuning.band == min(MAX_BAND, max(NOISE, spread))
    assert sum(t.runs == 2 for t in tuning.trials) == 2  # the two fastest, measured twice: their spread is the noise
    assert rates[tuning.chosen] >= max(rates.values()) * (1 - tuning.band)  # among the fastest measured
    assert tuning.chosen == min(v for v, r in rates.items() if r >= max(rates.values()) * (1 - tuning.band))
    # the waits overlap: ×2.5-4 measured under a load of 6-8 on two cores, trials' noise ±15%
    assert rates[tuning.chosen] > 1.5 * rates[0], change.summary()
    assert change.status == "applied" and ns["loader"] is not old
    assert (ns["loader"].num_workers, ns["loader"].persistent_workers) == (tuning.chosen, True)
    new_line = (f"loader = DataLoader(WaitingDataset(), batch_size=8, shuffle=True, num_workers={tuning.chosen}, "
                "persistent_workers=True)")
    assert book.cells["setup"] == SETUP.replace("loader = DataLoader(WaitingDataset(), batch_size=8, shuffle=True)",
                                                new_line)
    assert f"+{new_line}" in change.diff and "samples/s" in change.summary() and tuning.how.startswith("the profiled")
    assert capsys.readouterr().out == ""  # the trials' prints were theirs
    assert_state(before, ns)
    assert_nothing_left()

    change.undo()
    assert ns["loader"] is old and book.cells["setup"] == SETUP and book.cells["loop"] == LOOP
    assert_state(before, ns)


def test_tune_batch_size_skips_a_size_predicted_not_to_fit(ns, book, ipython):
    big = SETUP.replace("nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4)",
                        "nn.Linear(32, 32768), nn.ReLU(), nn.Linear(32768, 4)")  # ≈ 0.5 MiB of activations/sample
    assert ipython.run_cell(big, cell_id="setup").success
    book.add("setup", big)
    budget = 256 * 2**20  # a small artificial budget: the 4096-sample batch (≈ 2 GiB) must not run
    change = jupyter_perf.tune("dataloader.batch_size", ns, cell=LOOP, values=[16, 64, 4096], seconds=0.2,
                               memory_budget=budget)
    trials = {t.value: t for t in change.tuning.trials}
    assert all(trials[v].samples_per_s and trials[v].peak_bytes for v in (16, 64))
    assert trials[64].peak_bytes > trials[16].peak_bytes  # activations grow with the batch
    assert trials[4096].samples_per_s is None and trials[4096].note.startswith("not tried: predicted ")
    said = int(re.search(r"predicted (\d+) MiB", trials[4096].note)[1])
    assert said * 2**20 > budget  # never run: ≈ 2 GiB predicted from the sizes measured before it
    predicted = predict_peak([trials[16], trials[64]], 4096)  # (the two largest, as the search had them)
    assert said / 2 < predicted / 2**20 < said * 2  # (the closest two, run again, may have measured a bit more)
    assert change.tuning.chosen in (8, 16, 64) and ns["loader"].batch_size == change.tuning.chosen
    if change.tuning.chosen != 8:
        assert change.status == "applied" and f"batch_size={change.tuning.chosen}," in book.cells["setup"]
    else:  # the current size measured best: nothing to change
        assert change.status == "already applied" and not change.edits
    change.undo()
    assert ns["loader"].batch_size == 8 and book.cells["setup"] == big


def test_a_cell_that_builds_its_own_loader_runs_rewritten_with_each_value(ns, book):
    cell = "loader = DataLoader(WaitingDataset(), batch_size=8)  # a fresh dataset each run\n" + LOOP
    target = book.add("loop", cell)
    change = jupyter_perf.tune("dataloader.workers", ns, cell=target, values=[0, 2], seconds=0.2)
    assert all(t.samples_per_s for t in change.tuning.trials)  # its own loader, metered
    assert change.tuning.chosen == 2 and book.cells["loop"].startswith(
        "loader = DataLoader(WaitingDataset(), batch_size=8, num_workers=2, persistent_workers=True)")
    change.undo()
    assert book.cells["loop"] == cell
    assert_nothing_left()


def test_ctrl_c_stops_tuning_with_everything_as_it_was(ns, book):
    before, old = state(ns), ns["loader"]
    timer = threading.Timer(1.0, _thread.interrupt_main)  # what Ctrl-C does to the kernel's main thread
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            jupyter_perf.tune("dataloader.workers", ns, cell=LOOP, values=[0, 1, 2, 4], seconds=1.0)
    finally:
        timer.cancel()
    assert ns["loader"] is old and book.cells["setup"] == SETUP
    assert_state(before, ns)
    assert_nothing_left()


def test_without_a_cell_the_loader_alone_is_timed_and_says_so(ns, book):
    change = jupyter_perf.tune("dataloader.workers", ns, values=[0, 2], seconds=0.2)
    assert change.tuning.how.startswith("loader alone, without the training step")
    assert change.tuning.chosen == 2 and "num_workers=2" in book.cells["setup"]  # the cell that built it
    change.undo()
    assert book.cells["setup"] == SETUP


def test_what_tune_refuses():
    namespace = {"loader": DataLoader(list(range(8)))}
    with pytest.raises(NotApplicable, match="tune measures dataloader.workers, dataloader.batch_size; "
                                            "precision.amp has no value to search"):
        jupyter_perf.tune("precision.amp", namespace)
    with pytest.raises(TypeError, match="tune chooses num_workers by measuring"):
        jupyter_perf.tune("dataloader.workers", namespace, num_workers=2)
    with pytest.raises(NotApplicable, match="the cell ran without iterating loader"):
        jupyter_perf.tune("dataloader.workers", namespace, cell="x = 1\n", values=[0, 1])
    assert_nothing_left()
