"""What a language model's steps cost: FLOPs per step (counted once, checked against the transformer formula),
utilization where the device's peak is known, and where the memory goes."""

import pytest
import real_loops
from conftest import run_setup

import jupyter_perf
from jupyter_perf.hardware import gpu_peak
from jupyter_perf.probes import flops


def profiled(loop):
    namespace = run_setup(loop.setup)
    return jupyter_perf.profile(loop.cell, namespace), namespace


@pytest.mark.parametrize("loop",
                         [real_loops.NANOGPT, real_loops.HF_LOOP, real_loops.HF_TRAINER, real_loops.HF_INFERENCE],
                         ids=lambda loop: loop.name)
def test_counted_flops_agree_with_the_transformer_formula(loop):
    report, _ = profiled(loop)
    compute = report.compute
    assert compute["flops_per_step"] == pytest.approx(compute["formula_flops_per_step"], rel=0.10)
    assert compute["flops_per_s"] == pytest.approx(compute["flops_per_step"] * report.steps / report.step_time_total)
    assert compute["mfu"] is None and compute["peak_flops"] is None and "CPU" in compute["mfu_note"]


def test_a_training_step_costs_three_forwards():
    """nanoGPT-style, by hand: 2 FLOPs per weight per token plus attention's 4·T·d per layer, ×3 to train."""
    report, namespace = profiled(real_loops.NANOGPT)
    model = namespace["model"]
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, namespace["nn"].Linear))
    per_token = 2 * weights + 2 * 4 * 32 * 64  # two layers at width 64, sequences of 32
    assert report.compute["flops_per_step"] == pytest.approx(3 * per_token * 8 * 32, rel=0.01)


def test_flops_are_counted_once_per_run(monkeypatch):
    calls = []
    original = flops.count_forward
    monkeypatch.setattr(flops, "count_forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    report, _ = profiled(real_loops.HF_LOOP)
    assert report.steps == 12 and calls == [1]
    assert 0 < report.compute["counting_s"] < report.wall_time


@pytest.mark.parametrize("loop", [real_loops.NANOGPT, real_loops.HF_LOOP, real_loops.VAE], ids=lambda loop: loop.name)
def test_the_memory_breakdown_adds_up_to_the_peak(loop):
    report, namespace = profiled(loop)
    parts = report.memory_breakdown
    total = sum(parts[k] for k in ("parameters", "gradients", "optimizer_state", "activations", "other"))
    assert total == pytest.approx(parts["peak"], rel=0.10)
    params = sum(p.numel() * p.element_size() for p in {id(p): p for p in namespace["model"].parameters()}.values())
    assert parts["parameters"] == params and parts["gradients"] == params
    assert parts["optimizer_state"] == pytest.approx(2 * params, rel=0.01), "Adam keeps two moments per parameter"
    assert parts["device"] == "cpu"


def test_inference_has_no_gradients_or_optimizer_state():
    report, _ = profiled(real_loops.HF_INFERENCE)
    assert report.memory_breakdown["gradients"] == 0 and report.memory_breakdown["optimizer_state"] == 0


def test_known_gpus_have_peaks_per_dtype():
    assert gpu_peak("NVIDIA H200").for_dtype("bf16") == 989e12
    assert gpu_peak("NVIDIA H100 PCIe").for_dtype("bf16") == 756e12
    assert gpu_peak("NVIDIA A100-SXM4-80GB").for_dtype("tf32") == 156e12
    assert gpu_peak("Tesla V100-SXM2-16GB").for_dtype("bf16") is None
    assert gpu_peak("Some Future GPU") is None
