"""Distributed profiling on real GPUs: NCCL with world size 1 in this process, and 2 ranks where 2 GPUs exist.

Run through ``python benchmarks/gpu_check.py [--quick]`` (issue 15's GPU check). On a CPU the same paths
are tested with gloo (tests/test_distributed.py); here what only a GPU has:

* NCCL, world size 1, in this process: a DDP conv net trains on the GPU and all-reduces a metric each step.
  The collective and DDP's backward tail are timed with CUDA events (``timing == 'cuda_events'``, no
  synchronize added), the all-reduce is counted once a step, every backward is an all-reduce round, the
  phases still sum to each step's time, and profiled/plain wall time of the loop, interleaved (goal ≤ 1.03);
* 2 ranks (only with 2 GPUs or more), launched with ``mp.spawn`` on ``train`` below (importable, so it
  pickles; ``fork`` cannot be used after the other checks initialised CUDA here): both Reports arrive with
  the loop's steps, over NCCL, device-timed.

``distributed_checks(quick)`` returns rows ``(name, status, detail)`` like ``gpu_check.run_checks``.
"""

from __future__ import annotations

import socket
import statistics

from gpu_check import check, guarded, timed_rounds

LOOP = """
for x, y in batches:
    loss = F.cross_entropy(ddp(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    seen = loss.detach().clone()
    dist.all_reduce(seen)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conv_net():
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Conv2d(64, 128, 3, padding=1, stride=2), nn.BatchNorm2d(128), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def train(rank: int, world_size: int, port: int, steps: int) -> None:
    """One rank of the 2-GPU check: the DDP conv net on GPU ``rank`` over NCCL."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F  # noqa: N812 - torch's own convention
    from torch.nn.parallel import DistributedDataParallel

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    ddp = DistributedDataParallel(conv_net().cuda(), device_ids=[rank])
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    batches = [(torch.randn(64, 3, 96, 96, device="cuda"), torch.randint(0, 10, (64,), device="cuda"))
               for _ in range(steps)]
    for x, y in batches:
        loss = F.cross_entropy(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dist.destroy_process_group()


def world_of_one(rows: list, steps: int, rounds: int) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F  # noqa: N812 - torch's own convention
    from torch.nn.parallel import DistributedDataParallel

    import jupyter_perf

    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        model = DistributedDataParallel(conv_net().cuda(), device_ids=[0])
        ns: dict = {"torch": torch, "F": F, "dist": dist, "ddp": model}
        ns["opt"] = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        ns["batches"] = [(torch.randn(128, 3, 96, 96, device="cuda"), torch.randint(0, 10, (128,), device="cuda"))
                         for _ in range(steps)]
        code = compile(LOOP, "<plain>", "exec")
        exec(code, ns)  # warm-up: cuDNN autotuning, NCCL's first communicator
        torch.cuda.synchronize()
        report = jupyter_perf.profile(LOOP, ns)
        facts = report.signals.get("distributed") or {}
        ops, ddp = facts.get("collectives") or {}, facts.get("ddp") or {}
        sums = abs(sum(report.phases.values()) - report.step_time) / report.step_time if report.step_time else 1
        check(rows, "NCCL world size 1: collectives timed",
              facts.get("backend") == "nccl" and facts.get("timing") == "cuda_events"
              and ops.get("all_reduce", {}).get("calls_per_step") == 1 and ddp.get("backwards") == report.steps
              and sums < 1e-6,
              f"backend={facts.get('backend')}, timing={facts.get('timing')}, all_reduce/step="
              f"{ops.get('all_reduce', {}).get('calls_per_step')}, rounds={ddp.get('backwards')} of {report.steps} "
              f"steps, buckets/round={ddp.get('buckets_per_backward')}, overlap={ddp.get('overlap')}, phases ms "
              + ", ".join(f"{k}={v * 1e3:.2f}" for k, v in report.phases.items()))
        plain, profiled = timed_rounds(code, LOOP, ns, rounds)
        ratio = statistics.median(profiled) / statistics.median(plain)
        check(rows, "NCCL world size 1: overhead", ratio <= 1.03,
              f"×{ratio:.3f} (goal ≤ 1.03), plain {statistics.median(plain):.3f}s for {steps} steps, {rounds} rounds")
    finally:
        dist.destroy_process_group()


def two_ranks(rows: list, steps: int) -> None:
    import torch.multiprocessing as mp

    import jupyter_perf

    namespace = {"mp": mp, "train": train}
    report = jupyter_perf.profile(f"mp.spawn(train, args=(2, {free_port()}, {steps}), nprocs=2)", namespace)
    facts = [r.signals.get("distributed") or {} for r in report.ranks]
    check(rows, "NCCL 2 ranks (mp.spawn)",
          report.error is None and [r.steps for r in report.ranks] == [steps, steps]
          and {f.get("backend") for f in facts} == {"nccl"} and {f.get("timing") for f in facts} == {"cuda_events"},
          f"error={report.error and report.error['type']}, steps={[r.steps for r in report.ranks]}, "
          f"bottleneck={report.bottleneck}, communication ms="
          f"{[round(r.phases.get('communication', 0) * 1e3, 2) for r in report.ranks]}")


def distributed_checks(quick: bool = False) -> list[tuple[str, str, str]]:
    """The rows; none without CUDA or NCCL."""
    import torch
    import torch.distributed as dist

    if not torch.cuda.is_available() or not dist.is_nccl_available():
        return []
    rows: list[tuple[str, str, str]] = []
    steps, rounds = (20, 3) if quick else (60, 7)
    guarded(rows, "NCCL world size 1", world_of_one, steps, rounds)
    if torch.cuda.device_count() >= 2:
        guarded(rows, "NCCL 2 ranks (mp.spawn)", two_ranks, steps)
    return rows
