"""Counting mode: a pure inference loop of short steps is counted, one step in K timed, and its totals stay exact.

Behaviour only, no timing asserts: whether counting began is read from
``signals['forward']['counted_calls']``, and each test holds the counted run
to what full timing gives (``counting`` off: the decision never comes).
"""

import random
import threading

import pytest
from conftest import run_setup

import jupyter_perf
from jupyter_perf.probes import steps as steps_module
from jupyter_perf.probes.modules import ModuleProbe
from jupyter_perf.probes.patching import Ledger
from jupyter_perf.probes.steps import StepTrace
from jupyter_perf.sampling.timeline import Series

CALLS = 3000  # a few times _COUNT_AFTER: most of the loop is counted

SETUP = """
import time, torch
from torch import nn
torch.manual_seed(0)
model = nn.Linear(4, 4)
x = torch.randn(2, 4)
"""

INFERENCE = f"""
t0 = time.perf_counter()
with torch.inference_mode():
    for _ in range({CALLS}):
        model(x)
elapsed = time.perf_counter() - t0
"""


@pytest.fixture(params=["counted", "timed"])
def mode(request, monkeypatch):
    """Each behaviour twice: counting allowed, and counting off (every step timed, as before counting existed)."""
    if request.param == "timed":
        monkeypatch.setattr(steps_module, "_COUNT_AFTER", 10**9)
    return request.param


def profiled(source, setup=SETUP):
    namespace = run_setup(setup)
    return jupyter_perf.profile(source, namespace), namespace


def assert_consistent(report):
    assert sum(report.phase_totals.values()) == pytest.approx(report.step_time_total, rel=1e-9)
    assert all(v >= 0.0 for v in report.phase_totals.values())
    assert len(report.step_series["wall"]) <= 4096


def test_a_short_step_inference_loop_is_counted_with_exact_totals(mode):
    report, ns = profiled(INFERENCE)
    forward = report.signals["forward"]
    assert (forward["counted_calls"] > 0) == (mode == "counted")
    assert report.step_anchor == "forward"
    assert report.steps == forward["calls"] == CALLS
    assert report.samples == 2 * CALLS and report.signals["samples_per_step"] == 2
    assert forward["inference_calls"] == CALLS and forward["grad_enabled_calls"] == 0
    assert forward["autocast_calls"] == 0
    # the steps run from the first call's start to the end of the last step: the loop's time, give or take its ends
    assert report.step_time_total == pytest.approx(ns["elapsed"], rel=0.05, abs=0.002)
    assert 0.0 < report.phase_totals["forward"] <= report.step_time_total
    assert forward["seconds"] > 0.0 and forward["us_per_leaf_call"] > 0
    assert_consistent(report)


def test_mode_counts_stay_exact_when_counted(mode):
    """Evaluation without no_grad: every counted call still says it recorded a graph."""
    report, _ = profiled(INFERENCE.replace("torch.inference_mode()", "torch.enable_grad()"))
    forward = report.signals["forward"]
    assert forward["grad_enabled_calls"] == CALLS and forward["inference_calls"] == 0
    assert report.steps == CALLS


def test_a_varying_batch_size_keeps_samples_exact(mode):
    sizes = [random.Random(0).randint(1, 9) for _ in range(CALLS)]
    setup = SETUP + f"batches = [torch.randn(n, 4) for n in {sizes}]\n"
    report, _ = profiled("with torch.no_grad():\n    for b in batches:\n        model(b)\n", setup)
    assert report.steps == CALLS
    assert report.samples == sum(sizes)
    assert (report.signals["forward"]["counted_calls"] > 0) == (mode == "counted")


def test_a_nested_watched_model_is_not_a_step(mode):
    setup = (
        SETUP
        + """
inner = nn.Linear(4, 4)   # watched on its own: it is in the namespace before the model that calls it
class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        return self.inner(x) + self.inner(x)
outer = Outer()
"""
    )
    source = f"with torch.no_grad():\n    for _ in range({CALLS}):\n        outer(x)\n"
    report, _ = profiled(source, setup)
    assert report.steps == CALLS
    calls = {m["name"]: m["calls"] for m in report.signals["models"]}
    assert calls == {"outer": CALLS}, "inner ran only inside outer's forward: never a step, never timed"
    assert (report.signals["forward"]["counted_calls"] > 0) == (mode == "counted")


@pytest.mark.parametrize(
    "interlude, phase",
    [
        ("loss = model(x).sum(); loss.backward()", "backward"),
        ("opt.step(); opt.zero_grad()", "optimizer"),
        ("for (b,) in loader: model(b)", "data_wait"),
    ],
)
def test_counting_stops_for_any_other_phase_and_totals_hold(mode, interlude, phase):
    setup = (
        SETUP
        + """
from torch.utils.data import DataLoader, TensorDataset
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loader = DataLoader(TensorDataset(torch.randn(6, 4)), batch_size=2)
"""
    )
    loop = f"with torch.no_grad():\n    for _ in range({CALLS}):\n        model(x)\n"
    report, _ = profiled(loop + interlude + "\n" + loop, setup)
    forwards = 2 * CALLS + interlude.count("model(") * (3 if "loader" in interlude else 1)
    assert report.steps == report.signals["forward"]["calls"] == forwards
    assert report.phase_totals[phase] > 0.0, "the interlude's time is in a step, as without counting"
    assert report.samples == 2 * forwards
    assert_consistent(report)
    # counting began in the first loop and again in the second
    assert (report.signals["forward"]["counted_calls"] > CALLS) == (mode == "counted")


def test_another_model_stops_counting_at_its_call(mode):
    """Its call is forward time in the step it falls in: only the loop's own model makes steps."""
    setup = SETUP + "other = nn.Linear(4, 4)\n"
    loop = f"    for _ in range({CALLS}):\n        model(x)\n"
    report, _ = profiled("with torch.no_grad():\n" + loop + "    other(x)\n" + loop, setup)
    assert report.steps == 2 * CALLS and report.samples == 2 * 2 * CALLS
    assert {m["name"]: m["calls"] for m in report.signals["models"]} == {"model": 2 * CALLS, "other": 1}
    assert_consistent(report)


def test_a_call_by_keyword_stops_counting_and_its_samples_still_count(mode):
    """``model(input=x)``: the counting wrapper reads only a positional input, so it hands the call over to be
    timed, where the keyword's batch dimension counts (as ``model(**batch)`` passes a tokenizer's output)."""
    loop = f"    for _ in range({CALLS}):\n        model(x)\n"
    report, _ = profiled("with torch.no_grad():\n" + loop + "    model(input=x)\n" + loop)
    assert report.steps == 2 * CALLS + 1
    assert report.samples == 2 * (2 * CALLS + 1)
    assert_consistent(report)
    assert (report.signals["forward"]["counted_calls"] > CALLS) == (mode == "counted"), "counting began again"


def test_an_input_without_a_batch_dimension_makes_the_samples_unknown(mode):
    setup = SETUP + ("class Scalar(nn.Module):\n"
                     "    def __init__(self):\n        super().__init__(); self.w = nn.Parameter(torch.ones(()))\n"
                     "    def forward(self, s):\n        return self.w * s\n"
                     "scalar = Scalar()\n")
    report, _ = profiled("with torch.no_grad():\n    for _ in range(50):\n        scalar(torch.tensor(2.0))\n", setup)
    assert report.steps == 50
    assert report.samples is None, "the total is not made up"


# ------------------------------------------------------------ the trace itself, live
@pytest.fixture
def probed():
    """A StepTrace fed by the module probe alone, read while the loop runs (what the dashboard and sampler see)."""
    import torch
    from torch import nn

    model = nn.Linear(4, 4)
    trace = StepTrace()
    probe = ModuleProbe(trace, {"model": model})
    ledger = Ledger()
    probe.install(ledger)
    try:
        with torch.inference_mode():
            yield trace, probe, model, torch.randn(2, 4)
    finally:
        ledger.restore()


def test_live_views_keep_up_while_counting(probed, monkeypatch):
    trace, _probe, model, x = probed
    monkeypatch.setattr(steps_module, "ACCOUNT_EVERY_S", 0.0)  # account at every clock read ...
    monkeypatch.setattr(steps_module, "_TIME_EVERY_S", 0.0)  # ... which every other call makes
    lags = []
    for n in range(1, CALLS + 1):
        model(x)
        if trace.counting is not None:
            assert trace.steps_closed == n - 1, "each counted call closes the step before it"
            lags.append(trace.steps_closed - trace.steps)
    assert trace.counting is not None and len(lags) > CALLS // 2, "the loop is being counted"
    assert max(lags) <= 2, "counted blocks are accounted as the loop runs, not at the end"
    assert trace.samples == 2 * trace.steps and trace.series.count == trace.steps
    assert trace.series.latest()["wall"] > 0
    trace.finish()
    assert trace.counting is None
    assert trace.steps == trace.steps_closed == trace.series.count == CALLS


def test_calls_from_another_thread_are_not_steps(probed):
    import torch

    trace, _probe, model, x = probed
    for _ in range(CALLS):
        model(x)
    assert trace.counting is not None
    closed = trace.steps_closed

    def elsewhere():
        with torch.inference_mode():
            for _ in range(100):
                model(x)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert trace.steps_closed == closed
    trace.finish()
    assert trace.steps == CALLS


# ------------------------------------------------------------ Series blocks
def test_a_block_of_rows_is_stored_as_its_rows_one_by_one():
    rng = random.Random(1)
    for _ in range(200):
        capacity = rng.choice([2, 4, 8, 16])
        block, single = Series(("start", "wall", "samples"), capacity), Series(("start", "wall", "samples"), capacity)
        for _ in range(rng.randint(1, 12)):
            row = (rng.random(), rng.random(), None if rng.random() < 0.1 else rng.choice([1.0, 16.0]))
            if rng.random() < 0.4:
                block.append(row)
                single.append(row)
            else:
                n = rng.randint(0, 300)
                block.append_block(row, n)
                for _ in range(n):
                    single.append(row)
        assert (block.count, block.stride) == (single.count, single.stride)
        got, want = block.columns(), single.columns()
        assert got.keys() == want.keys()
        for name in want:
            assert [v is None for v in got[name]] == [v is None for v in want[name]]
            assert [v for v in got[name] if v is not None] == pytest.approx([v for v in want[name] if v is not None])
