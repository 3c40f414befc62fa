"""Planted problems → the right bottleneck and advice, through profile() (the magic and a notebook: other files)."""

import pytest
import scenarios
from conftest import run_setup, settled_heap

import jupyter_perf
from jupyter_perf.report import BOTTLENECKS, OPTIMIZATIONS


def profiled(scenario):
    namespace = run_setup(scenario.setup)
    with settled_heap():
        return jupyter_perf.profile(scenario.cell, namespace), namespace


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.name)
def test_bottleneck_of_each_planted_scenario(scenario):
    report, _ = profiled(scenario)
    assert report.bottleneck == scenario.bottleneck, (report.bottleneck, [f.summary for f in report.findings])
    assert report.bottleneck in BOTTLENECKS
    assert all(r.optimization in OPTIMIZATIONS for r in report.recommendations)
    if scenario.bottleneck not in ("none", "memory_capacity"):
        main = next(f for f in report.findings if f.bottleneck == report.bottleneck)
        assert main.evidence, "the bottleneck must come with numbers"


def test_input_pipeline_evidence_and_advice():
    report, _ = profiled(scenarios.INPUT_PIPELINE)
    assert report.steps == 20 and report.step_anchor == "optimizer"
    assert report.samples == 160
    assert report.phases["data_wait"] >= 8 * 0.003  # eight 3 ms samples per batch
    assert max(report.phases, key=report.phases.get) == "data_wait"
    assert report.recommendations[0].optimization == "dataloader.workers"
    assert report.recommendations[0].expected_speedup > 1.2
    assert report.signals["dataloaders"][0]["name"] == "loader"


def test_memory_leak_names_the_list_and_recommends_release_graph():
    report, _ = profiled(scenarios.MEMORY_LEAK)
    [held] = report.signals["retained_graphs"]
    assert (held["name"], held["type"], held["tensors"]) == ("val_losses", "list", 60)
    assert held["per_step"] == pytest.approx(1.0)  # one graph gained per step: it grows with the steps
    assert report.recommendations[0].optimization == "memory.release_graph"
    assert "val_losses" in report.recommendations[0].reason
    assert report.peaks["rss_bytes"] > 0


def test_a_leak_that_refills_freed_memory_is_still_seen():
    namespace = run_setup(scenarios.MEMORY_LEAK.setup)
    jupyter_perf.profile(scenarios.MEMORY_LEAK.cell, namespace)
    exec("val_losses = []", namespace)  # frees the first run's graphs: the allocator reuses them, RSS stays flat
    # sampled at 50 Hz: a one-second run then has ≈ 40 samples past the warm-up to fit, even on a busy machine
    report = jupyter_perf.profile(scenarios.MEMORY_LEAK.cell, namespace, interval=0.02)
    assert report.bottleneck == "memory_leak"
    assert report.finding("memory_leak").evidence["fits"]["heap_in_use"]["growth_bytes"] > 64 * 2**20


def test_compute_bound_training_gets_no_dataloader_advice():
    report, _ = profiled(scenarios.COMPUTE)
    assert report.bottleneck == "compute"
    assert not [r for r in report.recommendations if r.optimization.startswith("dataloader.")]
    assert not report.finding("input_pipeline")
    forward_backward = report.phases["forward"] + report.phases["backward"] + report.phases["optimizer"]
    assert forward_backward / report.step_time > 0.8


def test_evaluation_without_no_grad_recommends_inference_mode():
    report, _ = profiled(scenarios.INFERENCE_WITH_GRAD)
    assert "inference.inference_mode" in report.recommended()
    assert report.signals["forward"]["grad_enabled_calls"] == 30
    assert report.signals["backward"]["calls"] == 0


def test_launch_bound_tiny_batches():
    report, _ = profiled(scenarios.LAUNCH_OVERHEAD)
    assert report.steps == 3000
    assert report.signals["samples_per_step"] == 1
    assert "dataloader.batch_size" in report.recommended()


def test_two_steps_are_too_few_to_judge():
    report, _ = profiled(scenarios.TWO_STEPS)
    assert report.steps == 2
    assert report.bottleneck == "none"


def test_disk_reads_are_measured_and_named():
    report, namespace = profiled(scenarios.DISK_IO)
    assert report.signals["io"]["read_bytes"] > 48 * 2**20 * 0.9  # every shard really read from storage
    assert report.bottleneck == "disk_io"


def test_out_of_memory_is_a_capacity_bottleneck_with_the_error_kept():
    report, namespace = profiled(scenarios.OOM)
    assert report.error["type"] == "RuntimeError" and report.error["oom"] is True
    assert report.bottleneck == "memory_capacity"
    assert "x" not in namespace
