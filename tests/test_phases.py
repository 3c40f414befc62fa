"""Phase times are right: planted sleeps show up in the matching phase, within 5% of how long they really slept.

A loaded machine stretches a run where no clock in the cell can see it (a woken thread waits for a core,
before and after each sleep). So each sleep is timed where it sleeps, and each phase's code is timed by
the code itself (from entering it to leaving it: a VM can make the first microseconds of work after a
sleep take milliseconds, in any process). A phase must hold at least its sleeps and at most 5% more than
its code's own time, plus three times the machine's measured delay: how much longer than asked the sleeps
took, on average, in the same run. Each step's row is compared with the cell's own clock around the step.
"""

import itertools
import statistics

import pytest
from conftest import run_setup, settled_heap

import jupyter_perf

SETUP = """
import time, torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate
import torch.nn.functional as F

DATA_S, FORWARD_S, BACKWARD_S, OPTIMIZER_S = 0.060, 0.090, 0.080, 0.070
slept, oversleep, spent, fetched_at = {}, [], {}, []

def done(phase, t0):
    spent.setdefault(phase, []).append(time.perf_counter() - t0)

def nap(phase, seconds):
    t0 = time.perf_counter()
    time.sleep(seconds)
    slept.setdefault(phase, []).append(time.perf_counter() - t0)
    oversleep.append(slept[phase][-1] - seconds)

class SleepyData(Dataset):
    def __len__(self): return 10
    def __getitem__(self, i):
        fetched_at.append(time.perf_counter())
        nap("data_wait", DATA_S)
        return torch.randn(8), torch.randn(2)

class SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x): return x.clone()
    @staticmethod
    def backward(ctx, grad):
        t0 = time.perf_counter()
        nap("backward", BACKWARD_S)
        done("backward", t0)
        return grad

class SleepyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
    def forward(self, x):
        t0 = time.perf_counter()
        nap("forward", FORWARD_S)
        out = SlowBackward.apply(self.fc(x))
        done("forward", t0)
        return out

class SleepySGD(torch.optim.SGD):
    def step(self, closure=None):
        t0 = time.perf_counter()
        nap("optimizer", OPTIMIZER_S)
        out = super().step(closure)
        done("optimizer", t0)
        return out

def collate(batch):  # a batch's code: from its fetch to its collation
    out = default_collate(batch)
    done("data_wait", fetched_at[-1])
    return out

model = SleepyModel()
opt = SleepySGD(model.parameters(), lr=0.01)
loader = DataLoader(SleepyData(), batch_size=1, collate_fn=collate)
"""

TRAIN = """
ends = [time.perf_counter()]
for x, y in loader:
    loss = F.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ends.append(time.perf_counter())
"""


def fresh_setup() -> dict:
    namespace = run_setup(SETUP)
    exec(TRAIN, namespace)  # warm-up: first calls into torch cost more than 5% of a sleep
    for record in ("slept", "oversleep", "spent", "fetched_at"):
        namespace[record].clear()
    return namespace


def assert_holds(phase_s: float, namespace: dict, phase: str) -> None:
    """``phase_s`` (a phase's mean per step) holds that phase's sleeps, and at most 5% more than its code took by its
    own clock, plus what load added."""
    slept = statistics.mean(namespace["slept"][phase])
    code = statistics.mean(namespace["spent"][phase])
    delay = max(0.0, statistics.mean(namespace["oversleep"]))
    assert 0.98 * slept <= phase_s <= 1.05 * code + 3 * delay, (phase, phase_s, slept, code, delay)


@pytest.fixture(scope="module")
def profiled():
    """The Report of the profiled run, and the namespace whose sleeps and clock readings it ran with."""
    namespace = fresh_setup()
    with settled_heap():
        return jupyter_perf.profile(TRAIN, namespace), namespace


@pytest.fixture(scope="module")
def report(profiled):
    return profiled[0]


@pytest.mark.parametrize("phase", ["data_wait", "forward", "backward", "optimizer"])
def test_planted_sleep_lands_in_its_phase(profiled, phase):
    report, namespace = profiled
    assert report.steps == 10
    assert_holds(report.phases[phase], namespace, phase)


def test_phases_sum_to_the_step_time(profiled):
    report, namespace = profiled
    assert sum(report.phases.values()) == pytest.approx(report.step_time, rel=1e-9)
    assert report.phases["host_to_device"] == 0.0  # no GPU: nothing was copied
    assert report.phases["other"] < 0.01 + 3 * max(0.0, statistics.mean(namespace["oversleep"]))
    assert report.step_time_total <= report.wall_time


def test_step_series_has_one_row_per_step(profiled):
    report, namespace = profiled
    series = report.step_series
    assert len(series["wall"]) == 10
    # Against the cell's own clock around each step, which sees what load added to it too.
    each_step = [b - a for a, b in itertools.pairwise(namespace["ends"])]
    assert all(w == pytest.approx(s, rel=0.05) for w, s in zip(series["wall"], each_step)), (series["wall"], each_step)
    assert series["start"] == sorted(series["start"])


def test_optimizer_delimits_steps_without_a_dataloader():
    namespace = run_setup(SETUP)
    namespace["batches"] = [(namespace["torch"].randn(1, 8), namespace["torch"].randn(1, 2)) for _ in range(8)]
    source = TRAIN.replace("for x, y in loader:", "for x, y in batches:")
    report = jupyter_perf.profile(source, namespace)
    assert report.step_anchor == "optimizer" and report.steps == 8
    assert_holds(report.phases["forward"], namespace, "forward")
    assert report.phases["data_wait"] == 0.0
    assert report.samples == 8  # from the model's input batch dimension


def test_forward_delimits_steps_for_plain_inference():
    namespace = run_setup(SETUP)
    source = "with torch.no_grad():\n    for _ in range(6):\n        model(torch.randn(4, 8))\n"
    report = jupyter_perf.profile(source, namespace)
    assert report.step_anchor == "forward" and report.steps == 6 and report.samples == 24
    assert_holds(report.phases["forward"], namespace, "forward")


def test_an_optimizer_subclass_calling_super_step_counts_once():
    namespace = run_setup(
        "import torch\n"
        "torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # a plain SGD exists too\n"
        "class MySGD(torch.optim.SGD):\n"
        "    def step(self, closure=None):\n"
        "        return super().step(closure)\n"
        "p = torch.nn.Parameter(torch.randn(4))\n"
        "opt = MySGD([p], lr=0.1)\n"
    )
    report = jupyter_perf.profile("for _ in range(8):\n    opt.zero_grad(); (p * p).sum().backward(); opt.step()\n",
                                  namespace)
    assert report.step_anchor == "optimizer" and report.steps == 8
    assert report.signals["optimizers"] == [
        {"class": "MySGD", "fused": None, "foreach": None, "lr": 0.1, "steps": 8, "params_device": "cpu"}
    ]
