"""Everything GPU-specific, checked and timed on a real GPU in one call.

    python benchmarks/gpu_check.py            # prints a table; exit 1 if a check fails
    python benchmarks/gpu_check.py --quick    # fewer steps/rounds, for a short device slot

Checks (issue 2): NVML columns carry real values; phases are timed with CUDA
events and the steps' device time matches the loop's wall time within 5%; an
fp32 conv net is `compute` with precision.amp / layout.channels_last
recommended; a slow loader is `input_pipeline`; large pageable copies are
`host_to_device`; `.item()` every step is `host_sync`; and the profiled/plain
wall-time ratio on a conv-net training loop (goal ≤ 1.01).

Then the optimizations' GPU measurements (benchmarks/gpu_optimizations.py: AMP bf16,
TF32, channels_last, CUDA graphs, pin_memory, with the numerics guard's errors),
the live dashboard run headless by nbclient, its GPU gauges carrying NVML
values (benchmarks/gpu_dashboard.py), and distributed profiling over NCCL: world
size 1 in this process, 2 ranks where the machine has 2 GPUs (benchmarks/gpu_distributed.py).
A check that raises becomes a FAIL row with the exception; the others still run.

Without a GPU it says so and exits 0: CI never has one. tests/test_gpu.py runs
the same checks under pytest where a GPU exists.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback

import jupyter_perf

COMMON = """
import time, torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
torch.manual_seed(0)
device = torch.device("cuda")
"""

CONV_NET = """
model = nn.Sequential(
    nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
    nn.Conv2d(64, 128, 3, padding=1, stride=2), nn.BatchNorm2d(128), nn.ReLU(),
    nn.Conv2d(128, 256, 3, padding=1, stride=2), nn.BatchNorm2d(256), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
"""

SCENARIOS = {
    "compute": (
        COMMON + CONV_NET + "batches = [(torch.randn(128, 3, 96, 96, device=device), "
        "torch.randint(0, 10, (128,), device=device)) for _ in range({steps})]\n",
        "for x, y in batches:\n    loss = F.cross_entropy(model(x), y)\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n",
    ),
    "input_pipeline": (
        COMMON + CONV_NET + """
class Slow(Dataset):
    def __len__(self): return {steps} * 16
    def __getitem__(self, i):
        time.sleep(0.002)
        return torch.randn(3, 32, 32), i % 10
loader = DataLoader(Slow(), batch_size=16)
""",
        "for x, y in loader:\n    x, y = x.to(device), y.to(device)\n    loss = F.cross_entropy(model(x), y)\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n",
    ),
    "host_to_device": (
        COMMON + "model = nn.Linear(224, 10).to(device)\n"
        "host_batches = [torch.randn(64, 3, 224, 224) for _ in range(8)]  # 38 MB each, pageable\n",
        "with torch.no_grad():\n    for i in range({steps}):\n        x = host_batches[i % 8].to(device)\n"
        "        model(x).sum()\n",
    ),
    # A sync each step where the host also has work of its own (logging, metrics, CPU-side
    # augmentation: 16 ms here) that would otherwise overlap the GPU's ≈ 10 ms of fp32 matmuls.
    "host_sync": (
        COMMON + "model = nn.Sequential(*[m for _ in range(24) for m in (nn.Linear(1024, 1024), nn.ReLU())])"
        ".to(device)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=1e-3)\nx = torch.randn(4096, 1024, device=device)\n",
        "losses = []\nfor _ in range({steps}):\n    loss = model(x).pow(2).mean()\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n    losses.append(loss.item())\n    time.sleep(0.016)\n",
    ),
}


def scenario(name: str, steps: int) -> tuple[dict, str]:
    setup, cell = SCENARIOS[name]
    namespace: dict = {"__name__": "__main__"}
    exec(setup.replace("{steps}", str(steps)), namespace)
    return namespace, cell.replace("{steps}", str(steps))


def check(rows: list, name: str, ok: bool, detail: str) -> None:
    rows.append((name, "ok" if ok else "FAIL", detail))


def guarded(rows: list, name: str, fn, *args) -> None:
    """Run one check; an exception becomes its FAIL row, so one broken path never hides the others."""
    try:
        fn(rows, *args)
    except Exception as exc:  # noqa: BLE001 - the row carries what broke
        detail = "".join(traceback.format_exception_only(exc)).strip()
        check(rows, name, False, f"{detail[:400]} (at {traceback.extract_tb(exc.__traceback__)[-1]})")


def profiled_scenario(name: str, steps: int):
    """The scenario warmed up (cuDNN autotuning, first launches), then profiled once."""
    import torch

    ns, cell = scenario(name, steps)
    exec(cell, ns)
    torch.cuda.synchronize()
    return jupyter_perf.profile(cell, ns)


def check_compute(rows: list, steps: int) -> None:
    import torch

    report = profiled_scenario("compute", steps)
    gpu = [c for c in report.timeline if c.startswith("gpu0_")]
    util = [v for v in report.timeline.get("gpu0_util", []) if v is not None]
    check(rows, "NVML columns", bool(util) and max(util) > 0 and report.peaks.get("gpu0_mem_used_bytes", 0) > 0,
          f"{len(gpu)} gpu0 columns, util max {max(util, default=0):.0f}%, "
          f"mem {report.peaks.get('gpu0_mem_used_bytes', 0) / 2**30:.2f} GiB on {torch.cuda.get_device_name()}")
    drift = abs(report.step_time_total - report.wall_time) / report.wall_time
    check(rows, "CUDA-event phases", report.signals.get("gpu_timing") == "cuda_events" and drift <= 0.05,
          f"timing={report.signals.get('gpu_timing')}, steps' device time {report.step_time_total:.3f}s vs wall "
          f"{report.wall_time:.3f}s ({drift:.1%}); phases ms " +
          ", ".join(f"{k}={v * 1e3:.2f}" for k, v in report.phases.items()))
    recommended = report.recommended()
    check(rows, "fp32 conv net → compute", report.bottleneck == "compute"
          and {"precision.amp", "layout.channels_last"} <= set(recommended),
          f"bottleneck={report.bottleneck}, recommended={recommended}")


def check_planted(rows: list, name: str, steps: int) -> None:
    report = profiled_scenario(name, steps)
    main = report.finding(report.bottleneck)
    check(rows, f"planted {name}", report.bottleneck == name,
          f"bottleneck={report.bottleneck}; {main.summary if main else ''}")


def timed_rounds(code, source: str, ns: dict, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds of ``code`` run plain and of ``source`` profiled, alternating, each ended by a device synchronize."""
    import torch

    plain, profiled = [], []
    for _ in range(rounds):
        torch.cuda.synchronize()
        t = time.perf_counter()
        exec(code, ns)
        torch.cuda.synchronize()
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        jupyter_perf.profile(source, ns)
        torch.cuda.synchronize()
        profiled.append(time.perf_counter() - t)
    return plain, profiled


def check_overhead(rows: list, steps: int, rounds: int) -> None:
    """Whole profile() calls (sampler start, probes, report) against the plain loop, interleaved."""

    ns, cell = scenario("compute", steps)
    code = compile(cell, "<plain>", "exec")
    exec(code, ns)
    jupyter_perf.profile(cell, ns)
    plain, profiled = timed_rounds(code, cell, ns, rounds)
    ratio = statistics.median(profiled) / statistics.median(plain)
    paired = statistics.median(p / q for p, q in zip(profiled, plain))
    check(rows, "overhead profiled/plain", ratio <= 1.01,
          f"×{ratio:.3f} (paired ×{paired:.3f}; goal ≤ 1.01), plain {statistics.median(plain):.3f}s "
          f"for {steps} steps, {rounds} rounds")


def run_checks(quick: bool = False) -> list[tuple[str, str, str]]:
    steps = 30 if quick else 80
    rows: list[tuple[str, str, str]] = []
    guarded(rows, "compute checks", check_compute, steps)
    for name in ("input_pipeline", "host_to_device", "host_sync"):
        guarded(rows, f"planted {name}", check_planted, name, steps)
    guarded(rows, "overhead profiled/plain", check_overhead, 200 if quick else 400, 5 if quick else 9)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check (CI never has one; run this on a lent GPU)")
        return 0
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    from gpu_dashboard import dashboard_checks  # issue 3's dashboard, headless
    from gpu_distributed import distributed_checks  # issue 15's NCCL paths: world size 1, 2 ranks with 2 GPUs
    from gpu_optimizations import optimization_checks  # issue 4's fixes, measured in the same call

    rows = run_checks(quick=args.quick)
    guarded(rows, "optimizations", lambda r: r.extend(optimization_checks(quick=args.quick)))
    guarded(rows, "dashboard", lambda r: r.extend(dashboard_checks(quick=args.quick)))
    guarded(rows, "distributed", lambda r: r.extend(distributed_checks(quick=args.quick)))
    width = max(len(r[0]) for r in rows)
    for name, status, detail in rows:
        print(f"{name:{width}}  {status:4}  {detail}")
    return 0 if all(status == "ok" for _, status, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
