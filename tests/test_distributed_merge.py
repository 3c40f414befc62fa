"""Merging rank Reports: many ranks, the per-rank summary, ``load`` from a directory and its bad inputs.

The ranks here are Reports built in the test (no processes): what matters is the merge, its figures, and that
the distributed rules read it right at a size no test machine could launch.
"""

import json

import pytest

import jupyter_perf.distributed as distributed
from jupyter_perf.distributed import merge
from jupyter_perf.report import PHASES, Report
from jupyter_perf.ui.ranks import live_rows
from jupyter_perf.ui.summary import html_summary, text_summary

STEPS = 20


def rank(index: int, data_wait: float = 0.001, compute: float = 0.030, error: dict | None = None) -> Report:
    """Rank ``index`` of a lockstep DDP loop: 60 ms steps (the slowest rank's 25 ms data wait, 30 ms of compute and
    a 5 ms transfer), each rank waiting in communication for whatever its own work leaves of them."""
    step = 0.060
    phases = dict.fromkeys(PHASES, 0.0)
    phases.update(data_wait=data_wait, forward=compute / 3, backward=compute * 2 / 3,
                  communication=step - data_wait - compute)
    series = {"start": [i * step for i in range(STEPS)], "wall": [step] * STEPS, "samples": [32] * STEPS,
              **{p: [v] * STEPS for p, v in phases.items()}}
    return Report(steps=STEPS, step_anchor="optimizer", step_time_total=STEPS * step, samples=32 * STEPS,
                  throughput={"steps_per_s": 1 / step, "samples_per_s": 32 / step}, phases=phases,
                  phase_totals={p: v * STEPS for p, v in phases.items()}, step_series=series,
                  peaks={"rss_total_bytes": 2**30 + index}, error=error,
                  signals={"distributed": {"rank": index, "world_size": 64, "backend": "gloo",
                                           "host": f"node{index // 8}", "launcher": "torchrun"},
                           "cpu": {"proc_mean_util": 95.0}, "backward": {"calls": STEPS}})


def many(n: int = 64, slow: int = 17) -> list[Report]:
    return [rank(i, data_wait=0.025 if i == slow else 0.001) for i in range(n)]


def test_the_public_merge_stays_a_function_after_the_package_has_merged_once():
    """The package's ``merge`` and ``load`` are its API; the module doing the work must not take the name when it is
    imported (a submodule named ``merge`` replaced the function on first use: the second call raised TypeError)."""
    distributed.merge(many(4))
    assert callable(distributed.merge) and distributed.merge(many(4)).steps == STEPS


def test_many_ranks_merge_into_one_view_that_names_the_straggler():
    merged = merge(list(reversed(many())))  # any order in, rank order out
    assert [r.signals["distributed"]["rank"] for r in merged.ranks] == list(range(64))
    assert merged.steps == STEPS and merged.samples == 64 * 32 * STEPS
    assert merged.throughput["samples_per_s"] == pytest.approx(64 * 32 / 0.060)
    assert sum(merged.phases.values()) == pytest.approx(merged.step_time)
    straggler = merged.finding("straggler")
    assert straggler.evidence["rank"] == 17 and straggler.evidence["host"] == "node2"
    assert straggler.evidence["slower_in"] == "data_wait" and straggler.evidence["slow_ranks"] == [17]
    assert merged.finding("communication") is None  # the waits are the straggler's, the transfer 5 ms of 60
    assert merged.signals["distributed"]["transfer_s"] == pytest.approx(0.060 - 0.055)
    assert "dataloader.workers" in merged.recommended()


def test_the_summary_shows_every_rank_or_for_many_their_spread_and_the_worst():
    few = merge(many(4, slow=2))
    text = text_summary(few)
    table = text.split("Ranks (4)\n")[1].split("\n\n")[0].splitlines()
    assert "ranks 4" in text and len(table) == 5 and table[3].split()[:2] == ["2", "node0"]  # a header, 4 ranks
    lots = merge(many(64) + [rank(64, error={"type": "RuntimeError", "message": "NCCL timeout"})])
    text, html = text_summary(lots), html_summary(lots)
    assert "Ranks (65): spread" in text and "p90" in text and "Slowest 5 ranks" in text
    slowest = text.split("Slowest")[1].splitlines()
    assert slowest[2].strip().startswith("17")  # the worst rank first under the header
    assert "✖ RuntimeError" in text and "rank 64 failed: RuntimeError: NCCL timeout" in text
    assert lots.finding("rank_failed").evidence["rank"] == 64
    assert "Ranks (65): spread" in html and "<td>17</td>" in html


def test_load_reads_a_directory_of_rank_reports_and_says_what_is_missing(tmp_path):
    for r in many(8, slow=5):
        if r.signals["distributed"]["rank"] != 3:
            (tmp_path / f"rank-{r.signals['distributed']['rank']:05d}.json").write_text(r.to_json())
    loaded = distributed.load(tmp_path)
    assert len(loaded.ranks) == 7 and loaded.finding("straggler").evidence["rank"] == 5
    assert any("rank" in n and "3" in n for n in loaded.notes)  # 64 expected (world_size), 7 came


def test_load_refuses_bad_input_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no rank reports"):
        distributed.load(tmp_path)
    (tmp_path / "rank-00000.json").write_text("{not json")
    with pytest.raises(ValueError, match="rank-00000.json is not a rank report"):
        distributed.load(tmp_path)


def test_a_merged_report_round_trips_through_json():
    merged = merge(many(8, slow=1))
    again = Report.from_dict(json.loads(merged.to_json()))
    assert [r.steps for r in again.ranks] == [STEPS] * 8
    assert again.signals["distributed"]["ranks"][1]["data_wait_s"] == pytest.approx(0.025)
    assert again.finding("straggler").evidence["rank"] == 1


def test_live_rows_show_every_rank_or_for_many_the_slowest_median_and_fastest():
    summaries = [{"index": i, "steps": 10, "step_s": 0.1 + i / 100, "phases": {"forward": 0.05}, "cpu": 90.0,
                  "rss": 2**30, "gpu_util": None} for i in range(12)]
    assert [r["label"] for r in live_rows(summaries[:3], cores=2)] == ["rank 0", "rank 1", "rank 2"]
    rows = live_rows(summaries, cores=2)
    assert [r["label"] for r in rows] == ["slowest · rank 11 of 12", "median · rank 5 of 12", "fastest · rank 0 of 12"]
    assert rows[0]["steps_per_s"] == pytest.approx(1 / 0.21)
    assert rows[0]["cpu"] == pytest.approx(45.0)  # 90 % of one core: 45 % of the machine's 2 cores
