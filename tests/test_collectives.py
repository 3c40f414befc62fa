"""Collectives and DDP buckets timed in one process: a real gloo process group of world size 1 in this process.

What a rank's Session measures, checked without launching anything: every collective the code calls (count,
bytes, time; nested ones counted once), asynchronous ones and their waits, DDP's all-reduce rounds and the
backward time they block (steps under no_sync() count none; a comm hook the user registers is named), and
everything put back after the run.
"""

import distributed_cases as cases
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import jupyter_perf


@pytest.fixture(scope="module")
def group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{cases.free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def namespace():
    ns = {"__name__": "__main__", "torch": torch, "nn": nn, "dist": dist, "DDP": DistributedDataParallel}
    exec("torch.manual_seed(0)\nnet = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))\n"
         "x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))\n", ns)
    return ns


LOOP = """
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(6):
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    {collectives}
    optimizer.step()
"""


def test_collectives_are_counted_with_their_bytes_and_block_the_step(group):
    ns = namespace()
    ns["model"] = ns["net"]
    originals = dist.all_reduce, dist.distributed_c10d.all_gather, dist.Work.wait, dist.init_process_group
    report = jupyter_perf.profile(LOOP.format(collectives="""dist.all_reduce(loss.detach())
    gathered = [torch.empty(8, 4)]
    dist.all_gather(gathered, model(x).detach())
    dist.broadcast(x, src=0)
    dist.barrier()
    names = [None]
    dist.all_gather_object(names, "rank")
    dist.all_reduce(torch.ones(100), async_op=True).wait()"""), ns)
    ops = report.signals["distributed"]["collectives"]
    assert {op: c["calls_per_step"] for op, c in ops.items()} == {
        "all_reduce": 2, "all_gather": 1, "broadcast": 1, "barrier": 1, "all_gather_object": 1, "wait": 1}
    assert ops["all_reduce"]["bytes"] == 6 * (4 + 400)  # a float32 loss and a 100-float tensor, per step
    assert ops["all_gather"]["bytes_per_step"] == 8 * 4 * 4 and ops["broadcast"]["bytes_per_step"] == 8 * 16 * 4
    assert ops["all_gather_object"]["bytes"] > 0  # the tensors its inner all_gathers moved, counted once
    assert all(c["seconds"] > 0 for c in ops.values())
    assert report.signals["distributed"]["world_size"] == 1 and report.signals["distributed"]["backend"] == "gloo"
    assert report.phases["communication"] > 0
    assert sum(report.phases.values()) == pytest.approx(report.step_time, rel=1e-6)
    assert (dist.all_reduce, dist.distributed_c10d.all_gather, dist.Work.wait, dist.init_process_group) == originals


def test_ddp_all_reduce_is_measured_without_a_hook_of_ours_and_nothing_stays(group):
    ns = namespace()
    ns["model"] = DistributedDataParallel(ns["net"])  # built before the run: watched from its start
    for _run in range(2):  # twice as many runs leave no more behind
        report = jupyter_perf.profile(LOOP.format(collectives=""), ns)
        ddp = report.signals["distributed"]["ddp"]
        assert ddp["backwards"] == 6 and ddp["buckets_per_backward"] >= 1
        assert ddp["bytes_per_step"] == 4 * sum(p.numel() for p in ns["net"].parameters())
        assert ddp["models"][0]["comm_hook"] is None and ddp["compression_error"]["float16"] < 1e-3
        assert report.phases["communication"] > 0  # the tail of backward after the last gradient
        assert sum(report.phases.values()) == pytest.approx(report.step_time, rel=1e-6)
    assert ns["model"]._comm_hooks == []  # DDP's own all-reduce, untouched
    assert all(not p._post_accumulate_grad_hooks for p in ns["net"].parameters())
    assert DistributedDataParallel.__init__.__module__ == "torch.nn.parallel.distributed"


def test_steps_under_no_sync_all_reduce_nothing_and_a_users_hook_is_named(group):
    ns = namespace()
    exec("calls = []\n"
         "def my_hook(state, bucket):\n"
         "    calls.append(bucket.index())\n"
         "    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0])\n", ns)
    cell = ("model = DDP(net)\nmodel.register_comm_hook(None, my_hook)\n"
            + LOOP.format(collectives="").replace("    loss = nn", "    with model.no_sync():\n        loss = nn", 1)
            .replace("    loss.backward()", "    with model.no_sync():\n        loss.backward()")
            + "loss = nn.functional.cross_entropy(model(x), y)\nloss.backward()\n")  # one synchronised backward
    report = jupyter_perf.profile(cell, ns)
    assert report.error is None, report.error
    ddp = report.signals["distributed"]["ddp"]
    assert ddp["backwards"] == len(ns["calls"]) == 1 and ddp["models"][0]["comm_hook"] == "my_hook"
    # the hook's own all_reduce is asynchronous: counted, not a blocking interval of its own
    assert report.signals["distributed"]["collectives"]["all_reduce"]["calls"] == 1
