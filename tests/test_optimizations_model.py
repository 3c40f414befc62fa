"""The model-level optimizations on the CPU: live change, rewritten code, undo, idempotence, refusals, gains.

Each optimization is applied to a one-cell notebook (the cell builds the
model and runs it; the fake extension of optimization_fixtures.py holds it).
Then: the live objects changed as intended; the new cell parses and, run from
scratch, does the same; applying again changes nothing; the undo restores
the objects and the cell's text byte for byte. CUDA-only optimizations are
checked for their refusal here (benchmarks/gpu_optimizations.py measures
them on a GPU). The timing checks (quantize_dynamic ≥ 1.3×, directly and
through the magic) run on one thread and take medians: of alternating rounds
of the two models, and of three profiled runs on each side.
"""

from __future__ import annotations

import functools
import gc
import statistics
import subprocess
import sys
import time
import warnings

import pytest
import torch
from conftest import ROOT
from optimization_fixtures import ODD, assert_parses, notebook_fixture, release_namespaces, run  # noqa: F401
from timing import assert_faster, seconds_per_sample
from torch import nn

import jupyter_perf
from jupyter_perf.optimizations import applied, get
from jupyter_perf.optimizations.base import NotApplicable

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

IMPORTS = """\
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
"""

MLP_TRAIN = IMPORTS + "model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))" + ODD + """\
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loader = DataLoader(TensorDataset(torch.randn(64, 16), torch.randint(0, 4, (64,))), batch_size=16)
for x, y in loader:
    out = model(x)
    loss = F.cross_entropy(out, y)  # mean over the batch
    opt.zero_grad(); loss.backward(); opt.step()
"""

BLOCKS_TRAIN = IMPORTS + """\
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(0.1), nn.Linear(4 * d, d))

    def forward(self, x):
        return x + self.ff(x)


model = nn.Sequential(nn.Linear(16, 32), *[Block(32) for _ in range(3)], nn.Linear(32, 4))""" + ODD + """\
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(16, 16), torch.randint(0, 4, (16,))
for step in range(2):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""

CONV_TRAIN = IMPORTS + """\
model = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))""" + ODD + """\
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))) for _ in range(2)]
for x, y in batches:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""

LINEAR_INFER = IMPORTS + "model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10)).eval()" + ODD + """\
x = torch.randn(32, 256)
with torch.inference_mode():
    out = model(x)
"""


def fresh(source: str) -> dict:
    return run(source, {"__name__": "__main__"})


# ----------------------------------------------------------------- harness
def snapshot(namespace: dict) -> dict:
    """Every public binding; each model's tensors (identity, storage, strides, values) and instance forwards;
    each optimizer's state values."""
    state: dict = {"bindings": {k: id(v) for k, v in namespace.items() if not k.startswith("_")}}
    for name, value in namespace.items():
        if isinstance(value, nn.Module) and not name.startswith("_"):
            state[name] = [(n, id(t), t.data_ptr(), t.stride(), t.detach().clone())
                           for n, t in [*value.named_parameters(), *value.named_buffers()]]
            state[name + ".forward"] = [m.__dict__.get("forward") for m in value.modules()]
        elif isinstance(value, torch.optim.Optimizer) and not name.startswith("_"):
            state[name] = [{k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                           for s in value.state.values()]
    return state


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert _equal(value, after[key]), key


def _equal(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def roundtrip(opt_id: str, source: str, notebook, check_live, check_code, **params):
    """Apply, check live and code, apply again (no stacking), undo (objects and text restored). Returns the Change."""
    namespace = fresh(source)
    before = snapshot(namespace)
    change = get(opt_id).apply(namespace, cell=notebook.add("cell", source), **params)
    assert change.status == "applied", change.summary()
    assert notebook.cells["cell"] == change.new_source != source
    assert ODD in change.new_source  # comments, unicode and trailing spaces kept
    assert_parses(change.new_source)
    check_live(namespace, change)
    check_code(fresh(change.new_source))  # the rewritten cell, run from scratch, does the same
    again = get(opt_id).apply(namespace, cell=change.new_source, **params)
    assert again.status == "already applied" and not again.edits, again.summary()
    change.undo()
    assert change.status == "undone" and notebook.cells["cell"] == source and not notebook.refused
    assert_same(before, snapshot(namespace))
    return change


def nothing(*args) -> None:
    """No check: the optimization changes nothing live (its change is all in the code)."""


# ----------------------------------------------------------- precision.amp
def test_amp_bf16_wraps_forward_and_loss_and_is_guarded(notebook):
    def live(ns, change):
        assert change.params["dtype"] == "bfloat16"  # the CPU's autocast type
        assert change.numerics.kind == "amp_bf16" and 0 < change.numerics.relative_error < 0.05

    def code(ns):
        assert ns["out"].dtype == torch.bfloat16 and ns["loss"].dtype == torch.float32  # the loss stays float32

    change = roundtrip("precision.amp", MLP_TRAIN, notebook, live, code)
    assert change.new_source.endswith(
        'for x, y in loader:\n    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):\n'
        "        out = model(x)\n        loss = F.cross_entropy(out, y)  # mean over the batch\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n")


def test_amp_float16_adds_the_grad_scaler(notebook):
    def code(ns):
        assert isinstance(ns["scaler"], torch.amp.GradScaler) and ns["out"].dtype == torch.float16

    change = roundtrip("precision.amp", MLP_TRAIN, notebook, nothing, code, dtype="float16")
    assert change.numerics.kind == "amp_fp16" and change.numerics.passed
    assert 'scaler = torch.amp.GradScaler("cpu")\nfor x, y in loader:' in change.new_source
    assert change.new_source.endswith(
        "    opt.zero_grad(); scaler.scale(loss).backward(); scaler.step(opt)\n    scaler.update()\n")


def test_amp_in_an_inference_cell_wraps_the_model_calls(notebook):
    def code(ns):
        assert ns["out"].dtype == torch.bfloat16

    change = roundtrip("precision.amp", LINEAR_INFER, notebook, nothing, code)
    assert change.new_source.endswith(
        'with torch.inference_mode(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):\n    out = model(x)\n')


def test_amp_is_reverted_when_float16_overflows(notebook):
    cell = IMPORTS + "model = nn.Linear(8, 4)\nwith torch.no_grad():\n    model.weight.mul_(1e5)\n" \
                     "x = torch.randn(2, 8)\nout = model(x)\n"
    change = get("precision.amp").apply(fresh(cell), cell=notebook.add("cell", cell), dtype="float16")
    assert change.status == "reverted" and not change.numerics.passed
    assert change.description.startswith("Reverted: outputs differed by")
    assert notebook.cells["cell"] == cell  # never edited


def test_amp_refuses_a_model_already_in_16_bit():
    namespace = fresh(IMPORTS + "model = nn.Linear(8, 4).to(torch.bfloat16)\nx = torch.randn(2, 8)\n")
    assert get("precision.amp").applicable(None, namespace) == \
        "model's parameters are bfloat16: autocast lowers float32 math only"


# ---------------------------------------------- precision.tf32, compile.cuda_graphs
def test_cuda_only_optimizations_say_why_not_on_the_cpu():
    namespace = fresh(MLP_TRAIN)
    assert get("precision.tf32").applicable(None, namespace) == \
        "no CUDA device: TF32 is a tensor-core format of NVIDIA GPUs"
    assert get("compile.cuda_graphs").applicable(None, namespace) == \
        "no CUDA device: CUDA graphs record and replay GPU kernels"


def test_tf32_switches_guard_code_and_undo_with_cuda_simulated(notebook, monkeypatch):
    """The plumbing, with the CUDA checks faked; the GPU itself is measured by benchmarks/gpu_optimizations.py."""
    from jupyter_perf.optimizations import tf32

    monkeypatch.setattr(tf32, "require_cuda_model", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    original = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False

    def live(ns, change):
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        assert change.numerics.kind == "tf32" and change.numerics.passed

    try:
        change = roundtrip("precision.tf32", MLP_TRAIN, notebook, live, nothing)
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == (original[0], False)
        assert change.new_source.startswith(IMPORTS.replace(
            "\ntorch.manual_seed", 'torch.backends.cudnn.allow_tf32 = True\ntorch.set_float32_matmul_precision("high")'
            "\n\ntorch.manual_seed"))
    finally:
        torch.set_float32_matmul_precision(original[0])
        torch.backends.cudnn.allow_tf32 = original[1]


# ---------------------------------------------------- layout.channels_last
def test_channels_last_restrides_weights_in_place_and_converts_inputs(notebook):
    def live(ns, change):
        conv = ns["model"][0]
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert ns["opt"].param_groups[0]["params"][0] is conv.weight  # the same Parameter: still trained

    def code(ns):
        assert ns["model"][0].weight.is_contiguous(memory_format=torch.channels_last)

    change = roundtrip("layout.channels_last", CONV_TRAIN, notebook, live, code)
    assert "nn.Linear(8, 4))" + ODD + "model = model.to(memory_format=torch.channels_last)\nopt = " \
        in change.new_source
    assert "    loss = F.cross_entropy(model(x.to(memory_format=torch.channels_last)), y)\n" in change.new_source


def test_channels_last_needs_a_conv2d():
    assert get("layout.channels_last").applicable(None, fresh(MLP_TRAIN)) == \
        "model has no Conv2d layer: channels_last only changes how convolutions read images"


# ----------------------------------------------------- compile.torch_compile
def test_torch_compile_shares_its_parameters_with_the_optimizer(notebook):
    from torch._dynamo.eval_frame import OptimizedModule

    def live(ns, change):
        compiled = ns["model"]
        assert isinstance(compiled, OptimizedModule) and change.numerics.passed
        # the optimizer holds the very tensors the compiled model computes with
        assert all(p is q for p, q in zip(compiled.parameters(), ns["opt"].param_groups[0]["params"]))

    def code(ns):
        assert isinstance(ns["model"], OptimizedModule)

    change = roundtrip("compile.torch_compile", MLP_TRAIN, notebook, live, code, backend="eager")
    assert ODD + "model = torch.compile(model, backend='eager')\nopt = " in change.new_source


def test_torch_compile_defaults_to_inductor_and_writes_the_plain_call():
    change = get("compile.torch_compile").preview(fresh(MLP_TRAIN), MLP_TRAIN)
    assert change.params["backend"] == "inductor" and change.params["mode"] is None
    assert ODD + "model = torch.compile(model)\n" in change.new_source


# ---------------------------------------------------- memory.checkpointing
def block_grads(model) -> list:
    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks: checkpoint replays the RNG for its recomputation
    model(torch.randn(8, 16)).square().sum().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_checkpointing_wraps_the_repeated_blocks_and_keeps_the_gradients(notebook):
    reference = block_grads(fresh(BLOCKS_TRAIN)["model"])
    names = [n for n, _ in fresh(BLOCKS_TRAIN)["model"].named_parameters()]

    def live(ns, change):
        model = ns["model"]
        assert all(isinstance(b.__dict__.get("forward"), functools.partial) for b in list(model)[1:4])
        assert [n for n, _ in model.named_parameters()] == names  # state_dict keys unchanged

    def code(ns):
        assert all("forward" in b.__dict__ for b in list(ns["model"])[1:4])
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(block_grads(ns["model"]), reference))

    change = roundtrip("memory.checkpointing", BLOCKS_TRAIN, notebook, live, code)
    assert "import functools\n" in change.new_source
    assert ODD + "for _block in model[1:4]:  # activation checkpointing: recompute in backward\n" in change.new_source


def test_checkpointing_refuses_inference_and_models_without_blocks():
    opt = get("memory.checkpointing")
    with pytest.raises(NotApplicable, match="no backward runs"):
        opt.preview(fresh(LINEAR_INFER), LINEAR_INFER)
    assert opt.applicable(None, fresh(MLP_TRAIN)).startswith("no repeated blocks")


CHECKPOINT_MEMORY = """
import os, sys, warnings
warnings.simplefilter("ignore")
import torch
from torch import nn
import jupyter_perf

torch.manual_seed(0)
model = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU())
                        for _ in range(8)])
x = torch.randn(16384, 64)  # 4 MiB per activation; a block keeps 4 of them for backward
if sys.argv[1] == "on":
    jupyter_perf.apply("memory.checkpointing", {"model": model, "torch": torch})

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def peak():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

model(x[:64]).sum().backward()  # warm-up: checkpoint's first call imports and sets up ~75 MiB of its own
model.zero_grad(set_to_none=False)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the kernel's peak resident size starts again from the current one
start = resident()
model(x).sum().backward()
print(peak() - start)
"""


def test_checkpointing_lowers_peak_activation_memory_on_the_cpu():
    """Peak resident memory one forward+backward adds, each variant in a fresh process.

    glibc's mmap threshold is pinned so that every activation is its own
    mapping, returned to the system when freed; a warm-up step runs first (the
    first checkpoint call sets up ~75 MiB once), and the kernel's peak counter
    is reset just before the measured step: the figure is this step's peak,
    and other tests' allocations are not in it.
    """
    env = {"MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}

    def added(variant: str) -> int:
        result = subprocess.run([sys.executable, "-c", CHECKPOINT_MEMORY, variant], env=env, capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        return int(result.stdout.split()[-1])

    off, on = added("off"), added("on")
    print(f"peak added by one step: {off / 2**20:.0f} MiB without checkpointing, {on / 2**20:.0f} MiB with")
    assert off > 100 * 2**20  # 8 blocks x 4 kept activations x 4 MiB
    assert on < 0.5 * off


# ------------------------------------------------ memory.grad_accumulation
ONE_BATCH = IMPORTS + "model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))" + ODD + """\
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(TensorDataset(torch.randn(32, 16), torch.randint(0, 4, (32,))), batch_size=32)
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.parametrize("steps", [2, 4])
def test_grad_accumulation_gives_the_large_batch_gradients(notebook, steps):
    reference = [p.grad for p in fresh(ONE_BATCH)["model"].parameters()]

    def code(ns):
        for got, want in zip((p.grad for p in ns["model"].parameters()), reference):
            assert (got - want).abs().max() <= 1e-5

    change = roundtrip("memory.grad_accumulation", ONE_BATCH, notebook, nothing, code, steps=steps)
    assert change.new_source.endswith(
        f"for x, y in loader:\n    opt.zero_grad()\n    for x, y in zip(x.chunk({steps}), y.chunk({steps})):\n"
        f"        loss = F.cross_entropy(model(x), y)\n        (loss / {steps}).backward()\n    opt.step()\n")


def test_grad_accumulation_warns_what_changes_meaning():
    cell = MLP_TRAIN.replace("batch_size=16", "batch_size=15") + "    print(loss.item())\n"
    change = get("memory.grad_accumulation").apply(fresh(cell), cell=cell, steps=2)
    text = " ".join(change.warnings)
    change.undo()
    assert "after the optimizer step, loss hold the last micro-batch's values" in text
    assert "loader's batch of 15 does not split into 2 equal micro-batches" in text


def test_grad_accumulation_gives_a_snippet_for_a_loop_it_does_not_recognise(notebook):
    cell = MLP_TRAIN.replace("for x, y in loader:", "def train_step(x, y):") + \
        "\nfor x, y in loader:\n    train_step(x, y)\n"
    change = get("memory.grad_accumulation").apply(fresh(cell), cell=notebook.add("cell", cell))
    assert change.edits == [] and notebook.cells["cell"] == cell
    assert "chunk(2)" in change.snippet
    assert "code not rewritten (the code this change rewrites was not found in the cell starting '" in \
        change.summary() and "); add by hand" in change.summary()
    change.undo()


# --------------------------------------------- compression.quantize_dynamic
def test_quantize_dynamic_swaps_in_an_int8_copy(notebook):
    def live(ns, change):
        assert type(ns["model"][0]).__module__ == "torch.ao.nn.quantized.dynamic.modules.linear"
        assert change.numerics.kind == "quantize" and change.numerics.relative_error < 0.05

    def code(ns):
        assert type(ns["model"][2]).__module__ == "torch.ao.nn.quantized.dynamic.modules.linear"

    change = roundtrip("compression.quantize_dynamic", LINEAR_INFER, notebook, live, code)
    assert ODD + "model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)\n" \
        in change.new_source


def test_quantize_dynamic_refuses_training():
    with pytest.raises(NotApplicable, match="trains: int8 quantized layers have no gradients"):
        jupyter_perf.apply("compression.quantize_dynamic", fresh(MLP_TRAIN), MLP_TRAIN)


@pytest.fixture()
def one_thread():
    """Time the math, not OpenMP on a busy two-core machine (a parallel op waits for a descheduled thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


LARGE_LINEAR = IMPORTS + """\
model = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048)).eval()
x = torch.randn(64, 2048)
"""


def alternating_times(slow, fast, repeats: int = 11) -> tuple[list[float], list[float]]:
    """Seconds of each round of ``slow`` and of ``fast``, run alternately so that load hits both alike."""
    slow_s, fast_s = [], []
    with torch.inference_mode():
        slow(), fast()  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            slow()
            t1 = time.perf_counter()
            fast()
            slow_s.append(t1 - t0)
            fast_s.append(time.perf_counter() - t1)
    return slow_s, fast_s


def test_quantize_dynamic_is_within_tolerance_and_faster_on_the_cpu(one_thread):
    namespace = fresh(LARGE_LINEAR)
    model, x = namespace["model"], namespace["x"]
    change = jupyter_perf.apply("compression.quantize_dynamic", namespace, inputs="x")
    assert change.status == "applied" and change.numerics.relative_error < 0.05
    quantized = namespace["model"]
    slow_s, fast_s = alternating_times(lambda: model(x), lambda: quantized(x))
    speedup = statistics.median(a / b for a, b in zip(slow_s, fast_s))
    print(f"quantize_dynamic: ×{speedup:.2f} (median of 11), relative error {change.numerics.relative_error:.2%}")
    change.undo()
    # Faster by more than the rounds' scatter; how much faster is benchmarks/fix_efficacy.py's to say.
    assert_faster(slow_s, fast_s, "quantized model")


E2E_SETUP = IMPORTS + """\
model = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10)).eval()
loader = DataLoader(TensorDataset(torch.randn(64 * 8, 2048)), batch_size=64)
with torch.inference_mode():
    model(torch.randn(64, 2048))  # warm-up
"""
E2E_CELL = """\
with torch.inference_mode():
    preds = [model(x).argmax(1) for (x,) in loader]
"""


@pytest.fixture()
def shell(ipython):
    """The shared shell, this test's changes undone and its names removed afterwards."""
    before, earlier = set(ipython.user_ns), applied()
    yield ipython
    for change in reversed(applied()):
        if change not in earlier:
            change.undo()
    for name in set(ipython.user_ns) - before:
        del ipython.user_ns[name]
    gc.collect()


def test_end_to_end_through_the_magic_quantize_is_re_measured_faster(shell, one_thread):
    """Profile → recommendation → jupyter_perf.apply → re-run: samples/s, the median of three runs each side."""
    from jupyter_perf.report import Comparison

    shell.run_cell(E2E_SETUP)

    def profiled(name: str):
        assert shell.run_cell(f"%%perfprofile -o {name} --no-live\n{E2E_CELL}").success
        return shell.user_ns[name]

    before = [profiled(f"_before{i}") for i in range(3)]
    assert "compression.quantize_dynamic" in before[0].recommended()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        change = jupyter_perf.apply("compression.quantize_dynamic", shell.user_ns, E2E_CELL, before[0])
    assert change.status == "applied", change.summary()
    assert change.target.source == E2E_SETUP  # the cell that built the model was rewritten
    assert "model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}" in change.new_source
    after = [profiled(f"_after{i}") for i in range(3)]
    ratios = sorted(Comparison(b, a).speedup for b, a in zip(before, after))
    print(f"end to end: ×{ratios[1]:.2f} samples/s (runs: {', '.join(f'{r:.2f}' for r in ratios)})")
    # Every step of the three runs on each side: faster by more than their scatter, not by a fixed ×.
    assert_faster([s for r in before for s in seconds_per_sample(r)], [s for r in after for s in seconds_per_sample(r)],
                  "quantized model, end to end")


# ----------------------------------------------------- compression.prune
def test_prune_zeroes_the_smallest_weights_in_the_same_parameters(notebook):
    original = fresh(LINEAR_INFER)["model"]

    def live(ns, change):
        model = ns["model"]
        assert [n for n, _ in model.named_parameters()] == [n for n, _ in original.named_parameters()]
        for layer, ref in ((model[0], original[0]), (model[2], original[2])):
            zeros = layer.weight == 0
            assert zeros.sum() == round(0.1 * layer.weight.numel())
            assert ref.weight.abs()[zeros].max() <= ref.weight.abs()[~zeros].min()  # the smallest magnitudes
        assert not model[0]._forward_pre_hooks
        assert change.numerics.kind == "prune" and change.numerics.passed

    def code(ns):
        assert all((layer.weight == 0).sum() == round(0.1 * layer.weight.numel())
                   for layer in (ns["model"][0], ns["model"][2]))

    change = roundtrip("compression.prune", LINEAR_INFER, notebook, live, code)
    assert "import torch.nn.utils.prune\n" in change.new_source
    assert '        torch.nn.utils.prune.l1_unstructured(_module, "weight", amount=0.1)\n' in change.new_source
    assert any("run no faster" in w for w in change.warnings)


def test_prune_is_reverted_when_the_outputs_move_too_far(notebook):
    namespace = fresh(LINEAR_INFER)
    before = snapshot(namespace)
    change = get("compression.prune").apply(namespace, cell=notebook.add("cell", LINEAR_INFER), amount=0.9)
    assert change.status == "reverted" and change.numerics.relative_error > 0.1
    assert notebook.cells["cell"] == LINEAR_INFER
    assert_same(before, snapshot(namespace))


# -------------------------------------------------------- optimizer.fused
def test_fused_optimizer_on_the_cpu_is_foreach_with_state_and_scheduler_moved(notebook):
    cell = MLP_TRAIN + "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)\nsched.step()\n"
    namespace = fresh(cell)
    old = namespace["opt"]
    before = snapshot(namespace)
    change = get("optimizer.fused").apply(namespace, cell=notebook.add("cell", cell))
    new = namespace["opt"]
    assert change.params["mode"] == "foreach" and new is not old and namespace["sched"].optimizer is new
    assert all(g["foreach"] is True for g in new.param_groups) and new.param_groups[0]["lr"] == 0.05
    for p in namespace["model"].parameters():
        assert torch.equal(new.state[p]["momentum_buffer"], old.state[p]["momentum_buffer"])
    assert notebook.cells["cell"] == change.new_source
    assert "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=True)\n" in change.new_source
    assert fresh(change.new_source)["opt"].defaults["foreach"] is True
    assert get("optimizer.fused").apply(namespace, cell=change.new_source).status == "already applied"
    change.undo()
    assert notebook.cells["cell"] == cell and namespace["opt"] is old and namespace["sched"].optimizer is old
    assert_same(before, snapshot(namespace))


def test_fused_optimizer_refuses_an_optimizer_without_the_option():
    namespace = fresh(MLP_TRAIN + "opt = torch.optim.LBFGS(model.parameters())\n")
    assert get("optimizer.fused").applicable(None, namespace) == "LBFGS takes no foreach= argument"


# ------------------------------------------------------------------ shared
def test_the_guard_needs_an_input_and_says_so():
    reason = get("compression.quantize_dynamic").applicable(None, fresh(IMPORTS + "model = nn.Linear(8, 4)\n"))
    assert reason.startswith("no call of model was recorded and no input of it was found to check its outputs on: "
                             "run a cell that calls model under %%perfprofile")
    assert "or pass inputs=" in reason


def test_a_loss_module_or_a_submodule_is_not_taken_for_the_model():
    namespace = fresh(MLP_TRAIN + "criterion = nn.CrossEntropyLoss()\nhead = model[2]\n")
    assert get("precision.amp").preview(namespace, MLP_TRAIN).params["model"] == "model"


def test_the_guard_tries_what_the_cell_feeds_the_model_and_skips_what_does_not_fit():
    namespace = fresh(CONV_TRAIN + "other = torch.randn(3)\n")
    opt = get("compile.torch_compile")
    # model(x), then the loop's batches; `other` is nothing the cell gives the model
    assert opt.preview(namespace, CONV_TRAIN, backend="eager").params["inputs"] == ["x", "batches"]
    namespace["x"] = torch.randn(2, 5)  # stale: bound by something else since the cell ran
    change = opt.apply(namespace, cell=CONV_TRAIN, backend="eager")
    assert change.status == "applied" and change.numerics.passed  # checked on `batches`, which fits
    change.undo()
    namespace["batches"] = [torch.randn(1)]
    with pytest.raises(NotApplicable, match=r"could not run on any input to check its outputs \(x \(RuntimeError: .*"
                                            r"\); batches \(RuntimeError: .*\)\): run a cell that calls model"):
        opt.apply(namespace, cell=CONV_TRAIN, backend="eager")
    assert isinstance(namespace["model"], nn.Sequential)  # nothing changed


def test_a_comprehension_gives_its_iterable_not_its_variable():
    namespace = fresh(LINEAR_INFER + "loader = DataLoader(TensorDataset(torch.randn(8, 256)), batch_size=4)\n"
                                     "other = DataLoader(TensorDataset(torch.randn(8, 3)))\n")
    cell = "preds = [model(x) for (x,) in loader]\n"  # `x` in the namespace is not this comprehension's x
    assert get("compression.quantize_dynamic").preview(namespace, cell).params["inputs"] == ["loader"]
