"""The language-model optimizations: each applies to live objects and code, diffs, undoes to the exact text and
objects, does not stack, and is guarded where it changes numerics; the existing ones on Hugging Face models.

Cells run as IPython runs them (``compile_source`` keeps their source in linecache), so a class defined in a
cell can be read back, as attention.sdpa does for hand-written attention.
"""

from __future__ import annotations

import textwrap

import lm_scenarios as lm
import pytest
import real_loops
import torch
from optimization_fixtures import ODD, assert_parses, notebook_fixture  # noqa: F401  (fixture)
from test_optimizations_model import assert_same, snapshot

import jupyter_perf
from jupyter_perf.data import LengthGroupedBatchSampler, PadToLongest, trim_padding
from jupyter_perf.execution import compile_source, run_compiled
from jupyter_perf.optimizations import get
from jupyter_perf.optimizations.attention_rewrite import rewrite_attention
from jupyter_perf.probes.attention import attention_facts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")


def fresh(source: str) -> dict:
    namespace = {"__name__": "__main__"}
    run_compiled(*compile_source(source), namespace)
    return namespace


def roundtrip(opt_id: str, source: str, notebook, check_live, check_code, cell: str | None = None, **params):
    """Apply to a one-cell notebook holding ``source`` (``cell``, profiled after it, gives the report), check the
    live objects and the code run from scratch, apply again (no stacking), undo (objects and text restored)."""
    namespace = fresh(source)
    report = jupyter_perf.profile(cell, namespace) if cell else None
    before = state(namespace)
    change = get(opt_id).apply(namespace, cell=notebook.add("cell", source), report=report, **params)
    assert change.status == "applied", change.summary()
    assert notebook.cells["cell"] == change.new_source != source and ODD in change.new_source
    assert_parses(change.new_source)
    check_live(namespace, change)
    check_code(fresh(change.new_source))
    again = get(opt_id).apply(namespace, cell=change.new_source, report=report, **params)
    assert again.status == "already applied" and not again.edits, again.summary()
    change.undo()
    assert change.status == "undone" and notebook.cells["cell"] == source and not notebook.refused
    assert_same(before, state(namespace))
    return change


def state(namespace: dict) -> dict:
    """The harness's snapshot, plus the forward of each module class defined in the cell (attention.sdpa's target)."""
    classes = {f"{k}.forward": v.__dict__.get("forward") for k, v in namespace.items()
               if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == "__main__"}
    return {**snapshot(namespace), **classes}


def padding(loader) -> float:
    masks = [batch["attention_mask"] for batch in loader]
    return 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)


# ------------------------------------------------------------ jupyter_perf.data
def test_length_grouped_batches_hold_every_sample_once_in_new_groups_each_epoch():
    lengths = torch.randint(1, 200, (1000,)).tolist()
    sampler = LengthGroupedBatchSampler(range(1000), 8, lengths=lengths, generator=torch.Generator())
    sampler.generator.manual_seed(0)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 125 and sorted(i for b in first for i in b) == list(range(1000))
    assert first != second
    spread = sorted(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
    assert spread[len(spread) // 2] <= 8  # 400 random lengths of 1..199 sorted per group of 50 batches: ~4 apart
    assert len(LengthGroupedBatchSampler(range(10), 4, drop_last=True, lengths=[1] * 10)) == 2
    ordered = LengthGroupedBatchSampler(range(6), 2, shuffle=False, lengths=[1, 5, 2, 6, 3, 4])
    assert list(ordered) == [[3, 1], [5, 4], [2, 0]]


def test_pad_to_longest_cuts_the_columns_no_row_uses_on_either_side():
    right = {"input_ids": torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 0, 0],
                                                                                                      [1, 0, 0, 0]]),
             "labels": torch.tensor([1, 0])}
    cut = trim_padding(dict(right))
    assert cut["input_ids"].tolist() == [[5, 6], [7, 0]] and cut["labels"].tolist() == [1, 0]
    left = trim_padding({"input_ids": torch.tensor([[0, 0, 5], [0, 6, 7]]),
                         "attention_mask": torch.tensor([[0, 0, 1], [0, 1, 1]])})
    assert left["input_ids"].tolist() == [[0, 5], [6, 7]]
    samples = [{"input_ids": torch.tensor([1, 2, 0]), "attention_mask": torch.tensor([1, 1, 0])}] * 2
    assert PadToLongest()(samples)["input_ids"].shape == (2, 2)
    assert PadToLongest(lambda s: (1, 2))(samples) == (1, 2)  # not a dict batch: as the collate made it


# ------------------------------------------------------------ data.length_grouping
PADDED = lm.IMPORTS + lm.PADDED_TOKENS + "loader = DataLoader(PaddedTokens(64), batch_size=8," + ODD + \
    "                    shuffle=True)\n"


def test_length_grouping_rebuilds_the_loader_and_its_call(notebook):
    assert padding(fresh(PADDED)["loader"]) > 0.3

    def live(ns, change):
        loader = ns["loader"]
        assert isinstance(loader.batch_sampler, LengthGroupedBatchSampler) and padding(loader) < 0.1
        assert sum(len(b["input_ids"]) for b in loader) == 64 and loader.batch_sampler.shuffle

    def code(ns):
        assert isinstance(ns["loader"].collate_fn, PadToLongest) and padding(ns["loader"]) < 0.1

    change = roundtrip("data.length_grouping", PADDED, notebook, live, code)
    assert "from jupyter_perf.data import LengthGroupedBatchSampler, PadToLongest\n" in change.new_source
    assert change.new_source.endswith(  # the sampler where batch_size was, the comment after it kept
        "dataset = PaddedTokens(64)\nloader = DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset, 8, "
        "shuffle=True)," + ODD + "                    collate_fn=PadToLongest())\n")


def test_length_grouping_keeps_the_users_collate_and_refuses_what_it_cannot_group():
    cell = lm.IMPORTS + lm.PADDED_TOKENS + "data = PaddedTokens(16)\ndef collate(b):\n" \
        "    return torch.utils.data.default_collate(b)\nloader = DataLoader(data, 4, True, collate_fn=collate)\n"
    namespace = fresh(cell)
    change = jupyter_perf.apply("data.length_grouping", namespace, cell=cell)
    assert "loader = DataLoader(data, batch_sampler=LengthGroupedBatchSampler(data, 4, shuffle=True), " \
           "collate_fn=PadToLongest(collate))" in change.new_source
    assert namespace["loader"].collate_fn.collate_fn is namespace["collate"]
    change.undo()
    tensors = fresh(lm.IMPORTS + "from torch.utils.data import TensorDataset\n"
                    "loader = DataLoader(TensorDataset(torch.zeros(8, 4)), batch_size=2)\n")
    assert "without an attention_mask or input_ids" in get("data.length_grouping").applicable(None, tensors)


def test_length_grouping_removes_the_padding_the_report_measured():
    """The fix re-measured: the padding share falls under the threshold and the finding goes (no timing asserted)."""
    namespace = fresh(lm.PADDED_GPT2.setup)
    before = jupyter_perf.profile(lm.PADDED_GPT2.cell, namespace)
    change = jupyter_perf.apply("data.length_grouping", namespace, cell=lm.PADDED_GPT2.setup, report=before)
    after = jupyter_perf.profile(lm.PADDED_GPT2.cell, namespace)
    assert change.params["name"] == "loader" and before.finding("padding_waste")
    share = before.signals["tokens"]["padding_share"]
    assert after.signals["tokens"]["padding_share"] < share / 3 and not after.finding("padding_waste")
    assert after.signals["tokens"]["real_tokens"] == before.signals["tokens"]["real_tokens"]  # the same data


# ------------------------------------------------------------------ attention.sdpa
EAGER_GPT2 = lm.IMPORTS + lm.gpt2(positions=64, attention="eager").rstrip("\n") + ODD + \
    "x = torch.randint(0, 256, (2, 16))\nlogits = model(x).logits\n"


def test_sdpa_switches_a_hugging_face_model_and_its_config(notebook):
    def live(ns, change):
        assert ns["model"].config._attn_implementation == "sdpa"
        assert change.numerics.kind == "attention" and change.numerics.passed

    def code(ns):
        assert ns["model"].config._attn_implementation == "sdpa"

    change = roundtrip("attention.sdpa", EAGER_GPT2, notebook, live, code)
    assert change.diff.count('attn_implementation="sdpa"') == 1


def test_sdpa_guards_hugging_face_on_the_recorded_call_of_a_generation(fresh_kernel_state):
    """The call generate() made first carries its KV cache, filled by the end of the run: replayed without it."""
    namespace = fresh(lm.GENERATE_NO_CACHE.setup.replace('attn_implementation="sdpa"', 'attn_implementation="eager"'))
    report = jupyter_perf.profile(lm.GENERATE.cell, namespace)
    change = jupyter_perf.apply("attention.sdpa", namespace, report=report)
    assert change.status == "applied" and change.numerics.relative_error < 1e-5, change.summary()
    assert change.snippet == 'model.set_attn_implementation("sdpa")'  # no cell given: the line to add
    change.undo()
    assert namespace["model"].config._attn_implementation == "eager"


NANOGPT = real_loops.NANOGPT.setup.replace("model = TinyGPT()\n", "model = TinyGPT()" + ODD)


def test_sdpa_rewrites_hand_written_attention_in_its_class(notebook):
    reference = fresh(NANOGPT)
    x = torch.randint(0, 64, (2, 32))
    with torch.no_grad():
        expected = reference["model"](x)[0]

    def live(ns, change):
        attention = ns["CausalSelfAttention"]
        assert "scaled_dot_product_attention" in attention.forward.__code__.co_names
        assert change.numerics.kind == "attention" and change.numerics.relative_error < 1e-5

    def code(ns):
        assert attention_facts(ns["model"]) is None  # the fused call: no hand-written attention left
        ns["model"].load_state_dict(reference["model"].state_dict())
        with torch.no_grad():
            torch.testing.assert_close(ns["model"](x)[0], expected, atol=1e-5, rtol=1e-5)

    change = roundtrip("attention.sdpa", NANOGPT, notebook, live, code, cell=real_loops.NANOGPT.cell)
    assert "        return self.c_proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)" \
           in change.new_source


#: Other shapes of hand-written attention (q, k, v: batch 2, 2 heads, 8 positions, 16 wide), each rewritten to one
#: call with what makes it the same math.
SHAPES = {
    "matmul, divided scale, mask line, dropout module": ("""
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(k.size(-1))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = torch.softmax(att, dim=-1)
        att = self.drop(att)
        y = att @ v
        return y""", "y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, "
                     "dropout_p=self.drop.p if self.training else 0.0)"),
    "method softmax, no scale": ("""
        att = q @ k.mT
        att = att.softmax(-1)
        return att @ v""", "return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)"),
    "own scale, padding mask": ("""
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = F.softmax(att.masked_fill(pad[:, None, None, :], float("-inf")), dim=-1)
        return att @ v""", "return F.scaled_dot_product_attention(q, k, v, attn_mask=~(pad[:, None, None, :]), "
                           "scale=self.scale)"),
}
ATTENTION = """
import math, torch
from torch import nn
from torch.nn import functional as F

class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale, self.drop = 0.3, nn.Dropout(0.1)
        self.register_buffer("mask", torch.tril(torch.ones(8, 8)).view(1, 1, 8, 8))
    def forward(self, q, k, v, pad):
        T = q.size(-2)
{body}
"""


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_hand_written_shapes_become_one_call_computing_the_same(shape):
    body, expected = SHAPES[shape]
    source = ATTENTION.format(body=textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8))
    new = rewrite_attention(source, "Attention", lambda c: c == "self.mask[:, :, :T, :T] == 0",
                            lambda a: a == "drop", "torch.nn.functional")
    assert new is not None and expected in new, new
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 8, 16).unbind(0)
    pad = torch.tensor([[False] * 6 + [True] * 2, [False] * 8])
    old_out, new_out = (fresh(text)["Attention"]().eval()(q, k, v, pad) for text in (source, new))
    torch.testing.assert_close(new_out, old_out, atol=1e-5, rtol=1e-5)


def test_attention_in_a_shape_not_recognised_is_explained_not_rewritten(notebook):
    # the scores used twice
    body = "        att = (q @ k.transpose(-2, -1)).softmax(-1)\n        return att @ v + att.sum()"
    cell = ATTENTION.format(body=body)
    cell += "model = nn.Sequential(Attention())\n"
    change = get("attention.sdpa").apply(fresh(cell), cell=notebook.add("cell", cell), inputs="q")
    assert change.edits == [] and notebook.cells["cell"] == cell
    assert "in a shape not rewritten here" in change.description and "is_causal=True" in change.snippet


# --------------------------------------------------------------- generation.kv_cache
GENERATE = lm.GENERATE_NO_CACHE.setup.rstrip("\n") + ODD + lm.GENERATE_NO_CACHE.cell


def test_kv_cache_turns_the_cache_on_in_the_generate_call(notebook):
    def code(ns):
        assert ns["output"].shape == (1, 8 + 48)

    change = roundtrip("generation.kv_cache", GENERATE, notebook, lambda ns, change: None, code)
    assert change.new_source.endswith("do_sample=False, use_cache=True)\n")


def test_kv_cache_turns_on_a_generation_config_that_disabled_it(notebook):
    cell = lm.GENERATE.setup + "model.generation_config.use_cache = False" + ODD + lm.GENERATE.cell

    def live(ns, change):
        assert ns["model"].generation_config.use_cache is True

    change = roundtrip("generation.kv_cache", cell, notebook, live, lambda ns: None)
    assert "model.generation_config.use_cache = True" + ODD in change.new_source


def test_a_hand_written_decoding_loop_is_shown_how_to_keep_a_cache():
    namespace = fresh(real_loops.NANOGPT.setup)
    change = jupyter_perf.apply("generation.kv_cache", namespace, cell=lm.NANOGPT_GENERATE)
    assert change.edits == [] and "attention layer to keep its keys and values" in change.snippet
    hf = fresh(lm.GENERATE.setup)
    loop = "ids = prompt\nfor _ in range(4):\n    ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], 1)\n"
    assert "past_key_values=out.past_key_values" in jupyter_perf.apply("generation.kv_cache", hf, cell=loop).snippet


# -------------------------------------------------- existing ids on Hugging Face models
HF_TRAIN = real_loops.HF_LOOP.setup.rstrip("\n") + ODD


def hf_grads(model) -> list:
    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks: checkpoint replays the RNG for its recomputation
    ids = torch.randint(0, 256, (2, 16))
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_checkpointing_a_hugging_face_model_uses_its_own_switch(notebook):
    reference = hf_grads(fresh(HF_TRAIN)["model"])

    def live(ns, change):
        assert ns["model"].is_activation_checkpointing

    def code(ns):
        assert ns["model"].is_activation_checkpointing
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(hf_grads(ns["model"]), reference))

    change = roundtrip("memory.checkpointing", HF_TRAIN, notebook, live, code, cell=real_loops.HF_LOOP.cell)
    assert "model.activation_checkpointing_enable(activation_checkpointing_kwargs={'use_reentrant': False})\n" \
        in change.new_source


def test_quantize_dynamic_on_a_bert_classifier(notebook):
    setup = real_loops.HF_INFERENCE.setup.rstrip("\n") + ODD

    def live(ns, change):
        layers = [m for m in ns["model"].modules() if type(m).__name__ == "Linear"]
        assert layers and all(type(m).__module__.startswith("torch.ao.nn.quantized") for m in layers)
        assert change.numerics.kind == "quantize" and change.numerics.passed

    def code(ns):
        assert type(ns["model"].classifier).__module__.startswith("torch.ao.nn.quantized")

    roundtrip("compression.quantize_dynamic", setup, notebook, live, code, cell=real_loops.HF_INFERENCE.cell,
              inputs="examples")  # the loop's inputs: the setup cell never calls the model
