"""The model-level optimizations on a real GPU: what each gains when the tool applies it, and the guard's error.

Run through ``python benchmarks/gpu_check.py [--quick]``, which prints these rows after its own, so one
call on a lent GPU checks and times everything GPU-specific.

Each check builds a workload on the GPU, times its cell (median of repeats,
CUDA-synchronised, after a warm-up run that also absorbs cuDNN autotuning and
compilation), applies the optimizations through ``apply_to_cell`` as
``--apply`` would (the guard runs where numerics change), times the rewritten
cell the same way, then undoes everything before the next check. A row fails
when an optimization was refused or reverted, the rewritten cell raised, or
the speedup fell short of its goal. pin_memory has no goal: on an in-memory
dataset with 4 workers it lost (×0.71 on an H200, benchmarks/results/gpu_check_h200.txt); in the main
process, as here, it gained ×1.25–1.45 on an H200; the row says what it did.

``optimization_checks(quick)`` returns rows ``(name, status, detail)`` like
``gpu_check.run_checks``. Without CUDA it returns none.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

from gpu_check import COMMON, CONV_NET, check

from jupyter_perf.optimizations import apply_to_cell


@dataclass(frozen=True)
class Workload:
    """A notebook in miniature: setup (``{steps}`` is replaced), the cell timed, what is applied, the goal."""

    name: str
    setup: str
    cell: str
    optimizations: tuple[str, ...]
    goal: float | None


_CONV = COMMON + CONV_NET + """
batches = [(torch.randn(128, 3, 96, 96, device=device), torch.randint(0, 10, (128,), device=device))
           for _ in range({steps})]
"""
_CONV_TRAIN = ("for x, y in batches:\n    loss = F.cross_entropy(model(x), y)\n"
               "    opt.zero_grad(); loss.backward(); opt.step()\n")

_MLP = COMMON + """
model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(4096, 4096), nn.ReLU())]).to(device)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.randn(512, 4096, device=device)
"""
_MLP_TRAIN = ("for _ in range({steps}):\n    loss = model(x).square().mean()\n"
              "    opt.zero_grad(); loss.backward(); opt.step()\n")

WORKLOADS = (
    # fp32 matmuls on tensor cores in bfloat16: the largest single gain on Ampere and newer.
    Workload("precision.amp (bf16), 4096-wide MLP", _MLP, _MLP_TRAIN, ("precision.amp",), 1.5),
    # float32 matmuls in TF32: large Linear layers are matmul-bound.
    Workload("precision.tf32, 4096-wide MLP", _MLP, _MLP_TRAIN, ("precision.tf32",), 1.5),
    # bf16 convolutions in NCHW gained nothing on an H200 (×0.99: cuDNN transposes to NHWC and back);
    # with channels_last they gain ×2. No goal alone: the row shows why the two are recommended together.
    Workload("precision.amp alone, conv net (NCHW)", _CONV, _CONV_TRAIN, ("precision.amp",), None),
    # NHWC alone may not help fp32 convolutions (no goal); its gain comes with AMP's tensor cores, so both rows.
    Workload("layout.channels_last, conv net", _CONV, _CONV_TRAIN, ("layout.channels_last",), None),
    Workload("amp + channels_last, conv net", _CONV, _CONV_TRAIN, ("precision.amp", "layout.channels_last"), 1.3),
    # 24 small bf16 layers at batch 16: launch-bound, one graph replay instead of 48 launches. (In fp32 the
    # same layers are not: an H200 spends ≈ 15 µs on each tiny fp32 GEMM, about what eager launching costs.)
    Workload("compile.cuda_graphs, launch-bound MLP", COMMON + """
model = nn.Sequential(*[m for _ in range(24)
                        for m in (nn.Linear(256, 256), nn.ReLU())]).to(device, torch.bfloat16).eval()
x = torch.randn(16, 256, device=device, dtype=torch.bfloat16)
""", "with torch.no_grad():\n    for _ in range({steps}):\n        out = model(x)\n", ("compile.cuda_graphs",), 1.3),
    # Pageable 38 MB batches copied each step: pinned copies are faster but pinning costs a host copy.
    Workload("dataloader.pin_memory, image batches", COMMON + """
model = nn.Sequential(nn.Conv2d(3, 16, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(16, 10)).to(device)
data = TensorDataset(torch.randn(64 * {steps}, 3, 224, 224), torch.randint(0, 10, (64 * {steps},)))
loader = DataLoader(data, batch_size=64)
""", "with torch.no_grad():\n    for x, y in loader:\n        x, y = x.to(device), y.to(device)\n"
        "        out = model(x)\n", ("dataloader.pin_memory",), None),
)


def timed(cell: str, namespace: dict, repeats: int) -> float:
    """Median wall time of the cell, synchronised, after one warm-up run."""
    import torch

    code = compile(cell, "<cell>", "exec")
    times = []
    for i in range(repeats + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        exec(code, namespace)
        torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rows: list, workload: Workload, steps: int, repeats: int) -> None:
    namespace: dict = {"__name__": "__main__"}
    exec(workload.setup.replace("{steps}", str(steps)), namespace)
    cell = workload.cell.replace("{steps}", str(steps))
    before = timed(cell, namespace, repeats)
    changes: list = []
    try:
        source, outcomes = apply_to_cell(list(workload.optimizations), namespace, cell)
        changes = [o for o in outcomes if not isinstance(o, str)]
        problems = [o for o in outcomes if isinstance(o, str)] + [
            f"{c.optimization} {c.status}: {c.description}" for c in changes if c.status != "applied"]
        if problems:
            check(rows, workload.name, False, "; ".join(problems))
            return
        after = timed(source, namespace, repeats)
    except Exception as exc:  # noqa: BLE001 - the row says what broke; the other checks still run
        check(rows, workload.name, False, f"{type(exc).__name__}: {str(exc)[:300]}")
        return
    finally:
        for change in reversed(changes):
            change.undo()
    speedup = before / after
    guard = ", ".join(f"{c.optimization} {c.numerics.relative_error:.2%} of {c.numerics.threshold:.0%}"
                      for c in changes if c.numerics) or "not numerics-changing"
    goal = f"goal ≥ {workload.goal}" if workload.goal else "no goal"
    met = workload.goal is None or speedup >= workload.goal
    # A missed goal shows the cell as rewritten, to tell a rewrite that misfired from a fix that gains little.
    rewritten = "" if met else "; cell now: " + " | ".join(line.strip() for line in source.splitlines() if line.strip())
    check(rows, workload.name, met,
          f"×{speedup:.2f} ({goal}); {before * 1e3:.1f} → {after * 1e3:.1f} ms for {steps} steps; guard error: {guard}"
          f"{rewritten}")


def optimization_checks(quick: bool = False) -> list[tuple[str, str, str]]:
    """One row per workload; none without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    steps, repeats = (10, 3) if quick else (30, 7)
    rows: list[tuple[str, str, str]] = []
    for workload in WORKLOADS:
        measure(rows, workload, steps, repeats)
        gc.collect()
        torch.cuda.empty_cache()
    return rows
