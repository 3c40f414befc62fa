"""The distributed optimizations on real DDP code: the PyTorch DDP tutorial's shape and an accelerate script.

Each is applied to a cell that defines the training function and launches it on 2 CPU ranks over gloo; the
fake extension of optimization_fixtures.py holds the cell. Then: the diff is the one expected; the training
function in the namespace is the rewritten one (the live change); Apply & re-run launches the ranks again
and measures; applying again changes nothing; the undo restores the function and the text byte for byte.
``distributed.no_sync`` with k=4 composes with ``memory.grad_accumulation`` on the communication-heavy case:
4 all-reduces per step become 1, and the step gets faster (a planted 4x all-reduce of 16 MiB: no timing
threshold a loaded machine can flip, only the direction with a margin).
"""

from __future__ import annotations

import textwrap

import distributed_cases as cases
import pytest
from optimization_fixtures import assert_parses, notebook_fixture, release_namespaces  # noqa: F401

import jupyter_perf
from jupyter_perf import apply_and_rerun
from jupyter_perf.optimizations import get
from jupyter_perf.optimizations.remeasure import remeasure
from jupyter_perf.report import Report
from jupyter_perf.runs import run

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore::UserWarning")]

TUTORIAL = '''\
import torch, torch.distributed as dist, torch.multiprocessing as mp
from torch import nn, optim
from torch.nn.parallel import DistributedDataParallel as DDP


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net1 = nn.Linear(1024, 2048)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(2048, 8)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_basic(rank, world_size, port, steps):
    """The PyTorch DDP tutorial's demo_basic, on gloo and the CPU."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    torch.manual_seed(rank)
    model = ToyModel()
    ddp_model = DDP(model)  # ünïcode ✓, and a comment to keep

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.001)
    for step in range(steps):
        optimizer.zero_grad()
        outputs = ddp_model(torch.randn(4, 1024))
        labels = torch.randn(4, 8)
        loss_fn(outputs, labels).backward()
        optimizer.step()
    dist.destroy_process_group()


mp.start_processes(demo_basic, args=(2, {port}, 12), nprocs=2, start_method="fork")'''

ACCELERATE = '''\
import torch
from torch import nn
from accelerate import Accelerator, notebook_launcher


def training_function():
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    model = nn.Sequential(*[nn.Linear(512, 512) for _ in range(4)], nn.Linear(512, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = torch.utils.data.TensorDataset(torch.randn(256, 512), torch.randint(0, 10, (256,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        accelerator.backward(loss)
        optimizer.step()


notebook_launcher(training_function, num_processes=2, use_port="{port}")'''


@pytest.fixture(scope="module")
def tutorial_run():
    """The tutorial's cell, profiled once: communication-bound (an 8 MiB all-reduce for ~1 ms of math a step)."""
    cell = TUTORIAL.format(port=cases.free_port())
    namespace = {"__name__": "__main__"}
    report = jupyter_perf.profile(cell, namespace)
    assert report.bottleneck == "communication", [f.summary for f in report.findings]
    return cell, namespace, report


def applied_and_rerun(notebook, opt_id, cell, namespace, report, function, **params):
    """Apply through the fake notebook, re-run, check the live swap and the exact undo; the Change and Comparison."""
    target = notebook.add("c1", cell)
    old = namespace[function]
    change = jupyter_perf.apply(opt_id, namespace, target, report, **params)
    assert change.status == "applied", change.summary()
    assert_parses(change.new_source) and notebook.cells["c1"] == change.new_source
    assert namespace[function].__code__.co_filename == f"<jupyter-perf: {opt_id} {function}>"  # the live swap
    assert get(opt_id).preview(namespace, change.new_source, report, **params).status == "already applied"
    comparison = remeasure(change, namespace, target, report, run)
    assert comparison is not None and comparison.after.error is None, comparison and comparison.after.error
    assert len(comparison.after.ranks) == 2 and change.remeasured is not None
    change.undo()
    assert notebook.cells["c1"] == cell and namespace[function] is old  # byte for byte, and the old function
    return change, comparison


def test_bucket_cap_sets_the_measured_bucket_size_on_the_ddp_call(notebook, tutorial_run):
    cell, namespace, report = tutorial_run
    rec = next(r for r in report.recommendations if r.optimization == "distributed.bucket_cap")
    # net1's weight is 8 of the 8.1 MiB of gradients: no cap splits one parameter, so only the bucket views
    assert rec.params == {"gradient_as_bucket_view": True}
    change, comparison = applied_and_rerun(notebook, "distributed.bucket_cap", cell, namespace, report, "demo_basic")
    kept = "  # ünïcode ✓, and a comment to keep"
    assert f"+    ddp_model = DDP(model, gradient_as_bucket_view=True){kept}" in change.diff
    after = comparison.after.ranks[0].signals["distributed"]["ddp"]
    assert after["models"][0]["gradient_as_bucket_view"] is True


def test_comm_hook_registers_fp16_compression_after_the_ddp_call_guarded_by_measured_gradients(notebook, tutorial_run):
    cell, namespace, report = tutorial_run
    change, comparison = applied_and_rerun(notebook, "distributed.comm_hook", cell, namespace, report, "demo_basic")
    assert "+    ddp_model.register_comm_hook(None, default_hooks.fp16_compress_hook)" in change.diff
    assert change.numerics.kind == "comm_fp16" and change.numerics.passed and change.numerics.relative_error < 1e-3
    assert comparison.after.ranks[0].signals["distributed"]["ddp"]["models"][0]["comm_hook"] == "fp16_compress_hook"


def test_comm_hook_is_reverted_where_the_gradients_overflow_float16(tutorial_run):
    cell, namespace, report = tutorial_run
    overflowing = Report.from_dict(report.to_dict())
    sample = overflowing.signals["distributed"]["ddp"]["compression_error"]
    sample.update(float16_nonfinite=12)
    old = namespace["demo_basic"]
    change = jupyter_perf.apply("distributed.comm_hook", namespace, cell, overflowing)
    assert change.status == "reverted" and "overflow float16" in change.description
    assert namespace["demo_basic"] is old


def test_no_sync_accumulates_over_batches_in_a_loop_that_steps_every_batch(notebook, tutorial_run):
    cell, namespace, report = tutorial_run
    change, comparison = applied_and_rerun(notebook, "distributed.no_sync", cell, namespace, report, "demo_basic")
    assert "+        with (ddp_model.no_sync() if (micro + 1) % 4 else contextlib.nullcontext()):" in change.diff
    assert "+            (loss_fn(outputs, labels) / 4).backward()" in change.diff
    assert any("effective batch is 4× larger" in w for w in change.warnings)
    # one all-reduce per 4 batches: per sample, 4x fewer
    before = report.ranks[0].signals["distributed"]["ddp"]
    after = comparison.after.ranks[0].signals["distributed"]["ddp"]
    assert after["buckets"] / comparison.after.ranks[0].samples < before["buckets"] / report.ranks[0].samples / 3


def test_no_sync_composed_with_grad_accumulation_cuts_all_reduces_per_step_and_gains(notebook):
    """memory.grad_accumulation (k=4) makes DDP all-reduce 4 times a step; no_sync brings it back to 1."""
    cell = cases.SETUP + "\n\n" + cases.launch("communication", 8)
    namespace = {"__name__": "__main__"}
    plain = jupyter_perf.profile(cell, namespace)
    accumulated, comparison = apply_and_rerun("memory.grad_accumulation", namespace, cell, plain, steps=4)
    cell4, report4 = accumulated.new_source, comparison.after
    assert [r.signals["distributed"]["ddp"]["buckets_per_step"] for r in report4.ranks] == [4, 4]
    rec = next(r for r in report4.recommendations if r.optimization == "distributed.no_sync")
    assert rec.params == {"steps": 4} and rec.expected_speedup > 1
    change, after = applied_and_rerun(notebook, "distributed.no_sync", cell4, namespace, report4, "train")
    assert "+            with (model.no_sync() if micro < 3 else contextlib.nullcontext()):" in change.diff
    assert not change.warnings  # the same gradients, the same steps
    assert [r.signals["distributed"]["ddp"]["buckets_per_step"] for r in after.after.ranks] == [1, 1]
    assert after.speedup > 1.2, after.speedup  # three 16 MiB all-reduces a step fewer


def test_ddp_turns_a_single_process_training_cell_into_launched_ranks(notebook):
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent("""
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(TensorDataset(torch.randn(1024, 64), torch.randint(0, 10, (1024,))), batch_size=64)
    """), namespace)
    cell = ("import torch.nn.functional as F\n\nfor x, y in loader:\n    loss = F.cross_entropy(model(x), y)\n"
            "    opt.zero_grad()\n    loss.backward()\n    opt.step()\n")
    report = jupyter_perf.profile(cell, namespace)
    target = notebook.add("c1", cell)
    change, comparison = apply_and_rerun("distributed.ddp", namespace, target, report, port=cases.free_port())
    assert change.status == "applied" and notebook.cells["c1"] == change.new_source
    assert "def ddp_worker(rank, world_size, model=model, loader=loader):" in change.new_source
    assert "DistributedSampler(loader.dataset, world_size, rank)" in change.new_source
    assert [r.steps for r in comparison.after.ranks] == [8, 8]  # 16 batches, shared by 2 ranks
    change.undo()
    assert notebook.cells["c1"] == cell


def test_the_rewrites_find_accelerates_ddp_arguments(notebook, no_accelerator_yet):
    """An accelerate script: the DDP arguments go into a DistributedDataParallelKwargs handler; one re-run proves
    the rewritten function launches."""
    pytest.importorskip("accelerate")
    cell = ACCELERATE.format(port=cases.free_port())
    namespace = {"__name__": "__main__"}
    exec(cell.rsplit("\n\n\n", 1)[0], namespace)  # the function, not its launch
    bucket = get("distributed.bucket_cap").preview(namespace, cell, None, bucket_cap_mb=1)
    assert ("+    accelerator = Accelerator(cpu=True, kwargs_handlers=[DistributedDataParallelKwargs(bucket_cap_mb=1, "
            "gradient_as_bucket_view=True)])") in bucket.diff
    assert "+    from accelerate.utils import DistributedDataParallelKwargs" in bucket.diff
    hook = get("distributed.comm_hook").preview(namespace, bucket.new_source, None)
    assert "comm_hook=DDPCommunicationHookType.FP16" in hook.new_source
    no_sync = get("distributed.no_sync").preview(namespace, cell, None)  # accelerate's own accumulation instead
    assert not no_sync.edits and "accelerator.accumulate(model)" in no_sync.snippet
    report = jupyter_perf.profile(cell, namespace)
    change, comparison = applied_and_rerun(notebook, "distributed.bucket_cap", cell, namespace, report,
                                           "training_function", bucket_cap_mb=1)
    before = report.ranks[0].signals["distributed"]["ddp"]
    after = comparison.after.ranks[0].signals["distributed"]["ddp"]
    assert after["models"][0]["bucket_cap_bytes"] == 2**20  # four 1 MiB layers: one bucket each, not one in all
    assert after["buckets_per_backward"] >= 4 > before["buckets_per_backward"]  # DDP: a 1 MiB first bucket, then 25

