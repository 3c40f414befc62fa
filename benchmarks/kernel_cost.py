"""What ``%%perfprofile`` costs a cell beyond the cell itself, in a real Jupyter kernel with the live dashboard on.

Two figures per cell, each the profiled cell against the same cell run plain
in the same kernel, timed from the client (execute request sent → reply
received: what the user waits for):

* first-cell extra: the first ``%%perfprofile`` of a fresh kernel, against
  the median plain run (what is imported and set up once per kernel: the
  widget library, the summary, the diagnosis; for a cell with
  recommendations the optimization panel and what its plans import);
* later-cell fixed cost: every later profiled run against the mean of the
  plain runs on either side of it (pairing.py), the median of those.

Each kernel runs ``%load_ext jupyter_perf`` and the cell's set-up, the cell
plain three times (first-call costs belong to neither side), then the first
profiled run, then plain and profiled alternately. The kernel's widget
messages are read and dropped, as by a frontend that draws nothing. Goals
(issue 11): first-cell extra ≤ 0.5 s, later-cell fixed cost ≤ 20 ms for
``x = 1`` and for a tiny torch cell. The third cell, an inference loop that
gets recommendations, shows what the optimization panel adds.

    python benchmarks/kernel_cost.py [--kernels 3] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (name, set-up run plain before timing, the cell); the first two are the goals' cells.
CELLS = (
    ("x = 1", "", "x = 1"),
    ("tiny torch cell", "import torch", "y = torch.nn.Linear(8, 8)(torch.randn(4, 8)).sum()"),
    (
        "inference loop (gets recommendations)",
        "import torch\nfrom torch import nn\n"
        "net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)).eval()\n"
        "img = torch.randn(1, 3, 32, 32)",
        "for _ in range(30):\n    out = net(img)",
    ),
)
GOAL_FIRST_S = 0.5
GOAL_LATER_S = 0.020
#: Plain runs before the first profiled one.
WARM_UP = 3


def _execute(client, code: str) -> float:
    """Seconds from sending ``code`` to its reply; raises if the cell failed."""
    start = time.perf_counter()
    reply = client.execute_interactive(code, timeout=600, output_hook=lambda msg: None)
    elapsed = time.perf_counter() - start
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"the cell failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    return elapsed


def one_kernel(setup: str, cell: str, rounds: int) -> tuple[float, list[float], list[float]]:
    """In a fresh kernel: (the first profiled run's extra seconds, later runs' extra seconds, plain runs' seconds)."""
    from jupyter_client.manager import start_new_kernel

    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # this checkout's jupyter_perf
    manager, client = start_new_kernel(kernel_name="python3", env={**os.environ, "PYTHONPATH": path})
    try:
        _execute(client, "%load_ext jupyter_perf")
        if setup:
            _execute(client, setup)
        plain = [_execute(client, cell) for _ in range(WARM_UP)]
        first = _execute(client, "%%perfprofile\n" + cell)
        later = []
        for _ in range(rounds):
            plain.append(_execute(client, cell))
            later.append(_execute(client, "%%perfprofile\n" + cell))
        plain.append(_execute(client, cell))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    measured = plain[WARM_UP:]
    extra = [run - (measured[i] + measured[i + 1]) / 2 for i, run in enumerate(later)]
    return first - statistics.median(measured), extra, measured


def measure(kernels: int, rounds: int) -> list[dict]:
    rows = []
    for name, setup, cell in CELLS:
        firsts, later, plain = [], [], []
        for _ in range(kernels):
            first, extra, measured = one_kernel(setup, cell, rounds)
            firsts.append(first)
            later += extra
            plain += measured
        rows.append({"cell": name, "plain_s": statistics.median(plain), "first_s": statistics.median(firsts),
                     "first_range": (min(firsts), max(firsts)), "later_s": statistics.median(later)})
    return rows


def print_table(rows: list[dict], kernels: int, rounds: int) -> None:
    print(f"{'cell (real kernel, live dashboard on)':40} {'plain ms':>9} {'first-cell extra s':>19} "
          f"{'(range)':>14} {'later-cell fixed ms':>20}")
    for r in rows:
        low, high = r["first_range"]
        print(f"{r['cell']:40} {r['plain_s'] * 1e3:9.1f} {r['first_s']:19.3f} {f'{low:.3f}-{high:.3f}':>14} "
              f"{r['later_s'] * 1e3:20.1f}")
    goal_rows = rows[:2]
    met = all(r["first_s"] <= GOAL_FIRST_S and r["later_s"] <= GOAL_LATER_S for r in goal_rows)
    print(f"first-cell extra: median of {kernels} fresh kernels; later-cell: median of {kernels}×{rounds} runs, "
          "each against the plain runs on either side")
    print(f"goal (x = 1, tiny torch cell): first ≤ {GOAL_FIRST_S} s, later ≤ {GOAL_LATER_S * 1e3:.0f} ms: "
          f"{'met' if met else 'NOT met'}")
    if sys.flags.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("(PYTHONDONTWRITEBYTECODE is set: each kernel compiles jupyter_perf's modules again, which an "
              "installed package does not)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=3, help="fresh kernels per cell (first-cell figure)")
    parser.add_argument("--rounds", type=int, default=10, help="plain/profiled pairs per kernel")
    args = parser.parse_args()
    print_table(measure(args.kernels, args.rounds), args.kernels, args.rounds)


if __name__ == "__main__":
    main()
