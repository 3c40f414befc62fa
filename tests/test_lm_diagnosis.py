"""Language-model findings on real runs: Hugging Face models from tiny configs (GPT-2 LM, BERT classifier; a DataLoader
loop, the Trainer, generate()) and a nanoGPT-style model written by hand. Planted padding waste, eager attention and
cache-less generation are each named with their fix; healthy runs get none of them; capacity findings say what
filled the peak and rank the memory fixes by what each frees."""

from __future__ import annotations

import functools

import lm_scenarios as lm
import pytest
import real_loops

import jupyter_perf
from jupyter_perf.diagnosis import diagnose
from jupyter_perf.execution import compile_source, run_compiled
from jupyter_perf.probes.attention import attention_facts
from jupyter_perf.report import Report

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")

LM_FINDINGS = {"padding_waste", "attention_eager", "generation_no_cache"}


def setup(source: str) -> dict:
    """Run a setup cell as IPython does: its source kept in linecache, so a class's forward can be read back."""
    namespace = {"__name__": "__main__"}
    run_compiled(*compile_source(source), namespace)
    return namespace


@functools.cache
def profiled(source: str, cell: str) -> tuple[Report, dict]:
    """One profiled run per setup and cell for the whole module (tests read, never change, the report)."""
    namespace = setup(source)
    return jupyter_perf.profile(cell, namespace), namespace


def found(report: Report) -> set[str]:
    return {f.id for f in report.findings}


@pytest.mark.parametrize("scenario", [lm.PADDED_GPT2, lm.BERT_PADDED_EAGER, lm.TRAINER_PADDED],
                         ids=lambda s: s.name)
def test_padding_waste_is_named_with_its_measured_share(scenario):
    report, _ = profiled(scenario.setup, scenario.cell)
    finding = report.finding("padding_waste")
    tokens = report.signals["tokens"]
    assert finding is not None and finding.evidence["padding_share"] == pytest.approx(tokens["padding_share"])
    assert 0.3 < tokens["padding_share"] < 0.6  # lengths uniform in 8..64 of 64: about 44% padding
    assert f"{tokens['padding_share']:.0%}" in finding.summary
    recommended = {r.optimization: r for r in report.recommendations}
    if scenario is lm.TRAINER_PADDED:  # the Trainer's own loader: what to set is said, nothing to click
        assert "train_sampling_strategy=\"group_by_length\"" in finding.summary
        assert "data.length_grouping" not in recommended
    else:
        rec = recommended["data.length_grouping"]
        assert rec.params == {"name": "loader"} and 1.2 < rec.expected_speedup < 2.0


def test_bert_with_eager_attention_is_named_beside_its_padding():
    report, _ = profiled(lm.BERT_PADDED_EAGER.setup, lm.BERT_PADDED_EAGER.cell)
    finding = report.finding("attention_eager")
    assert finding.evidence["implementation"] == "eager"
    assert finding.evidence["class"] == "BertForSequenceClassification"
    assert "attention.sdpa" in report.recommended()


def test_hand_written_attention_is_found_in_the_forward_and_named_with_its_place():
    report, namespace = profiled(real_loops.NANOGPT.setup, real_loops.NANOGPT.cell)
    finding = report.finding("attention_eager")
    assert finding.evidence["implementation"] == "hand-written"
    assert finding.evidence["modules"] == ["CausalSelfAttention"]
    assert finding.evidence["where"].endswith(":21")  # the line of its forward in the setup cell
    assert report.recommendations[0].optimization == "attention.sdpa"
    # a forward that calls the fused kernel (nanoGPT keeps both paths) is not hand-written
    fused = setup(real_loops.NANOGPT.setup.replace(
        "att = (q @ k.transpose(-2, -1))", "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)\n"
        "        att = (q @ k.transpose(-2, -1))"))
    assert attention_facts(fused["model"]) is None


@pytest.mark.parametrize("cell", [lm.GENERATE_NO_CACHE.cell, lm.NANOGPT_GENERATE], ids=["generate", "hand_loop"])
def test_generation_on_a_growing_sequence_is_named_with_the_cost_of_a_token(cell):
    source = lm.GENERATE_NO_CACHE.setup if cell is lm.GENERATE_NO_CACHE.cell else real_loops.NANOGPT.setup
    report, _ = profiled(source, cell)
    finding = report.finding("generation_no_cache")
    assert finding is not None, [f.summary for f in report.findings]
    assert finding.evidence["regrown_calls"] == finding.evidence["calls"] - 1  # all but the prompt's call
    assert finding.evidence["per_token_s"] > 0 and "of forward time" in finding.summary
    assert report.recommendations[0].optimization == "generation.kv_cache"
    batch_one = report.finding("generation_batch_one")
    assert batch_one is not None and "padding_side=\"left\"" in batch_one.summary


def test_generation_with_its_cache_is_not_named():
    report, _ = profiled(lm.GENERATE.setup, lm.GENERATE.cell)
    decoding = report.signals["models"][0]["decoding"]
    assert decoding["incremental_calls"] == 47 and decoding["regrown_calls"] == 0
    assert not found(report) & LM_FINDINGS and "generation.kv_cache" not in report.recommended()


@pytest.mark.parametrize("loop", [real_loops.HF_LOOP, real_loops.HF_TRAINER, real_loops.HF_INFERENCE],
                         ids=lambda loop: loop.name)
def test_healthy_runs_get_none_of_the_language_findings(loop):
    report, _ = profiled(loop.setup, loop.cell)
    assert report.signals["tokens"]["padding_share"] == 0
    assert report.signals["models"][0]["attention"]["implementation"] == "sdpa"
    assert not found(report) & LM_FINDINGS, [f.summary for f in report.findings]


def test_the_findings_come_back_the_same_from_json():
    report, _ = profiled(lm.GENERATE_NO_CACHE.setup, lm.GENERATE_NO_CACHE.cell)
    loaded = Report.from_json(report.to_json())
    diagnose(loaded)
    assert [f.id for f in loaded.findings] == [f.id for f in report.findings]
    assert loaded.recommended() == report.recommended()


# ------------------------------------------------------------------- memory
GiB = 2**30
OOM = dict(
    steps=3,
    error={"type": "OutOfMemoryError", "message": "CUDA out of memory. Tried to allocate 2.00 GiB", "oom": True},
    memory_breakdown={"parameters": GiB, "gradients": GiB, "optimizer_state": 2 * GiB, "activations": int(1.5 * GiB),
                      "other": GiB // 8, "peak": int(5.625 * GiB), "device": "cuda"},
    signals={"models": [{"name": "model", "class": "GPT2LMHeadModel", "dtype": "float32", "device": "cuda:0",
                         "repeated_blocks": 12}],
             "optimizers": [{"class": "AdamW"}], "backward": {"calls": 3}, "forward": {"calls": 3, "autocast_calls": 0},
             "cuda": {"initialized": True}},
)


def test_capacity_says_what_filled_the_peak_and_ranks_fixes_by_what_they_free():
    report = Report(**OOM)
    diagnose(report)
    summary = report.finding("memory_capacity").summary
    assert ("Of the 5.62 GiB peak (GPU): AdamW state 2.00 GiB (2.0× the parameters), activations 1.50 GiB, "
            "gradients 1.00 GiB, parameters 1.00 GiB") in summary
    recs = report.recommendations
    assert [r.optimization for r in recs] == ["memory.checkpointing", "memory.grad_accumulation", "precision.amp"]
    freed = [r.expected_freed_bytes for r in recs]
    assert freed == [1.5 * GiB * 11 / 12, 0.75 * GiB, 0.75 * GiB]  # 11 of 12 blocks' insides; half; half
    assert recs[0].reason.endswith("about 1.38 GiB of the 1.50 GiB of activations.")


def test_without_a_breakdown_the_memory_fixes_keep_their_order():
    report = Report(**{**OOM, "memory_breakdown": {}})
    diagnose(report)
    assert "Of the" not in report.finding("memory_capacity").summary
    assert [r.optimization for r in report.recommendations] == [
        "memory.grad_accumulation", "memory.checkpointing", "precision.amp"]
    assert all(r.expected_freed_bytes is None for r in report.recommendations)
