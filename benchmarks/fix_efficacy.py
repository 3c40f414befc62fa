"""Does the one-click fix get as far as a fix written by hand? Prints one row per planted problem.

For each scenario (fix_scenarios.py), each round runs, from fresh namespaces:
the planted problem under the profiler, then its top recommendation applied
through the API and re-measured (``apply_and_rerun``), then the hand-written
fix under the profiler. Throughput is samples/s (medians over rounds); memory
is the peak RSS the run added over its start and the RSS growth per step.
Goal (issue 4): the tool's fix reaches ≥ 0.9 of the hand fix.

torch runs one intra-op thread by default here (``--threads``): on a shared
two-core machine, a parallel op waits a scheduler quantum for a descheduled
thread, which made batch-64 steps take 30-80 ms instead of 0.1 ms and
drowned the effects measured.

    python benchmarks/fix_efficacy.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
from fix_scenarios import ALL, FixScenario  # noqa: E402

import jupyter_perf  # noqa: E402
from jupyter_perf.diagnosis.memory import fit_growth  # noqa: E402
from jupyter_perf.optimizations.remeasure import apply_and_rerun  # noqa: E402

MiB = 2**20


def metrics(report) -> dict[str, float]:
    rss = [v for v in report.timeline.get("rss_total", []) if v is not None]
    fit = fit_growth(report.timeline.get("steps", []), report.timeline.get("rss_total", []))
    return {
        "samples_per_s": report.throughput.get("samples_per_s") or 0.0,
        "peak_added": (report.peaks.get("rss_total_bytes", 0) - rss[0]) if rss else float("nan"),
        "growth_per_step": fit.per_step_bytes if fit else float("nan"),
    }


def one_round(scenario: FixScenario) -> tuple[dict, dict, dict, str]:
    namespace = {"__name__": "__main__"}
    exec(scenario.setup, namespace)
    before = jupyter_perf.profile(scenario.cell, namespace, interval=0.02)
    if not before.recommendations:
        raise SystemExit(f"{scenario.name}: no recommendation (bottleneck {before.bottleneck})")
    top = before.recommendations[0]
    change, comparison = apply_and_rerun(top.optimization, namespace, scenario.cell, before)
    if comparison is None:
        raise SystemExit(f"{scenario.name}: {top.optimization} not applied: {change.description}")
    hand_ns = {"__name__": "__main__"}
    exec(scenario.hand_setup, hand_ns)
    hand = jupyter_perf.profile(scenario.hand_cell, hand_ns, interval=0.02)
    shown = {k: v for k, v in change.params.items() if k not in ("name", "model", "container")}
    fix = " ".join([top.optimization, *(f"{k}={v}" for k, v in shown.items())])
    return metrics(before), metrics(comparison.after), metrics(hand), fix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# fix efficacy, {args.rounds} rounds, medians · {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"Python {platform.python_version()}")
    header = (f"{'scenario':<26} {'tool fix (params)':<52} {'samples/s before':>16} {'tool':>10} {'hand':>10} "
              f"{'tool/hand':>9}  {'peak added MiB b/t/h':>22}  {'growth/step MiB b/t/h':>24}")
    print(header)
    for scenario in ALL:
        rounds = [one_round(scenario) for _ in range(args.rounds)]
        b, t, h = ({k: statistics.median(r[i][k] for r in rounds) for k in rounds[0][i]} for i in range(3))
        peaks = "/".join(f"{m['peak_added'] / MiB:.0f}" for m in (b, t, h))
        growth = "/".join(f"{m['growth_per_step'] / MiB:.2f}" for m in (b, t, h))
        print(f"{scenario.name:<26} {rounds[-1][3]:<52.52} {b['samples_per_s']:>16.0f} {t['samples_per_s']:>10.0f} "
              f"{h['samples_per_s']:>10.0f} {t['samples_per_s'] / h['samples_per_s']:>9.2f}  {peaks:>22}  "
              f"{growth:>24}")


if __name__ == "__main__":
    main()
