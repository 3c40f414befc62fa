"""Every optimization in the catalog, the same round trip: on a notebook cell where it applies, it previews a diff,
applies (live objects and code), does not stack when applied again, and undoes both exactly.

Parametrized over the catalog's ids, as Composer's tests run over its registered algorithms: an optimization
registered without an example here fails this test until it gets one, so nothing new goes untested. Each
example is one cell that builds what the optimization acts on and runs the loop it was profiled on; CUDA-only
optimizations make the round trip on a GPU and, on a CPU, must refuse with a reason that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import distributed_cases
import lm_scenarios as lm
import pytest
import torch
from optimization_fixtures import ODD, assert_parses, notebook_fixture  # noqa: F401  (fixture)
from test_optimizations_distributed import TUTORIAL
from test_optimizations_model import assert_same, snapshot

import jupyter_perf
from jupyter_perf.execution import compile_source, run_compiled
from jupyter_perf.optimizations import get, ids

_IMPORTS = """import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
"""
_MLP = "model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))\n"
_TRAIN = """for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""
_DATA = "loader = DataLoader(TensorDataset(torch.randn(64, 16), torch.randint(0, 4, (64,))), batch_size=8)\n"
_INFER = """preds = []
for (x,) in loader:
    preds.append(model(x).argmax(-1))
"""
_INFER_NO_GRAD = "with torch.no_grad():\n" + "".join("    " + line + "\n" for line in _INFER.splitlines())
_GPT2 = """from transformers import GPT2Config, GPT2LMHeadModel
model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=64,
                                   bos_token_id=0, eos_token_id=0, attn_implementation={attention!r}))
"""


@dataclass(frozen=True)
class Example:
    """``setup`` builds what the optimization acts on; ``loop`` is the profiled code; the notebook cell holds both."""

    setup: str
    loop: str
    params: dict = field(default_factory=dict)

    @property
    def cell(self) -> str:
        return self.setup + ODD + self.loop


EXAMPLES: dict[str, Example] = {
    "dataloader.workers": Example(_IMPORTS + _MLP + _DATA + "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
                                  _TRAIN, {"num_workers": 2}),
    "dataloader.pin_memory": Example(
        _IMPORTS + _MLP + "model = model.cuda()\n" + _DATA + "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
        "for x, y in loader:\n    x, y = x.cuda(), y.cuda()\n    loss = F.cross_entropy(model(x), y)\n"
        "    opt.zero_grad()\n    loss.backward()\n    opt.step()\n"),
    "dataloader.batch_size": Example(
        _IMPORTS + _MLP + "model.eval()\nloader = DataLoader(TensorDataset(torch.randn(64, 16)), batch_size=1)\n",
        _INFER_NO_GRAD, {"batch_size": 16}),
    "precision.amp": Example(_IMPORTS + _MLP + _DATA + "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
                             _TRAIN, {"dtype": "bfloat16"}),
    "precision.tf32": Example(_IMPORTS + _MLP + "model = model.cuda()\nx = torch.randn(8, 16, device='cuda')\n",
                              "for _ in range(5):\n    out = model(x)\n"),
    "layout.channels_last": Example(
        _IMPORTS + "model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))\n"
        "images = [torch.randn(4, 3, 8, 8) for _ in range(4)]\n",
        "for x in images:\n    out = model(x)\n"),
    "compile.torch_compile": Example(_IMPORTS + _MLP + "x = torch.randn(8, 16)\n",
                                     "for _ in range(5):\n    out = model(x)\n", {"backend": "eager"}),
    "compile.cuda_graphs": Example(_IMPORTS + _MLP + "model = model.cuda()\nx = torch.randn(8, 16, device='cuda')\n",
                                   "for _ in range(5):\n    out = model(x)\n"),
    "memory.checkpointing": Example(
        _IMPORTS + "model = nn.Sequential(*(nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(3)),"
        " nn.Linear(16, 4))\n" + _DATA + "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n", _TRAIN),
    "memory.grad_accumulation": Example(_IMPORTS + _MLP + _DATA + "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
                                        _TRAIN, {"steps": 2}),
    "memory.release_graph": Example(_IMPORTS + _MLP + _DATA + "losses = []\n",
                                    "for x, y in loader:\n    losses.append(F.cross_entropy(model(x), y))\n"),
    "inference.inference_mode": Example(_IMPORTS + _MLP + "model.eval()\n" + _DATA, _INFER),
    "compression.quantize_dynamic": Example(_IMPORTS + _MLP + "model.eval()\n" + _DATA, _INFER_NO_GRAD),
    "compression.prune": Example(_IMPORTS + _MLP + "model.eval()\n" + _DATA, _INFER_NO_GRAD, {"amount": 0.05}),
    "optimizer.fused": Example(_IMPORTS + _MLP + _DATA + "opt = torch.optim.Adam(model.parameters(), lr=1e-3,"
                                                         " foreach=False)\n", _TRAIN),
    "cpu.threads": Example(_IMPORTS + _MLP + "x = torch.randn(8, 16)\n", "for _ in range(5):\n    out = model(x)\n",
                           {"threads": 1}),
    "data.length_grouping": Example(
        _IMPORTS + "from torch.utils.data import Dataset\n" + lm.PADDED_TOKENS + _GPT2.format(attention="sdpa")
        + "loader = DataLoader(PaddedTokens(24), batch_size=8, shuffle=True)\n"
        "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)\n",
        "model.train()\nfor batch in loader:\n    loss = model(**batch).loss\n    loss.backward()\n"
        "    optimizer.step()\n    optimizer.zero_grad()\n"),
    "attention.sdpa": Example(_IMPORTS + _GPT2.format(attention="eager") + "ids = torch.randint(0, 64, (2, 16))\n",
                              "with torch.no_grad():\n    for _ in range(3):\n"
                              "        logits = model(input_ids=ids).logits\n"),
    "generation.kv_cache": Example(_IMPORTS + _GPT2.format(attention="sdpa")
                                   + "prompt = torch.randint(1, 64, (1, 4))\n",
                                   "out = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False,"
                                   " pad_token_id=0)\n"),
}

#: The PyTorch DDP tutorial's cell, its training function launched on 2 gloo ranks (communication-bound).
_DDP_SETUP, _DDP_LAUNCH = TUTORIAL.format(port=distributed_cases.free_port()).rsplit("\n\n\n", 1)
for _opt_id in ("distributed.bucket_cap", "distributed.comm_hook", "distributed.no_sync"):
    EXAMPLES[_opt_id] = Example(_DDP_SETUP + "\n", _DDP_LAUNCH + "\n")
EXAMPLES["distributed.ddp"] = Example(_IMPORTS + _MLP + "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
                                      "loader = DataLoader(TensorDataset(torch.randn(256, 16),"
                                      " torch.randint(0, 4, (256,))), batch_size=32)\n",
                                      _TRAIN, {"port": distributed_cases.free_port()})

#: Where there is no GPU, these can only say why not.
CUDA_ONLY = {"dataloader.pin_memory", "precision.tf32", "compile.cuda_graphs"}


def fresh(source: str) -> dict:
    namespace = {"__name__": "__main__"}
    run_compiled(*compile_source(source), namespace)
    return namespace


@pytest.mark.parametrize("opt_id", ids())
def test_every_optimization_previews_applies_does_not_stack_and_undoes_exactly(opt_id, notebook):
    assert opt_id in EXAMPLES, f"{opt_id} is registered without an example in this test: add one"
    example = EXAMPLES[opt_id]
    if opt_id in CUDA_ONLY and not torch.cuda.is_available():
        on_cpu = example.setup.replace(".cuda()", "").replace(", device='cuda'", "")
        reason = get(opt_id).applicable(None, fresh(on_cpu), **example.params)
        assert reason is not None and ("CUDA" in reason or "cuda" in reason), reason
        return
    namespace = fresh(example.setup)
    report = jupyter_perf.profile(example.loop, namespace)
    before = snapshot(namespace)
    target = notebook.add("cell", example.cell)

    preview = get(opt_id).preview(namespace, cell=target, report=report, **example.params)
    assert preview.status == "preview" and (preview.diff or preview.snippet), preview.summary()
    assert_same(before, snapshot(namespace))  # a preview touches nothing

    change = preview.commit()
    assert change.status == "applied", change.summary()
    if change.edits:
        assert notebook.cells["cell"] == change.new_source and ODD in change.new_source
        assert_parses(change.new_source)
    again = get(opt_id).preview(namespace, cell=change.new_source or example.cell, report=report, **example.params)
    assert again.status == "already applied" and not again.edits, again.summary()

    change.undo()
    assert change.status == "undone"
    assert notebook.cells["cell"] == example.cell and not notebook.refused
    assert_same(before, snapshot(namespace))
