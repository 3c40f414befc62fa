"""Diagnosis rules on synthetic Reports: each fires when it should and stays quiet otherwise."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from jupyter_perf.catalog import CATALOG, CERTAINTY, COST
from jupyter_perf.diagnosis import diagnose, thresholds
from jupyter_perf.diagnosis.memory import fit_growth
from jupyter_perf.diagnosis.recommend import amdahl
from jupyter_perf.report import BOTTLENECKS, OPTIMIZATIONS, PHASES, Report

STEPS = 100
MB = 1e6


def phases(step: float = 0.05, **shares: float) -> dict[str, float]:
    """Mean seconds per phase for a ``step``-second step; unnamed time goes to forward/backward."""
    base = {"data_wait": 0.02, "host_to_device": 0.0, "forward": 0.3, "backward": 0.56, "communication": 0.0,
            "optimizer": 0.08, "other": 0.04}
    base.update(shares)
    rest = 1.0 - sum(v for k, v in base.items() if k not in ("forward", "backward"))
    base["forward"], base["backward"] = rest / 3, rest * 2 / 3
    return {p: base[p] * step for p in PHASES}


def timeline(rss_per_step: float = 0.0, steps: int = STEPS, samples: int = 50) -> dict[str, list]:
    done = [round(i * steps / (samples - 1)) for i in range(samples)]
    return {
        "t": [i * 0.1 for i in range(samples)],
        "steps": done,
        "rss_total": [2e9 + rss_per_step * s + (i % 3) * 0.5 * MB for i, s in enumerate(done)],
        "mem_total": [64e9] * samples,
        "mem_available": [40e9] * samples,
    }


def cpu_report(step: float = 0.05, steps: int = STEPS, **shares: float) -> Report:
    """A healthy, compute-bound CPU training run: ResNet-ish, 4 workers, flat memory."""
    return Report(
        wall_time=steps * step + 0.5,
        steps=steps,
        step_anchor="data",
        step_time_total=steps * step,
        phases=phases(step, **shares),
        timeline=timeline(steps=steps),
        signals={
            "dataloaders": [{"name": "train_dl", "num_workers": 4, "pin_memory": False, "batch_size": 64,
                             "dataset": "ImageFolder", "data_wait_s": 0.1}],
            "models": [{"name": "net", "class": "ResNet", "dtype": "torch.float32", "device": "cpu",
                        "has_conv2d": True, "has_linear": True, "has_lstm": False, "channels_last": False,
                        "training": True, "calls": steps}],
            "forward": {"calls": steps, "grad_enabled_calls": steps, "inference_calls": 0, "autocast_calls": 0,
                        "seconds": 1.5, "leaf_calls_per_forward": 60, "us_per_leaf_call": 250.0},
            "backward": {"calls": steps, "seconds": 2.8},
            "optimizers": [{"class": "SGD", "fused": False, "foreach": None, "steps": steps}],
            "retained_graphs": [],
            "io": {"read_bytes": 0, "write_bytes": 0},
            "cpu": {"logical": 8, "available": 8, "torch_threads": 8},
        },
    )


def gpu_report(util: float = 95.0, **shares: float) -> Report:
    """A healthy, compute-bound GPU run: fp32 conv net, pinned copies, one .item() per step."""
    report = cpu_report(**shares)
    report.signals["models"][0]["device"] = "cuda:0"
    report.signals["dataloaders"][0]["pin_memory"] = True
    report.signals.update(
        cuda={"initialized": True, "device_name": "NVIDIA H100", "capability": [9, 0], "tf32_matmul": False},
        gpu=[{"index": 0, "name": "H100", "mean_util": util, "mem_total": 80e9, "peak_mem_used": 20e9}],
        gpu_timing="cuda_events",
        transfers={"count": STEPS, "bytes": STEPS * 12 * MB, "seconds": 0.1, "pageable_bytes": 0,
                   "pinned_bytes": STEPS * 12 * MB, "non_blocking": STEPS},
        syncs={"count": STEPS, "seconds": 0.1, "by_call": {".item()": STEPS}},
    )
    report.peaks = {"gpu0_mem_used_bytes": 20e9, "gpu0_proc_mem_bytes": 19e9}
    return report


def diagnosed(report: Report) -> Report:
    diagnose(report)
    return report


def ids(report: Report) -> list[str]:
    return [f.id for f in report.findings]


def alarms(report: Report) -> list[str]:
    return [f.id for f in report.findings if f.severity in ("high", "medium")]


# ------------------------------------------------------------- healthy runs
def test_healthy_cpu_run_is_compute_bound_without_false_alarms():
    report = diagnosed(cpu_report())
    assert report.bottleneck == "compute"
    assert alarms(report) == []
    assert not any(r.startswith("dataloader.") for r in report.recommended())
    assert "compile.torch_compile" in report.recommended()
    compute = report.finding("compute")
    assert compute.evidence["compute_share"] == pytest.approx(0.94)


def test_healthy_gpu_run_gets_math_levers_and_no_dataloader_advice():
    report = diagnosed(gpu_report())
    assert report.bottleneck == "compute"
    assert alarms(report) == []  # one .item() per step on a busy GPU is not a sync problem
    recommended = report.recommended()
    assert {"precision.amp", "precision.tf32", "layout.channels_last", "compile.torch_compile"} <= set(recommended)
    assert not any(r.startswith("dataloader.") for r in recommended)
    assert "cpu.threads" not in recommended
    amp = next(r for r in report.recommendations if r.optimization == "precision.amp")
    assert "together with layout.channels_last" in amp.reason  # a conv net: AMP alone gains nothing in NCHW


def test_gpu_levers_respect_what_is_already_on():
    report = gpu_report()
    report.signals["forward"]["autocast_calls"] = STEPS
    report.signals["cuda"].update(tf32_matmul=True)
    report.signals["models"][0]["channels_last"] = True
    assert {"precision.amp", "precision.tf32", "layout.channels_last"}.isdisjoint(diagnosed(report).recommended())


def test_tf32_needs_ampere():
    report = gpu_report()
    report.signals["cuda"]["capability"] = "7.0"
    assert "precision.tf32" not in diagnosed(report).recommended()


def test_fused_optimizer_only_when_the_optimizer_costs_something():
    cheap = gpu_report(optimizer=0.02)
    assert "optimizer.fused" not in diagnosed(cheap).recommended()
    costly = gpu_report(optimizer=0.12)
    costly.signals["optimizers"] = [{"class": "Adam", "fused": False, "foreach": False, "steps": STEPS}]
    assert "optimizer.fused" in diagnosed(costly).recommended()


# ---------------------------------------------------------- input pipeline
def test_input_pipeline_fires_with_numbers_and_amdahl_estimate():
    report = cpu_report(step=0.066, data_wait=41 / 66)
    report.signals["dataloaders"][0]["num_workers"] = 0
    diagnose(report)
    assert report.bottleneck == "input_pipeline"
    finding = report.findings[0]
    assert finding.id == "input_pipeline" and finding.severity == "high"
    assert "62% of each step (41.0 ms of 66.0 ms)" in finding.summary
    assert "num_workers=0" in finding.summary
    assert finding.evidence["threshold"] == thresholds.INPUT_PIPELINE.data_wait_share
    top = report.recommendations[0]
    assert top.optimization == "dataloader.workers" and top.params == {"num_workers": 4}
    assert top.expected_speedup == pytest.approx(1 / ((1 - 41 / 66) + (41 / 66) / 4))


def test_input_pipeline_below_threshold_is_silent():
    report = diagnosed(cpu_report(data_wait=0.08))
    assert "input_pipeline" not in ids(report) and report.bottleneck == "compute"


def test_workers_capped_by_cores_and_skipped_when_already_at_them():
    report = cpu_report(data_wait=0.4)
    report.signals["cpu"]["available"] = 4  # 4 workers on 4 cores: nothing left to add
    diagnose(report)
    assert report.bottleneck == "input_pipeline"
    assert "dataloader.workers" not in report.recommended()


def test_workers_on_a_two_core_machine():
    report = cpu_report(data_wait=0.6)
    report.signals["dataloaders"][0]["num_workers"] = 0
    report.signals["cpu"].update(logical=2, available=2, torch_threads=2)
    rec = diagnosed(report).recommendations[0]
    assert rec.params == {"num_workers": 2} and rec.expected_speedup == pytest.approx(amdahl(0.6, 2))
    report.signals["cpu"]["available"] = 1  # one worker would add no parallelism
    assert "dataloader.workers" not in diagnosed(report).recommended()


def test_workers_on_in_memory_dataset_promise_nothing():
    report = cpu_report(data_wait=0.4)
    report.signals["dataloaders"][0].update(dataset="TensorDataset", num_workers=0)
    rec = diagnosed(report).recommendations[0]
    assert rec.optimization == "dataloader.workers" and rec.expected_speedup is None


def test_disk_io_when_data_wait_high_and_storage_read():
    report = cpu_report(data_wait=0.5)
    report.signals["io"]["read_bytes"] = 3 * MB * STEPS
    diagnose(report)
    assert report.bottleneck == "disk_io"
    assert {"disk_io", "input_pipeline"} <= set(ids(report))
    assert report.finding("disk_io").evidence["read_bytes_per_step"] == pytest.approx(3 * MB)
    assert report.recommended().count("dataloader.workers") == 1


def test_disk_io_needs_real_reads_and_says_when_they_were_not_measured():
    little = cpu_report(data_wait=0.5)
    little.signals["io"]["read_bytes"] = 10_000
    assert diagnosed(little).bottleneck == "input_pipeline"
    unknown = cpu_report(data_wait=0.5)
    del unknown.signals["io"]
    diagnose(unknown)
    assert unknown.bottleneck == "input_pipeline"
    assert unknown.finding("input_pipeline").evidence["storage_read_bytes"] == "not measured"


def test_reads_of_the_first_step_are_not_the_data():
    """A fresh process reads library pages and imported modules during its first step."""
    report = cpu_report(data_wait=0.5)
    report.signals["io"].update(read_bytes=300 * MB, first_step_read_bytes=299 * MB, first_step_s=0.06)
    diagnose(report)
    assert report.bottleneck == "input_pipeline" and "disk_io" not in ids(report)
    report.signals["io"].update(first_step_read_bytes=3 * MB)  # the rest was read while the steps ran
    disk = diagnosed(report).finding("disk_io")
    assert disk.evidence["read_bytes_per_step"] == pytest.approx(297 * MB / (STEPS - 1))
    assert disk.evidence["rate_from"] == "mean after the first step"


def with_reads(report: Report, per_interval: list[float]) -> Report:
    """The sampler's cumulative read_bytes column from the bytes read in each interval."""
    total, column = 0.0, [0.0]
    for nbytes in per_interval:
        total += nbytes
        column.append(total)
    report.timeline["read_bytes"] = column
    report.signals["io"].update(read_bytes=total, first_step_read_bytes=0, first_step_s=0.05)
    return report


def test_a_burst_of_reads_mid_run_is_not_disk_io():
    """A module imported mid-run, a checkpoint loaded once: one interval, not the steps' steady reads."""
    intervals = len(cpu_report().timeline["t"]) - 1
    burst = [0.0] * intervals
    burst[20] = 200 * MB
    report = diagnosed(with_reads(cpu_report(data_wait=0.5), burst))
    assert report.bottleneck == "input_pipeline" and "disk_io" not in ids(report)
    steady = diagnosed(with_reads(cpu_report(data_wait=0.5), [4 * MB] * intervals))
    disk = steady.finding("disk_io")
    assert steady.bottleneck == "disk_io"
    assert disk.evidence["read_bytes_per_s"] == pytest.approx(40 * MB)  # 4 MB per 0.1 s interval
    assert disk.evidence["rate_from"].startswith("median of 48 sampler intervals")


# -------------------------------------------------------------- transfers
def test_host_to_device_from_pageable_memory_recommends_pinning():
    report = gpu_report(host_to_device=0.3)
    report.signals["dataloaders"][0]["pin_memory"] = False
    report.signals["transfers"].update(pageable_bytes=STEPS * 12 * MB, pinned_bytes=0)
    diagnose(report)
    assert report.bottleneck == "host_to_device"
    finding = report.finding("host_to_device")
    assert finding.evidence["pageable_fraction"] == 1.0 and "pageable" in finding.summary
    rec = report.recommendations[0]
    assert rec.optimization == "dataloader.pin_memory"
    assert rec.expected_speedup == pytest.approx(amdahl(0.3, thresholds.TRANSFERS.pinned_speedup))


def test_host_to_device_pinning_on_in_memory_data_is_only_a_hypothesis():
    report = gpu_report(host_to_device=0.3)
    report.signals["dataloaders"][0].update(pin_memory=False, dataset="TensorDataset")
    report.signals["transfers"].update(pageable_bytes=STEPS * 12 * MB, pinned_bytes=0)
    rec = next(r for r in diagnosed(report).recommendations if r.optimization == "dataloader.pin_memory")
    assert rec.expected_speedup is None


def test_cpu_run_has_no_copy_or_sync_rules():
    report = diagnosed(cpu_report(host_to_device=0.3))
    assert not {"host_to_device", "host_sync", "host_sync.not_measured"} & set(ids(report))


# ----------------------------------------------------------------- launch
def test_launch_overhead_on_cpu_tiny_layers():
    report = cpu_report(step=0.0006)
    report.signals["forward"].update(us_per_leaf_call=9.0, leaf_calls_per_forward=6)
    diagnose(report)
    assert report.bottleneck == "launch_overhead"
    finding = report.finding("launch_overhead")
    assert finding.evidence["us_per_leaf_call"] == 9.0 and "9 µs" in finding.summary
    recommended = report.recommended()
    assert "compile.torch_compile" in recommended and "dataloader.batch_size" in recommended
    assert "compile.cuda_graphs" not in recommended
    assert "cpu.threads" not in recommended  # more threads do not help tiny ops


def test_tiny_batches_loader_cost_counts_as_launch_overhead_not_input():
    report = cpu_report(step=72e-6, data_wait=0.4, optimizer=0.0)
    report.signals["forward"]["us_per_leaf_call"] = 7.0
    report.signals["dataloaders"][0].update(num_workers=0, batch_size=1, dataset="TensorDataset")
    diagnose(report)
    assert report.bottleneck == "launch_overhead" and "input_pipeline" not in ids(report)
    finding = report.finding("launch_overhead")
    assert finding.evidence["loader_overhead_share"] == pytest.approx(0.4)
    assert finding.share == pytest.approx(0.4 + finding.evidence["model_share"])
    assert report.recommendations[0].params == {"batch_size": 64}  # the training floor: this run ran backward
    assert report.recommendations[0].expected_speedup > 1.5


def test_batch_size_advice_for_inference_takes_the_inference_floor_within_the_dataset():
    report = cpu_report(step=72e-6, data_wait=0.4, optimizer=0.0)
    report.signals["forward"]["us_per_leaf_call"] = 7.0
    report.signals["backward"]["calls"] = 0
    report.signals["dataloaders"][0].update(num_workers=0, batch_size=1, dataset="TensorDataset", dataset_len=3000)
    diagnose(report)
    assert report.recommendations[0].params == {"batch_size": 256}
    report.signals["dataloaders"][0]["dataset_len"] = 100
    diagnose(report)
    assert report.recommendations[0].params == {"batch_size": 100}


def test_launch_overhead_needs_a_short_step():
    report = cpu_report(step=0.5)
    report.signals["forward"]["us_per_leaf_call"] = 30.0
    assert diagnosed(report).bottleneck == "compute"


def transformer_inference(batch: int, us_per_leaf: float, loader: bool = True) -> Report:
    """Batch-size-``batch`` inference under no_grad of a small BERT-like encoder: 20 leaves and 4 M float32
    parameters (800 kB of weights per layer call); the model's phases are 95% of the step."""
    report = cpu_report(step=us_per_leaf * 20 * 1e-6 / 0.95, data_wait=0.0, optimizer=0.0, other=0.05)
    report.signals["forward"].update(us_per_leaf_call=us_per_leaf, leaf_calls_per_forward=20, grad_enabled_calls=0)
    report.signals["backward"] = {"calls": 0, "seconds": 0.0}
    report.signals["optimizers"] = []
    report.signals["models"][0].update(**{"class": "BertModel", "parameters": 4_000_000, "leaf_modules": 20,
                                          "calls": STEPS, "has_conv2d": False})
    report.signals["samples_per_step"] = batch
    report.signals["dataloaders"][0].update(batch_size=batch, num_workers=0, dataset="TensorDataset",
                                            dataset_len=10_000)
    if not loader:
        report.signals["dataloaders"] = []
    return report


def test_batch_one_transformer_inference_is_launch_overhead_with_batch_size_first():
    """A layer call of 200 µs is far above the per-call floor, but at one sample most of it is fixed:
    calling the module and reading its 800 kB of weights (~108 µs), paid again for every sample."""
    report = diagnosed(transformer_inference(batch=1, us_per_leaf=200.0))
    assert report.bottleneck == "launch_overhead"
    finding = report.finding("launch_overhead")
    assert finding.evidence["view"] == "per sample" and finding.evidence["samples_per_step"] == 1
    assert finding.evidence["fixed_us_per_leaf_call"] == pytest.approx(8 + 800e3 / 8e9 * 1e6)
    assert finding.evidence["overhead_fraction"] == pytest.approx(108 / 200)
    assert "1 sample per step" in finding.summary and "781 KiB of weights" in finding.summary
    top = report.recommendations[0]
    assert top.optimization == "dataloader.batch_size" and top.params == {"batch_size": 256}
    assert top.expected_speedup > 1.5
    assert report.recommended().index("compile.torch_compile") > 0


@pytest.mark.parametrize("batch, us_per_leaf", [(64, 200.0), (1, 2000.0)], ids=["big_batch", "big_layers"])
def test_big_batches_or_big_layers_stay_compute(batch, us_per_leaf):
    report = diagnosed(transformer_inference(batch=batch, us_per_leaf=us_per_leaf))
    assert report.bottleneck == "compute", [f.summary for f in report.findings]
    assert not any(r.startswith("dataloader.") for r in report.recommended())


def test_time_spent_waiting_for_a_core_is_not_the_calls_cost():
    """Other processes held the CPU 70% of the time the thread could run: 600 µs measured is 180 µs of call."""
    contended = transformer_inference(batch=1, us_per_leaf=600.0)
    assert diagnosed(contended).bottleneck == "compute"  # 108 µs of fixed cost is 18% of 600
    contended.signals["cpu"]["run_delay_share"] = 0.7
    finding = diagnosed(contended).finding("launch_overhead")
    assert finding.evidence["us_per_leaf_call_on_cpu"] == pytest.approx(180.0)
    assert finding.evidence["overhead_fraction"] == pytest.approx(108 / 180)
    assert "(600 µs measured, 70% of it waiting for a core)" in finding.summary


def test_batch_one_without_a_dataloader_explains_batching():
    """Single examples passed to the model by hand: no loader to resize, so the finding says how to batch."""
    report = diagnosed(transformer_inference(batch=1, us_per_leaf=200.0, loader=False))
    assert report.bottleneck == "launch_overhead"
    assert "stack several examples into one call" in report.finding("launch_overhead").summary
    assert "dataloader.batch_size" not in report.recommended()
    assert report.recommended()[0] == "compile.torch_compile"


def test_launch_overhead_on_gpu_is_unexplained_idle():
    report = diagnosed(gpu_report(util=20.0))
    assert report.bottleneck == "launch_overhead"
    assert "host_sync" not in ids(report)  # its one .item() a step returns at once: the host is the limit
    assert report.finding("launch_overhead").share == pytest.approx(1 - 0.20 - 0.02)
    assert "compile.cuda_graphs" in report.recommended()


def test_idle_gpu_explained_by_data_wait_is_not_launch_overhead():
    report = gpu_report(util=30.0, data_wait=0.6)
    diagnose(report)
    assert report.bottleneck == "input_pipeline" and "launch_overhead" not in ids(report)


# ------------------------------------------------------------------- syncs
def test_host_sync_with_starved_gpu():
    report = gpu_report(util=30.0)
    report.signals["syncs"] = {"count": 4 * STEPS, "seconds": 2.0, "by_call": {".item()": 3 * STEPS, ".cpu()": STEPS}}
    diagnose(report)
    assert report.bottleneck == "host_sync"
    finding = report.finding("host_sync")
    assert finding.evidence["syncs_per_step"] == 4.0 and ".item() ×3.0" in finding.summary
    assert finding.share == pytest.approx(0.4)  # blocked 20 ms of 50: at most that overlaps again
    assert "launch_overhead" not in ids(report)


def test_host_sync_without_utilisation_is_reported_but_not_named():
    report = gpu_report()
    del report.signals["gpu"]
    report.signals["syncs"]["count"] = 5 * STEPS
    diagnose(report)
    finding = report.finding("host_sync")
    assert finding.severity == "low" and finding.bottleneck is None
    assert finding.evidence["gpu_util"] == "not measured"


def test_missing_sync_signal_is_not_zero_syncs():
    report = gpu_report()
    del report.signals["syncs"]
    report = diagnosed(report)
    assert "host_sync.not_measured" in ids(report)
    assert report.finding("compute").evidence["not_measured"] == ["host_sync"]


# ------------------------------------------------------------------ memory
def test_oom_names_memory_capacity_even_with_two_steps():
    report = gpu_report()
    report.steps, report.step_time_total = 2, 0.1
    report.error = {"type": "OutOfMemoryError", "message": "CUDA out of memory", "oom": True}
    diagnose(report)
    assert report.bottleneck == "memory_capacity"
    assert report.findings[0].id == "memory_capacity" and "out of memory" in report.findings[0].summary
    # Certain to cut memory at a known cost first; AMP changes numerics (catalog.py).
    assert report.recommended()[:3] == ["memory.grad_accumulation", "memory.checkpointing", "precision.amp"]


def test_peak_gpu_memory_near_limit_outranks_time_findings():
    report = gpu_report(data_wait=0.5)
    report.signals["gpu"][0]["peak_mem_used"] = 76e9
    diagnose(report)
    assert report.bottleneck == "memory_capacity"
    assert "GPU 0 memory peaked at 70.8 GiB of 74.5 GiB (95%)" in report.finding("memory_capacity").summary
    assert report.recommendations[0].finding == "memory_capacity"
    assert "input_pipeline" in ids(report)  # still reported, just not named


def test_other_processes_on_an_unused_gpu_are_not_our_capacity():
    report = gpu_report()
    report.signals["gpu"].append({"index": 1, "mean_util": 99.0, "mem_total": 80e9, "peak_mem_used": 79e9})
    report.peaks["gpu1_proc_mem_bytes"] = 0
    assert diagnosed(report).bottleneck == "compute"


def test_host_memory_near_limit():
    report = cpu_report()
    report.timeline["mem_available"][10] = 3e9
    assert diagnosed(report).bottleneck == "memory_capacity"


def held(name: str, tensors: int, gained: int, steps: int = STEPS, kind: str = "list") -> dict:
    """One container of the graph census (signals['retained_graphs'])."""
    return {"name": name, "type": kind, "tensors": tensors, "baseline_tensors": tensors - gained,
            "baseline_step": 0, "gained": gained, "steps": steps, "per_step": gained / steps}


def test_memory_leak_with_retained_graphs_puts_release_graph_first():
    report = cpu_report(data_wait=0.5)
    report.timeline = timeline(rss_per_step=2 * MB)
    report.signals["retained_graphs"] = [held("losses", STEPS, STEPS)]
    diagnose(report)
    assert report.bottleneck == "memory_leak"
    finding = report.finding("memory_leak")
    assert finding.evidence["fits"]["rss_total"]["per_step_bytes"] == pytest.approx(2 * MB, rel=0.01)
    assert "`losses` gained 100 tensors with autograd graphs in 100 steps (1.0 per step)" in finding.summary
    assert report.recommendations[0].optimization == "memory.release_graph"
    assert report.recommendations[0].params == {"container": "losses"}


def test_memory_leak_without_culprit_has_no_made_up_fix():
    report = cpu_report()
    report.timeline = timeline(rss_per_step=2 * MB)
    diagnose(report)
    assert report.bottleneck == "memory_leak"
    assert "memory.release_graph" not in report.recommended()


def test_containers_that_did_not_grow_are_no_leak_and_get_no_fix():
    """An RNN's (h, c) and a ModelOutput hold the last step's graph; rebinding them frees it."""
    report = cpu_report()
    report.timeline = timeline(rss_per_step=2 * MB)
    report.signals["retained_graphs"] = [held("hidden", 2, 0, kind="tuple"),
                                         held("outputs", 2, 0, kind="CausalLMOutputWithCrossAttentions")]
    diagnose(report)
    assert report.bottleneck == "memory_leak"  # memory did grow: the fit says so, but names no container
    assert "nothing in the namespace gained autograd graphs" in report.finding("memory_leak").summary
    assert "memory.release_graph" not in report.recommended()
    report.timeline = timeline()
    diagnose(report)
    assert not {"memory_leak", "retained_graphs"} & set(ids(report))


def test_a_fixed_container_first_seen_at_the_end_is_no_leak():
    """No census during the run saw it: its content counts as gained over every step, too slowly to grow."""
    report = cpu_report(steps=20)
    report.signals["retained_graphs"] = [held("metrics", 4, 4, steps=20, kind="dict")]
    assert "retained_graphs" not in ids(diagnosed(report))


def test_a_growing_container_on_a_short_run_with_memory_growth_is_the_leak():
    report = cpu_report(steps=6)
    report.timeline = timeline(rss_per_step=12 * MB, steps=6, samples=3)
    report.signals["retained_graphs"] = [held("losses", 6, 6, steps=6)]
    diagnose(report)
    assert report.bottleneck == "memory_leak"
    finding = report.finding("memory_leak")
    assert finding.evidence["fits"] == "too few steps for a fit"
    assert finding.evidence["run_growth_bytes"]["rss_total"] == pytest.approx(72 * MB, abs=1 * MB)
    assert "over the 6-step run while `losses` gained 6 tensors with autograd graphs in 6 steps" in finding.summary
    assert report.recommendations[0].optimization == "memory.release_graph"
    assert report.recommendations[0].params == {"container": "losses"}


def test_a_growing_container_without_memory_growth_is_a_leak_in_waiting():
    report = cpu_report(steps=4)
    report.timeline = timeline(steps=4, samples=3)
    report.signals["retained_graphs"] = [held("losses", 4, 4, steps=4)]
    diagnose(report)
    assert report.bottleneck == "none"  # too few steps for a time verdict
    assert report.finding("retained_graphs").severity == "low"
    assert report.recommended() == ["memory.release_graph"]


@pytest.mark.parametrize("shape", ["warmup_jump", "too_small", "noise"])
def test_memory_that_does_not_grow_steadily_is_not_a_leak(shape):
    report = cpu_report()
    line = report.timeline
    if shape == "warmup_jump":  # caches fill in the first steps, then flat
        line["rss_total"] = [2e9 + (500 * MB if s >= 10 else 0) for s in line["steps"]]
    elif shape == "too_small":
        line["rss_total"] = [2e9 + 0.1 * MB * s for s in line["steps"]]
    else:  # big swings with no trend
        line["rss_total"] = [2e9 + (300 * MB if i % 2 else 0) for i in range(len(line["steps"]))]
    assert "memory_leak" not in ids(diagnosed(report))


def test_growing_container_before_memory_grows_still_gets_release_graph():
    report = cpu_report()
    report.signals["retained_graphs"] = [held("losses", 40, 40, steps=40)]
    diagnose(report)
    assert report.bottleneck == "compute"
    assert report.finding("retained_graphs").severity == "low"
    # Not a memory finding, so it ranks among the unestimated fixes: certain and free, before compile.
    assert report.recommended() == ["memory.release_graph", "compile.torch_compile"]
    assert report.recommendations[0].finding == "retained_graphs"


def test_leak_fit_ignores_warmup_and_none_samples():
    steps = list(range(0, 101, 5))
    values = [None if s == 50 else (9e9 if s < 20 else 1e9 + 1e6 * s) for s in steps]
    fit = fit_growth(steps, values)
    assert fit.per_step_bytes == pytest.approx(1e6) and fit.r2 == pytest.approx(1.0) and fit.from_step == 20


def test_gpu_allocated_leak_is_found_too():
    report = gpu_report()
    report.timeline["cuda_allocated"] = [1e9 + 1 * MB * s for s in report.timeline["steps"]]
    diagnose(report)
    assert report.bottleneck == "memory_leak" and "GPU memory grew" in report.finding("memory_leak").summary


# --------------------------------------------------------------- inference
def test_inference_with_grad_recommends_inference_mode_and_cpu_levers():
    report = cpu_report()
    report.signals["backward"] = {"calls": 0, "seconds": 0.0}
    report.signals["optimizers"] = []
    report.signals["cpu"]["torch_threads"] = 2
    diagnose(report)
    assert report.bottleneck == "compute"
    assert report.finding("inference_with_grad").bottleneck is None
    recommended = report.recommended()
    assert {"inference.inference_mode", "compression.quantize_dynamic", "cpu.threads"} <= set(recommended)
    threads = report.recommendations[0]
    assert threads.optimization == "cpu.threads" and threads.params == {"threads": 4}
    assert threads.expected_speedup == pytest.approx(amdahl(report.finding("compute").share, 2))


def test_inference_rule_needs_the_backward_signal():
    report = cpu_report()
    del report.signals["backward"]
    report = diagnosed(report)
    assert "inference_with_grad" not in ids(report)
    assert "inference_with_grad.not_measured" in ids(report)


def test_smt_default_thread_count_is_not_flagged():
    report = cpu_report()
    report.signals["cpu"].update(logical=16, available=16, torch_threads=8)
    assert "cpu.threads" not in diagnosed(report).recommended()


def test_oversubscribed_threads_are_flagged_without_estimate():
    report = cpu_report()
    report.signals["cpu"].update(available=4, torch_threads=16)
    rec = next(r for r in diagnosed(report).recommendations if r.optimization == "cpu.threads")
    assert rec.expected_speedup is None and rec.params == {"threads": 4}


# ------------------------------------------------------ gating and missing
def test_two_steps_name_no_bottleneck():
    report = cpu_report(steps=2, data_wait=0.6)
    report.signals["dataloaders"][0]["num_workers"] = 0
    diagnose(report)
    assert report.bottleneck == "none"
    assert ids(report) == ["too_few_steps"]
    assert report.recommendations == []


def test_missing_phases_are_not_a_compute_bound_run():
    report = cpu_report()
    report.phases = {}
    diagnose(report)
    assert report.bottleneck == "none"
    assert {"input_pipeline.not_measured", "compute.not_measured"} <= set(ids(report))
    assert all(f.severity == "info" for f in report.findings)


def test_missing_leaf_timing_is_said_not_assumed():
    report = cpu_report()
    del report.signals["forward"]
    report = diagnosed(report)
    assert "launch_overhead.not_measured" in ids(report)
    assert "precision.amp" not in report.recommended()


def test_missing_gpu_utilisation_with_host_timing_is_not_measured():
    report = gpu_report()
    del report.signals["gpu"]
    report.signals["gpu_timing"] = "host"
    assert "launch_overhead.not_measured" in ids(diagnosed(report))


# ---------------------------------------------------------------- ranking
SCENARIOS = {
    "healthy_cpu": cpu_report,
    "healthy_gpu": gpu_report,
    "input": lambda: cpu_report(data_wait=0.5),
    "copies": lambda: gpu_report(host_to_device=0.3, data_wait=0.15),
    "launch_gpu": lambda: gpu_report(util=15.0),
    "launch_cpu": lambda: cpu_report(step=0.0006),
    "too_few": lambda: cpu_report(steps=2),
}


def _copies(report: Report) -> Report:
    report.signals["dataloaders"][0].update(pin_memory=False, num_workers=1)
    report.signals["transfers"].update(pageable_bytes=1, pinned_bytes=0)
    return report


@pytest.mark.parametrize("name", SCENARIOS)
def test_recommendations_are_known_unique_and_ranked(name):
    report = SCENARIOS[name]()
    if name == "copies":
        _copies(report)
    if name == "launch_cpu":
        report.signals["forward"]["us_per_leaf_call"] = 9.0
    diagnose(report)
    assert report.bottleneck in BOTTLENECKS
    recommended = report.recommended()
    assert set(recommended) <= set(OPTIMIZATIONS)
    assert len(recommended) == len(set(recommended))
    gains = [r.expected_speedup for r in report.recommendations]
    known = [g for g in gains if g is not None]
    assert known == sorted(known, reverse=True)
    assert gains[: len(known)] == known  # None last
    assert all(r.reason and "\n" not in r.reason for r in report.recommendations)


def test_every_optimization_has_a_certainty_and_a_cost():
    assert set(CATALOG) == set(OPTIMIZATIONS)
    for entry in CATALOG.values():
        assert entry.certainty in CERTAINTY and entry.cost in COST


def test_unestimated_fixes_rank_safe_and_certain_before_speculative():
    """Evaluation without no_grad: inference_mode is certain and free; compile may gain nothing and
    quantization changes the outputs, so they follow, in that order."""
    report = cpu_report()
    report.signals["backward"] = {"calls": 0, "seconds": 0.0}
    report.signals["optimizers"] = []
    diagnose(report)
    assert report.bottleneck == "compute"
    assert report.recommended() == ["inference.inference_mode", "compile.torch_compile",
                                    "compression.quantize_dynamic"]


def test_an_estimated_gain_still_outranks_an_unestimated_one():
    report = cpu_report()
    report.signals["backward"] = {"calls": 0, "seconds": 0.0}
    report.signals["cpu"]["torch_threads"] = 2
    recommended = diagnosed(report).recommended()
    assert recommended[:2] == ["cpu.threads", "inference.inference_mode"]


def test_gpu_levers_rank_by_certainty_then_cost():
    recommended = diagnosed(gpu_report()).recommended()
    # Equal certainty and cost keep the finding's own order (amp before tf32 among the compute levers).
    assert recommended == ["layout.channels_last", "optimizer.fused", "precision.amp", "precision.tf32",
                           "compile.torch_compile"]


def test_two_time_findings_rank_by_share_and_gain():
    report = _copies(gpu_report(host_to_device=0.3, data_wait=0.15))
    diagnose(report)
    assert report.bottleneck == "host_to_device"
    assert [f.id for f in report.findings[:2]] == ["host_to_device", "input_pipeline"]
    by_id = {r.optimization: r.expected_speedup for r in report.recommendations}
    assert by_id["dataloader.pin_memory"] > by_id["dataloader.workers"]
    assert report.recommended()[:2] == ["dataloader.pin_memory", "dataloader.workers"]


# ------------------------------------------------------------ the contract
def test_diagnosis_reads_only_the_report_and_survives_json():
    original = _copies(gpu_report(host_to_device=0.3, data_wait=0.15))
    loaded = Report.from_json(original.to_json())
    diagnose(original)
    diagnose(loaded)
    assert loaded.to_dict() == original.to_dict()


def test_diagnose_is_idempotent():
    report = diagnosed(cpu_report(data_wait=0.5))
    once = copy.deepcopy(report.to_dict())
    diagnose(report)
    assert report.to_dict() == once


def test_every_threshold_is_a_frozen_named_field():
    instances = [v for v in vars(thresholds).values() if dataclasses.is_dataclass(v) and not isinstance(v, type)]
    assert len(instances) >= 8
    for instance in instances:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(instance, dataclasses.fields(instance)[0].name, 0)


def test_diagnosis_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, jupyter_perf.diagnosis; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
