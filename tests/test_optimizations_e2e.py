"""End to end through the magic: profile → recommend → --apply → re-run, and the measured gain.

The three acceptance checks of issue 4 that this part covers: a sleep-bound
``__getitem__`` runs faster with workers, the loss-list leak stops growing,
and batch-size-1 inference runs ≥ 5× faster with a larger batch. Workers
bring ×2-2.7 on two cores, too close to any fixed threshold once the machine
is loaded, so that test asserts the direction by more than the steps' own
scatter (timing.py); the larger batch brings ×40-50 here, so ×5 stands on
any machine. benchmarks/fix_efficacy.py prints the gains themselves, from
the planted problems in benchmarks/fix_scenarios.py.
"""

import gc

import pytest
import torch
from optimization_fixtures import fix, release_namespaces, run  # noqa: F401
from timing import assert_faster, seconds_per_sample

import jupyter_perf
from jupyter_perf import apply_and_rerun
from jupyter_perf.diagnosis.memory import fit_growth
from jupyter_perf.optimizations import applied
from jupyter_perf.report import Comparison, Report

MB = 1e6
INPUT_PIPELINE, LOSS_LIST_LEAK, BATCH_SIZE_ONE = fix.INPUT_PIPELINE, fix.LOSS_LIST_LEAK, fix.BATCH_SIZE_ONE


@pytest.fixture(autouse=True)
def one_thread():
    """Time the planted problems, not OpenMP on a busy two-core machine: there, a parallel op waits a
    scheduler quantum for a descheduled thread, and batch-64 steps took 30-80 ms instead of 0.1 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def shell(ipython):
    """The shared shell, its namespace emptied of this test's objects afterwards (loaders' workers included)."""
    before = set(ipython.user_ns)
    yield ipython
    for change in applied():
        change.undo()
    for name in set(ipython.user_ns) - before:
        del ipython.user_ns[name]
    gc.collect()


def profiled(shell, scenario, options: str = "") -> Report:
    result = shell.run_cell(f"%%perfprofile --no-live -o _rep {options}\n" + scenario.cell)
    assert result.success, result.error_in_exec
    return shell.user_ns.pop("_rep")


def samples_ratio(before: Report, after: Report) -> float:
    return after.throughput["samples_per_s"] / before.throughput["samples_per_s"]


def test_slow_getitem_gets_workers(shell, capsys):
    shell.run_cell(INPUT_PIPELINE.setup)
    before = profiled(shell, INPUT_PIPELINE)
    assert before.bottleneck == "input_pipeline" and before.recommended()[0] == "dataloader.workers"
    after = profiled(shell, INPUT_PIPELINE, "--apply dataloader.workers")
    assert shell.user_ns["loader"].num_workers >= 2
    assert "dataloader.workers [applied]" in capsys.readouterr().out
    assert_faster(seconds_per_sample(before), seconds_per_sample(after), f"{before.phases} -> {after.phases}")


def test_loss_list_leak_stops_growing(shell):
    shell.run_cell(LOSS_LIST_LEAK.setup)
    before = profiled(shell, LOSS_LIST_LEAK, "--interval 0.02")
    assert before.bottleneck == "memory_leak" and before.recommended()[0] == "memory.release_graph"
    grew = fit_growth(before.timeline["steps"], before.timeline["rss_total"]).per_step_bytes
    assert grew > 2 * MB  # the planted leak: one batch of activations per step
    after = profiled(shell, LOSS_LIST_LEAK, "--interval 0.02 --apply memory.release_graph")
    fit = fit_growth(after.timeline["steps"], after.timeline["rss_total"])
    assert after.finding("memory_leak") is None  # by the diagnosis's own rule (32 MB, R² 0.8)
    assert fit.per_step_bytes < 0.1 * grew, f"{fit.per_step_bytes / MB:.2f} MB/step after, {grew / MB:.2f} before"
    assert all(isinstance(v, float) for v in shell.user_ns["val_losses"])
    assert not after.signals["retained_graphs"]


def test_batch_size_one_inference_gets_a_larger_batch(shell):
    shell.run_cell(BATCH_SIZE_ONE.setup)
    before = profiled(shell, BATCH_SIZE_ONE)
    assert "dataloader.batch_size" in before.recommended()
    after = profiled(shell, BATCH_SIZE_ONE, "--apply dataloader.batch_size")
    assert shell.user_ns["loader"].batch_size == 256  # the cell infers: no activations kept for backward
    ratio = samples_ratio(before, after)
    assert ratio >= 5, f"×{ratio:.2f}"


def test_unknown_id_is_a_usage_error_and_the_cell_does_not_run(shell, capsys):
    result = shell.run_cell("%%perfprofile --apply dataloader.workers,bogus\nran_anyway = True\n")
    assert not result.success and "ran_anyway" not in shell.user_ns
    assert "valid ids: dataloader.workers" in capsys.readouterr().err


def test_a_refused_optimization_is_said_and_the_cell_still_runs(shell, capsys):
    cell = "ran = 42\nif ran is None:\n    ran.backward()\n"
    result = shell.run_cell("%%perfprofile --no-live --apply inference.inference_mode\n" + cell)
    assert result.success and shell.user_ns["ran"] == 42
    assert "inference.inference_mode not applied: the cell calls .backward()" in capsys.readouterr().err


def test_apply_and_rerun_through_the_api():
    ns = run(BATCH_SIZE_ONE.setup, {"__name__": "__main__"})
    before = jupyter_perf.profile(BATCH_SIZE_ONE.cell, ns)
    change, comparison = apply_and_rerun("dataloader.batch_size", ns, BATCH_SIZE_ONE.cell, before, batch_size=256)
    assert change.status == "applied" and comparison.before is before
    assert comparison.after.steps < before.steps and change.remeasured == comparison.speedup
    again, nothing = apply_and_rerun("dataloader.batch_size", ns, BATCH_SIZE_ONE.cell, before, batch_size=256)
    assert again.status == "already applied" and nothing is None


def test_a_regression_is_flagged_with_the_undo(monkeypatch):
    ns = run(BATCH_SIZE_ONE.setup, {"__name__": "__main__"})
    before = Report(throughput={"steps_per_s": 100.0, "samples_per_s": 100.0}, wall_time=1.0)
    slower = Report(throughput={"steps_per_s": 10.0, "samples_per_s": 60.0}, wall_time=1.5)
    monkeypatch.setattr(jupyter_perf.runs, "run", lambda source, namespace: slower)
    change, comparison = apply_and_rerun("dataloader.batch_size", ns, BATCH_SIZE_ONE.cell, before)
    assert change.remeasured == pytest.approx(0.6)  # samples/s, not steps/s: the batch size changed
    assert any("samples/s ×0.60, worse beyond the run-to-run noise" in w and "change.undo()" in w
               for w in change.warnings), change.warnings
    change.undo()
    assert ns["loader"].batch_size == 1


def test_speedup_prefers_samples_per_second():
    b = Report(throughput={"steps_per_s": 100.0, "samples_per_s": 100.0})
    a = Report(throughput={"steps_per_s": 50.0, "samples_per_s": 3200.0})
    assert Comparison(b, a).speedup == 32.0 and Comparison(b, a).basis == "samples/s"
    assert Comparison(Report(wall_time=2.0), Report(wall_time=1.0)).speedup == 2.0
