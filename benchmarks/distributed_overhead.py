"""Cost of profiling a distributed run: a 2-rank gloo DDP loop profiled vs plain, and merging 1,000 rank Reports.

1. The loop: ``mp.start_processes(train, ..., start_method="fork")``, 2 CPU ranks over gloo, DDP on an MLP,
   run plain and under ``jupyter_perf.profile`` in interleaved rounds (plain, profiled, plain, ...), as
   overhead.py does. Rank 0 times its own training loop (first step to last: what the probes and the
   sampler slow down): wall time, and the CPU time of its training thread and of its whole process, which
   other tenants of a shared machine disturb less; the whole launch's wall time (process start, rendezvous,
   each rank's Report built and sent, the merge) is printed beside them. Ratios: of the fastest rounds, of
   the medians, and the median of each profiled round against the plain rounds on either side
   (pairing.py). Goal (issue 15): ≤ 1.03 for the loop.
2. The merge: 1,000 rank Reports made from one real rank Report of (1) (rank, host and phases varied, one
   planted straggler), merged in memory (``jupyter_perf.distributed.merge``: merge and diagnosis), and written
   as rank files and loaded (``jupyter_perf.distributed.load``: JSON, merge, diagnosis). Goal: ≤ 2 s.

    python benchmarks/distributed_overhead.py [--rounds 7] [--steps 200] [--batch 256] [--ranks 1000]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from pairing import bracketed_ratio  # noqa: E402

import jupyter_perf  # noqa: E402
import jupyter_perf.distributed  # noqa: E402
from jupyter_perf.report import Report  # noqa: E402

SETUP = '''
import time, torch, torch.distributed as dist, torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


BATCH = {batch}


def train(rank, world_size, port, steps, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batches = [(torch.randn(BATCH, 256), torch.randint(0, 10, (BATCH,))) for _ in range(8)]
    dist.barrier()
    start, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
    for step in range(steps):
        x, y = batches[step % 8]
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dist.barrier()
    if rank == 0:
        with open(out, "w") as f:
            f.write(f"{time.perf_counter() - start} {time.thread_time() - thread} {time.process_time() - process}")
    dist.destroy_process_group()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: What each launch measures: rank 0's loop (wall, its training thread's CPU, its process's CPU: sampler,
#: live summaries and gloo's threads included), and the cell's wall time.
MEASURES = (("loop wall", "the ranks' training loop, wall"), ("loop thread CPU", "  its training thread, CPU"),
            ("loop process CPU", "  its whole process, CPU"), ("launch wall", "the whole launch (cell), wall"))


def launch(namespace: dict, steps: int, out: str, profiled: bool) -> tuple[dict[str, float], Report | None]:
    """(each of ``MEASURES`` in seconds, the Report if profiled)."""
    cell = f'mp.start_processes(train, args=(2, {free_port()}, {steps}, {out!r}), nprocs=2, start_method="fork")'
    gc.collect()
    t = time.perf_counter()
    report = None
    if profiled:
        report = jupyter_perf.profile(cell, namespace)
    else:
        exec(cell, namespace)
    wall = time.perf_counter() - t
    if report is not None and report.error:
        raise RuntimeError(f"the profiled launch failed: {report.error}")
    loop, thread, process = (float(v) for v in Path(out).read_text().split())
    return {"loop wall": loop, "loop thread CPU": thread, "loop process CPU": process, "launch wall": wall}, report


def loop_overhead(rounds: int, steps: int, batch: int) -> Report:
    namespace: dict = {"__name__": "__main__"}
    exec(SETUP.replace("{batch}", str(batch)), namespace)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "loop_s")
        launch(namespace, steps, out, profiled=False)  # warm-up: first fork, first gloo rendezvous
        times: dict[tuple[str, str], list[float]] = {
            (kind, key): [] for kind in ("plain", "profiled") for key, _label in MEASURES}
        report: Report | None = None
        for _ in range(rounds):
            for kind in ("plain", "profiled"):
                measured, got = launch(namespace, steps, out, profiled=kind == "profiled")
                for key, seconds in measured.items():
                    times[kind, key].append(seconds)
                report = got or report
    step_ms = statistics.median(times["plain", "loop thread CPU"]) / steps * 1e3
    print(f"\n2 gloo ranks, DDP MLP (0.4 M parameters), {steps} steps of batch {batch} ({step_ms:.1f} ms of CPU "
          f"a step), {rounds} interleaved rounds")
    print(f"{'measured':32} {'plain s':>8} {'spread':>7} {'profiled':>10} {'(median)':>9} {'(paired)':>9}")
    for key, label in MEASURES:
        plain, profiled = times["plain", key], times["profiled", key]
        best, median = min(plain), statistics.median(plain)
        print(f"{label:32} {best:8.3f} {max(plain) / best:6.2f}× {min(profiled) / best:9.3f}× "
              f"{statistics.median(profiled) / median:8.3f}× {bracketed_ratio(profiled, plain):8.3f}×")
    cost = (statistics.median(times["profiled", "loop thread CPU"])
            - statistics.median(times["plain", "loop thread CPU"]))
    print(f"the profiler's cost on the training thread: {cost / steps * 1e6:.0f} µs a step (medians)")
    loop_ratio = min(times["profiled", "loop wall"]) / min(times["plain", "loop wall"])
    print("ratios of the fastest rounds (medians, and each profiled round against the plain ones on either side, in "
          "brackets); spread: the slowest plain round / the fastest")
    verdict = "met" if loop_ratio <= 1.03 else "NOT met"
    print(f"loop wall ratio of the fastest rounds {loop_ratio:.3f} (goal ≤ 1.03): {verdict}")
    assert report is not None  # rounds ≥ 1, each with a profiled launch
    return report


def synthetic(template: Report, count: int, slow: int) -> list[Report]:
    """``count`` rank Reports shaped like ``template``'s first rank: rank and host set, phases jittered ±5%,
    rank ``slow`` 60% slower in its forward and backward, the others waiting that much longer in communication."""
    base = template.ranks[0].to_dict()
    rng = random.Random(0)
    extra = 0.6 * (base["phases"]["forward"] + base["phases"]["backward"])
    ranks = []
    for rank in range(count):
        data = dict(base)
        phases = {k: v * rng.uniform(0.95, 1.05) for k, v in base["phases"].items()}
        if rank == slow:
            phases["forward"] *= 1.6
            phases["backward"] *= 1.6
        else:
            phases["communication"] += extra
        data["phases"] = phases
        data["step_time_total"] = base["steps"] * sum(phases.values())
        data["signals"] = {**base["signals"], "distributed": {**base["signals"]["distributed"], "rank": rank,
                                                              "world_size": count, "host": f"node{rank // 8:03d}"}}
        ranks.append(Report.from_dict(data))
    return ranks


def merge_time(template: Report, count: int) -> None:
    ranks = synthetic(template, count, slow=count // 3)
    t = time.perf_counter()
    merged = jupyter_perf.distributed.merge(ranks)
    in_memory = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        for report in ranks:
            Path(tmp, f"rank-{report.signals['distributed']['rank']:05d}.json").write_text(report.to_json())
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        t = time.perf_counter()
        loaded = jupyter_perf.distributed.load(tmp)
        from_files = time.perf_counter() - t
    straggler = merged.finding("straggler")
    print(f"\nmerging {count} rank Reports (each like a real rank's: {size / count / 1024:.0f} KiB of JSON)")
    print(f"{'':32} {'seconds':>8}")
    print(f"{'merge(ranks) (merge + diagnose)':32} {in_memory:8.3f}")
    print(f"{'load(dir) (JSON + merge + diagnose)':32} {from_files:8.3f}")
    print(f"straggler found: rank {straggler and straggler.evidence['rank']} (planted {count // 3}); "
          f"{len(loaded.ranks)} ranks loaded")
    worst = max(in_memory, from_files)
    print(f"worst {worst:.3f} s (goal ≤ 2 s): {'met' if worst <= 2 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--ranks", type=int, default=1000)
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    report = loop_overhead(args.rounds, args.steps, args.batch)
    merge_time(report, args.ranks)


if __name__ == "__main__":
    main()
