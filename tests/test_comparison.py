"""Before/after comparisons judged by what the fix targets, against the noise the runs' own step times show.

A leak fix is judged by the memory a step adds, a memory fix by the peak, anything else by the work done per
second; per-step rows go per sample where a step holds another batch after. Real Report objects, built as a
run of the planted problem would leave them.
"""

from __future__ import annotations

import random

import pytest

from jupyter_perf.catalog import CATALOG, TARGETS
from jupyter_perf.report import NOISE_FLOOR, Comparison, Report, step_time_error
from jupyter_perf.ui import comparison as view

MiB, GiB = 2**20, 2**30


def run(steps: int = 40, step_s: float = 0.1, batch: int = 16, growth: float = 0.0, scatter: float = 0.0,
        peak: float = 1 * GiB, seed: int = 0) -> Report:
    """A run's Report: ``steps`` steps of about ``step_s`` (``scatter``: their relative spread), ``batch`` samples
    each, host memory growing ``growth`` bytes a step from 500 MiB."""
    rng = random.Random(seed)
    walls = [step_s * (1 + scatter * rng.uniform(-1, 1)) for _ in range(steps)]
    total = sum(walls)
    return Report(
        wall_time=total + 0.2, steps=steps, step_anchor="data", step_time_total=total, samples=steps * batch,
        throughput={"steps_per_s": steps / total, "samples_per_s": steps * batch / total},
        phases={"data_wait": 0.4 * total / steps, "forward": 0.3 * total / steps, "backward": 0.3 * total / steps},
        step_series={"wall": walls},
        timeline={"t": [i * step_s for i in range(steps + 1)], "steps": list(range(steps + 1)),
                  "rss_total": [500 * MiB + growth * i + rng.uniform(0, 64 * 1024) for i in range(steps + 1)]},
        peaks={"rss_bytes": peak, "rss_total_bytes": peak},
    )


def test_every_catalog_entry_names_a_target_metric():
    assert {entry.target for entry in CATALOG.values()} <= set(TARGETS)
    assert CATALOG["memory.release_graph"].target == "memory_growth"
    assert CATALOG["memory.checkpointing"].target == "peak_memory"
    assert CATALOG["dataloader.batch_size"].target == "throughput"


def test_a_leak_fix_is_judged_by_the_growth_per_step_not_by_a_slower_throughput():
    before = run(growth=6 * MiB, scatter=0.3)
    after = run(step_s=0.11, growth=0.0, scatter=0.3, seed=1)  # a little slower
    comparison = Comparison(before, after, "memory.release_graph")
    judged = comparison.judged()
    assert judged.name == "host RSS growth per step" and judged.verdict == "better"
    assert judged.before == pytest.approx(6 * MiB, rel=0.01) and abs(judged.after) < 64 * 1024
    assert not comparison.regression
    text = view.text(comparison)
    assert "judged by host RSS growth per step: +6.00 MiB/step →" in text and "better" in text.splitlines()[0]
    assert "regression" not in text
    html = view.html(comparison)
    assert "regression" not in html and "growth per step" in html


def test_a_batch_size_fix_is_judged_by_samples_per_second_with_per_step_rows_per_sample():
    before = run(steps=64, step_s=0.05, batch=16)
    after = run(steps=16, step_s=0.139, batch=64, seed=1)  # 64-sample steps: fewer, slower, more samples/s
    comparison = Comparison(before, after, "dataloader.batch_size")
    assert comparison.per_sample and comparison.judged().name == "samples/s"
    assert comparison.judged().verdict == "better" and comparison.judged().ratio == pytest.approx(1.44, rel=0.01)
    rows = {row[0].strip(): row for row in view.rows(comparison)}
    assert "steps/s" not in rows  # a step is other work after: its rate would mislead
    assert "time per sample" in rows and "time per step" not in rows
    assert not any(row[4] == "worse" for row in rows.values()), rows
    text = view.text(comparison)
    assert "a step held 16 samples before and 64 after: times are per sample" in text
    single = Comparison(run(steps=64, step_s=0.01, batch=1), run(steps=16, step_s=0.05, batch=64, seed=1),
                        "dataloader.batch_size")
    assert "a step held 1 sample before and 64 after" in view.text(single)


def test_a_throughput_loss_beyond_the_noise_is_a_regression_and_within_it_is_not():
    steady = Comparison(run(scatter=0.02), run(step_s=0.14, scatter=0.02, seed=1), "dataloader.workers")
    assert steady.noise == NOISE_FLOOR and steady.regression  # ×0.71 on steady steps
    assert "⚠ regression: samples/s ×0.7" in view.text(steady)

    noisy = Comparison(run(steps=12, scatter=0.9), run(steps=12, step_s=0.105, scatter=0.9, seed=1),
                       "dataloader.workers")
    assert noisy.noise > 0.1  # twelve steps scattered ±90%: the mean moves that much between runs
    assert not noisy.regression and noisy.judged().verdict == "same"
    assert f"noise: ±{round(noisy.noise * 100)}% on rates and times (from the step times of both runs)" in view.text(
        noisy)


def test_the_noise_of_a_run_comes_from_its_own_step_times_robust_to_a_slow_first_step():
    report = run(steps=100, scatter=0.1)
    quiet = step_time_error(report)
    report.step_series["wall"][0] = 30.0  # compilation, warm-up
    assert step_time_error(report) == pytest.approx(quiet, rel=0.1)
    assert step_time_error(Report()) is None


def test_a_memory_fix_is_judged_by_the_peak_and_may_run_slower():
    before, after = run(peak=8 * GiB), run(step_s=0.13, peak=5 * GiB, seed=1)
    comparison = Comparison(before, after, "memory.checkpointing")
    judged = comparison.judged()
    assert judged.name == "peak total RSS" and judged.verdict == "better" and not comparison.regression
    assert "regression" not in view.text(comparison)


def test_peaks_of_a_rerun_in_the_same_process_move_a_little_without_being_worse():
    # a bigger batch after: faster, and the kernel's peak a few percent higher, as the re-run found it
    comparison = Comparison(run(peak=258 * MiB), run(step_s=0.05, peak=273 * MiB, seed=1), "dataloader.batch_size")
    peaks = {m.name: m.verdict for m in comparison.rows() if m.unit == "B"}
    assert peaks == {"peak total RSS": "same", "peak kernel RSS": "same"}
    assert "noise: ±10% on peak memory" in view.text(comparison)
    doubled = Comparison(run(peak=258 * MiB), run(peak=520 * MiB, seed=1), "dataloader.batch_size")
    assert {m.verdict for m in doubled.rows() if m.unit == "B"} == {"worse"}


def test_an_undone_change_marks_its_comparison_out_of_date():
    comparison = Comparison(run(), run(step_s=0.08, seed=1), "dataloader.workers", outdated="the change was undone")
    assert "out of date: the change was undone" in view.text(comparison)
    assert "jpp-outdated" in view.html(comparison)


@pytest.mark.parametrize("after_wall, flagged", [(4.0, False), (6.0, True)])
def test_runs_without_steps_compare_wall_time(after_wall, flagged):
    comparison = Comparison(Report(wall_time=5.0), Report(wall_time=after_wall))
    assert comparison.judged().name == "wall time" and comparison.regression == flagged


def test_a_comparison_displays_as_its_view(ipython):
    comparison = Comparison(run(), run(step_s=0.08, seed=1), "dataloader.workers")
    shown = ipython.display_formatter.format(comparison)[0]
    assert shown == view.mimebundle(comparison)
    assert shown["text/plain"].startswith("jupyter-perf before/after · dataloader.workers, judged by samples/s")
