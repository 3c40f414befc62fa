"""Diagnosis on loops in the shape of real code: no false alarms, no misses.

Each loop is written the way public code writes it (pytorch/examples'
word_language_model, a Hugging Face hand-written loop, an evaluation without
``no_grad``, batch-size-1 BERT inference), with tiny configs and random
weights, and profiled through ``jupyter_perf.profile``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, run_setup, settled_heap

import jupyter_perf
from jupyter_perf.optimizations.base import NotApplicable

pytest.importorskip("transformers")


def profiled(setup: str, cell: str) -> tuple:
    namespace = run_setup(setup)
    with settled_heap():
        return jupyter_perf.profile(cell, namespace), namespace


def census(report, name: str) -> dict:
    return next(c for c in report.signals["retained_graphs"] if c["name"] == name)


def refused(report, namespace: dict, cell: str | None, **params) -> str:
    """memory.release_graph's reason for not applying: its own words, never a library's exception."""
    with pytest.raises(NotApplicable) as refusal:
        jupyter_perf.apply("memory.release_graph", namespace, cell=cell, report=report, **params)
    return str(refusal.value)


# ------------------------------------------------------- retained graphs
WORD_LANGUAGE_MODEL = """
import torch
from torch import nn
import torch.nn.functional as F
torch.manual_seed(0)

class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.2):
        super().__init__()
        self.ntoken, self.nlayers, self.nhid = ntoken, nlayers, nhid
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))

def repackage_hidden(h):
    # Wraps hidden states in new Tensors, to detach them from their history.
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)

ntokens, bptt, batch_size, lr, clip = 500, 35, 20, 20.0, 0.25
train_data = torch.randint(0, ntokens, (bptt * 30 + 1, batch_size))

def get_batch(source, i):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)

model = RNNModel(ntokens, 64, 64, 2)
criterion = nn.NLLLoss()
"""

WORD_LANGUAGE_MODEL_TRAIN = """
model.train()
total_loss = 0.
hidden = model.init_hidden(batch_size)
for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
    data, targets = get_batch(train_data, i)
    hidden = repackage_hidden(hidden)
    model.zero_grad()
    output, hidden = model(data, hidden)
    loss = criterion(output, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    for p in model.parameters():
        p.data.add_(p.grad, alpha=-lr)
    total_loss += loss.item()
"""


def test_detached_recurrent_state_is_no_retained_graph():
    """`hidden = (h, c)` keeps the last step's graph until repackage_hidden detaches it: it never grows."""
    report, namespace = profiled(WORD_LANGUAGE_MODEL, WORD_LANGUAGE_MODEL_TRAIN)
    assert report.error is None
    hidden = census(report, "hidden")
    assert (hidden["type"], hidden["tensors"]) == ("tuple", 2) and hidden["gained"] < 3
    assert not {"retained_graphs", "memory_leak"} & {f.id for f in report.findings}
    assert "memory.release_graph" not in report.recommended()
    reason = refused(report, namespace, WORD_LANGUAGE_MODEL_TRAIN)
    assert "hidden (tuple) did not grow during the profiled run" in reason
    assert namespace["hidden"][0].grad_fn is not None  # untouched


HF_CAUSAL_LM = """
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)

class TokenBlocks(Dataset):
    def __init__(self, n, length):
        self.ids = torch.randint(0, 256, (n, length))
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.ids[i]}

model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=256, n_positions=64))
train_dataloader = DataLoader(TokenBlocks(160, 32), batch_size=8, shuffle=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
"""

HF_CAUSAL_LM_TRAIN = """
model.train()
for step, batch in enumerate(train_dataloader):
    outputs = model(**batch)
    loss = outputs.loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
"""


def test_a_hugging_face_model_output_is_no_retained_graph_and_is_left_alone():
    """`outputs` holds the last step's loss and logits; release_graph on it refuses in its own words
    (transformers itself raises "You cannot use `update` on a CausalLMOutputWithCrossAttentions instance")."""
    report, namespace = profiled(HF_CAUSAL_LM, HF_CAUSAL_LM_TRAIN)
    assert report.error is None
    outputs = census(report, "outputs")
    assert outputs["type"] == "CausalLMOutputWithCrossAttentions" and outputs["gained"] < 3
    assert not {"retained_graphs", "memory_leak"} & {f.id for f in report.findings}
    assert "memory.release_graph" not in report.recommended()
    assert "outputs (CausalLMOutputWithCrossAttentions) did not grow during the profiled run" in refused(
        report, namespace, HF_CAUSAL_LM_TRAIN)
    assert refused(None, namespace, HF_CAUSAL_LM_TRAIN, container="outputs") == (
        "outputs is a CausalLMOutputWithCrossAttentions, not a list or dict that grows step after step: "
        "nothing to rewrite")
    assert namespace["outputs"].loss.grad_fn is not None  # untouched


LOSS_LIST = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import torch.nn.functional as F
torch.manual_seed(0)
# Each validation loss keeps its graph: the 512 x 5120 float32 hidden activations, 10 MiB a step.
model = nn.Sequential(nn.Linear(128, 5120), nn.ReLU(), nn.Linear(5120, 10))
val_loader = DataLoader(TensorDataset(torch.randn(512 * 20, 128), torch.randint(0, 10, (512 * 20,))),
                        batch_size=512)
losses = []
"""

LOSS_LIST_EVAL = """
model.eval()
for x, y in val_loader:
    loss = F.cross_entropy(model(x), y)
    losses.append(loss)
"""


@pytest.mark.parametrize("run", range(10))
def test_a_loss_list_growing_each_step_is_the_leak_on_a_short_run(run):
    """20 steps: a list gaining a graph a step while memory grows 200 MiB is the leak, even where too few
    samples for a trend line (memory_leak's fit) were taken."""
    report, namespace = profiled(LOSS_LIST, LOSS_LIST_EVAL)
    losses = census(report, "losses")
    assert losses["tensors"] == 20 and losses["per_step"] >= 0.9
    assert report.bottleneck == "memory_leak", [f.summary for f in report.findings]
    assert "`losses` gained" in report.finding("memory_leak").summary
    top = report.recommendations[0]
    assert top.optimization == "memory.release_graph" and top.params == {"container": "losses"}
    change = jupyter_perf.apply("memory.release_graph", namespace, cell=LOSS_LIST_EVAL, report=report)
    assert "losses.append(loss.item())" in change.new_source
    assert all(isinstance(v, float) for v in namespace["losses"])


def test_the_census_counts_an_accumulator_behind_older_items_and_passes_over_input_lists():
    """An accumulator's graphs are at its end, after what it held before the run; a list of input batches holds
    none and is passed over after a look at its ends (the census runs during the profiled loop)."""
    import torch

    from jupyter_perf.probes.namespace import graph_holders

    w = torch.ones(3, requires_grad=True)
    namespace = {
        "batches": [torch.randn(3) for _ in range(5000)],
        "history": [torch.zeros(()) for _ in range(500)] + [(w * i).sum() for i in range(3)],
        "by_step": {i: (w * i).sum() for i in range(4)},
        "hidden": ((w * 2).sum(),),  # one graph: listed, the diagnosis reads whether it grows
    }
    assert graph_holders(namespace) == {"history": ("list", 3), "by_step": ("dict", 4), "hidden": ("tuple", 1)}


# ---------------------------------------------------------- launch overhead
@pytest.fixture()
def one_thread():
    """One intra-op thread for the run. On this shared two-core machine, with other processes busy, two
    OpenMP threads made each small op wait for a descheduled partner: a batch-1 BERT forward ran ×8-×30
    slower than alone, its thread waiting 70-78% of the run for a core, and no rule that reads timings
    sees through that. The rule under test judges the batch, not the threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BERT = """
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import BertConfig, BertForSequenceClassification
torch.manual_seed(0)
# bert-mini's shape (4 layers, hidden 256), random weights: 0.25 M parameters, 1 MB, per layer call
config = BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                    intermediate_size=1024, num_labels=2)
model = BertForSequenceClassification(config).eval()
input_ids = torch.randint(0, 1000, (96, 16))
attention_mask = torch.ones_like(input_ids)
labels = torch.randint(0, 2, (96,))
with torch.no_grad():  # warm-up: the first calls of a fresh model pick kernels
    for _ in range(3):
        model(input_ids=input_ids[:1], attention_mask=attention_mask[:1])
"""

BERT_BATCH_ONE = BERT + """
loader = DataLoader(TensorDataset(input_ids, attention_mask), batch_size=1)
"""

BERT_PREDICT = """
preds = []
with torch.no_grad():
    for ids, mask in loader:
        logits = model(input_ids=ids, attention_mask=mask).logits
        preds.append(logits.argmax(-1))
"""


def test_batch_size_one_transformer_inference_is_launch_overhead_with_batch_size_first(one_thread):
    """Layer calls of ~60 µs here (with the CPU to itself), above the per-call floor, but at one sample per
    step most of each is fixed: calling the module and reading its weights (batching it to 32 gained ×4)."""
    report, _ = profiled(BERT_BATCH_ONE, BERT_PREDICT)
    assert report.steps == 96 and report.signals["samples_per_step"] == 1
    assert report.bottleneck == "launch_overhead", [f.summary for f in report.findings]
    finding = report.finding("launch_overhead")
    assert finding.evidence["view"] == "per sample" and finding.evidence["weight_bytes_per_leaf_call"] > 0
    top = report.recommendations[0]
    assert top.optimization == "dataloader.batch_size" and top.params["batch_size"] == 96  # the whole dataset
    assert "compression.quantize_dynamic" not in report.recommended()


BERT_BY_HAND = """
predictions = []
with torch.no_grad():
    for i in range(len(input_ids)):
        logits = model(input_ids[i:i + 1], attention_mask=attention_mask[i:i + 1]).logits
        predictions.append(int(logits.argmax()))
"""


def test_single_examples_without_a_dataloader_are_told_how_to_batch(one_thread):
    report, _ = profiled(BERT, BERT_BY_HAND)
    assert report.signals["samples_per_step"] == 1
    assert report.bottleneck == "launch_overhead", [f.summary for f in report.findings]
    assert "stack several examples into one call" in report.finding("launch_overhead").summary
    assert "dataloader.batch_size" not in report.recommended()


BERT_BATCHED = BERT + """
loader = DataLoader(TensorDataset(input_ids, attention_mask, labels), batch_size=16)
"""

BERT_EVALUATE = """
correct = 0
for ids, mask, y in loader:
    outputs = model(input_ids=ids, attention_mask=mask)   # no torch.no_grad(): graphs recorded for nothing
    correct += (outputs.logits.argmax(-1) == y).sum().item()
"""


def test_evaluation_without_no_grad_puts_inference_mode_first():
    """inference_mode is certain and free; quantization and compile are not (they ranked above it before)."""
    report, _ = profiled(BERT_BATCHED, BERT_EVALUATE)
    assert report.finding("inference_with_grad")
    assert report.steps == 6 and report.bottleneck != "launch_overhead"  # 16 samples a step
    unestimated = [r.optimization for r in report.recommendations if r.expected_speedup is None]
    assert unestimated[0] == "inference.inference_mode", report.recommended()
    assert {"compile.torch_compile", "compression.quantize_dynamic"} & set(unestimated[1:])
    assert not report.finding("retained_graphs")  # `outputs`, a ModelOutput, holds one step's logits
    assert "memory.release_graph" not in report.recommended()


# ------------------------------------------------------------------ disk_io
FRESH_PROCESS = textwrap.dedent('''
    import json, os, sys, tempfile
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    import torch.nn.functional as F
    import jupyter_perf

    # Two modules that read a 24 MiB table when imported (a vocabulary, a lookup table), dropped from the page
    # cache so that importing them reads storage, as a fresh process's first imports do.
    lib = tempfile.mkdtemp(prefix="jp-lazy-imports-")
    for name in ("table_a", "table_b"):
        with open(os.path.join(lib, name + ".bin"), "wb") as f:
            f.write(os.urandom(24 << 20))
        with open(os.path.join(lib, name + ".py"), "w") as f:
            f.write("import os\\nwith open(os.path.join(os.path.dirname(__file__), %r), 'rb') as f:\\n"
                    "    TABLE = f.read()\\n" % (name + ".bin"))
    os.sync()
    for entry in os.listdir(lib):
        fd = os.open(os.path.join(lib, entry), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    sys.path.insert(0, lib)

    class SlowDataset(Dataset):
        """3 ms of "decoding" per sample; imports what it needs on first use, and once more mid-run."""
        def __len__(self): return 160
        def __getitem__(self, i):
            if i == 0:
                import table_a
            if i == 88:
                import table_b
            import time; time.sleep(0.003)
            return torch.randn(64), i % 10

    loader = DataLoader(SlowDataset(), batch_size=8)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    report = jupyter_perf.profile("""
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    """, globals())
    print(json.dumps({"bottleneck": report.bottleneck, "findings": [f.id for f in report.findings],
                      "io": report.signals["io"], "steps": report.steps}))
''')


def test_modules_imported_during_a_fresh_run_are_not_disk_io():
    """A sleep-bound dataset whose imports read 48 MiB from storage, one at its first sample, one mid-run."""
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["io"]["read_bytes"] > 40 * 2**20, result  # the imports really read storage during the run
    assert result["bottleneck"] == "input_pipeline", result
    assert "disk_io" not in result["findings"]
