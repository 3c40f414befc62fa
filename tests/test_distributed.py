"""Distributed runs, for real: 2 CPU ranks over gloo with DDP, launched the ways a notebook launches them.

Every rank runs its own Session; its Report comes back to the cell's. Planted cases (distributed_cases.py):
a healthy loop, a straggler (rank 1 sleeps in its data path), a communication-heavy model, a rank that
crashes; then Ctrl-C, mp.spawn, accelerate's notebook_launcher and torchrun with ``--load``. Effects are
planted large (a 60 ms sleep against a ~50 ms step, a 16 MiB all-reduce against ~10 ms of math) so a
loaded machine cannot flip them; no timing is asserted.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import distributed_cases as cases
import psutil
import pytest
from conftest import ROOT

import jupyter_perf
import jupyter_perf.distributed
from jupyter_perf import runs
from jupyter_perf.report import Report
from jupyter_perf.ui.ranks import live_rows

pytestmark = pytest.mark.timeout(120)


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def error_files() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("pytorch-errorfile-*")}


@contextlib.contextmanager
def nothing_left_behind():
    """No rank process, thread (Python or native: the store's server) or torch error file outlives the run."""
    threads, natives, files = threading.active_count(), native_threads(), error_files()
    yield
    assert psutil.Process().children(recursive=True) == []
    assert threading.active_count() <= threads
    deadline = time.monotonic() + 5  # a native thread ends just after its object: give it a moment
    while native_threads() > natives and time.monotonic() < deadline:
        time.sleep(0.05)
    assert native_threads() <= natives
    assert error_files() <= files


def profiled(case: str, steps: int = 12, how: str = "fork") -> Report:
    namespace = {"__name__": "__main__"}
    exec(cases.SETUP, namespace)
    return jupyter_perf.profile(cases.launch(case, steps, how), namespace)


def assert_phases_sum(report: Report) -> None:
    assert sum(report.phases.values()) == pytest.approx(report.step_time, rel=1e-6)


# ------------------------------------------------------------------ planted
def test_healthy_ddp_loop_every_rank_reports_and_nothing_fires():
    """Also the dashboard's live rows, read from the ranks' summaries while they run (as its thread does)."""
    namespace = {"__name__": "__main__"}
    exec(cases.SETUP, namespace)
    cell = cases.launch("healthy")
    seen, stop = [], threading.Event()
    with nothing_left_behind():
        session = runs.session(namespace, cell)  # (the Session a profiled cell gets: it follows launched ranks)

        def poll():
            while not stop.wait(0.2):
                seen.append(live_rows(session.ranks_live(), cores=2))

        poller = threading.Thread(target=poll)
        session.start()
        poller.start()
        try:
            exec(cell, namespace)
        finally:
            stop.set()
            poller.join()
            report = runs.finish(session, None)
    assert any([r["label"] for r in rows] == ["rank 0", "rank 1"] and all(r["steps"] for r in rows) for rows in seen)
    assert report.error is None, report.error
    assert [r.signals["distributed"]["rank"] for r in report.ranks] == [0, 1]
    for rank in report.ranks:
        assert rank.steps == 12 and rank.step_anchor == "optimizer"  # the loop's 12 batches per rank
        assert_phases_sum(rank)
        ddp = rank.signals["distributed"]["ddp"]
        assert ddp["buckets"] >= 12 and ddp["backwards"] == 12 and ddp["models"][0]["class"] == "Sequential"
        assert rank.signals["distributed"]["backend"] == "gloo" and rank.signals["distributed"]["world_size"] == 2
    # the cell's Report is the merged view: steps, phases, a row per rank
    assert report.steps == 12 and len(report.signals["distributed"]["ranks"]) == 2
    assert_phases_sum(report)
    ids = {f.id for f in report.findings}
    assert not ids & {"straggler", "communication", "rank_failed"}, [f.summary for f in report.findings]
    assert report.bottleneck != "communication"
    assert Report.from_json(report.to_json()).ranks[1].steps == 12  # survives the JSON trip


def test_a_rank_sleeping_in_its_data_path_is_named_the_straggler():
    report = profiled("straggler")
    straggler = report.finding("straggler")
    assert straggler is not None, [f.summary for f in report.findings]
    assert straggler.evidence["rank"] == 1 and straggler.evidence["slower_in"] == "data_wait"
    assert straggler.evidence["host"] and straggler.evidence["lost_s_per_step"] > 0.01
    assert "Rank 1" in straggler.summary
    # the others waited for it in collectives: rank 0's step is mostly communication, rank 1's mostly data
    rank0, rank1 = report.ranks
    assert rank0.phases["communication"] > rank1.phases["communication"]
    assert rank1.phases["data_wait"] > rank0.phases["data_wait"]


def test_a_communication_heavy_model_is_communication_bound():
    report = profiled("communication")
    assert report.bottleneck == "communication", [f.summary for f in report.findings]
    evidence = report.finding("communication").evidence
    assert evidence["bytes_per_step"] == pytest.approx(4 * (2048 * 2048 + 2048 + 2048 * 10 + 10), rel=0.01)
    assert evidence["world_size"] == 2 and evidence["backend"] == "gloo"
    assert evidence["buckets_per_backward"] >= 1 and 0 <= evidence["overlap"] <= 1
    assert {"distributed.no_sync", "distributed.comm_hook", "distributed.bucket_cap"} <= set(report.recommended())
    for rank in report.ranks:  # the blocked tail of backward moved into communication, the sum kept
        assert rank.phases["communication"] > rank.phases["backward"]
        assert_phases_sum(rank)


def test_a_crashing_rank_leaves_the_others_reports_and_is_named():
    with nothing_left_behind():
        report = profiled("crash")
    assert report.error["type"] == "ProcessRaisedException" and "planted failure" in report.error["message"]
    assert len(report.ranks) == 2  # the survivor's Report too
    failed = report.finding("rank_failed")
    assert failed.evidence["rank"] == 1 and failed.evidence["error"]["type"] == "ValueError"
    assert "planted failure in rank 1" in failed.summary
    assert report.ranks[1].error["type"] == "ValueError" and report.ranks[1].steps == 3


# ---------------------------------------------------------------- launchers
def test_mp_spawn_ranks_report_too(tmp_path, monkeypatch):
    """``mp.spawn`` pickles the (importable) function into fresh interpreters: the RankEntry travels with it."""
    (tmp_path / "ddp_train.py").write_text(cases.SETUP)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace = {"__name__": "__main__"}
    exec("import torch.multiprocessing as mp\nfrom ddp_train import train\n", namespace)
    report = jupyter_perf.profile(cases.launch("healthy", 6, how="spawn"), namespace)
    assert report.error is None, report.error
    assert [r.steps for r in report.ranks] == [6, 6]
    assert {r.signals["distributed"]["launcher"] for r in report.ranks} == {"spawn"}
    sys.modules.pop("ddp_train", None)


def test_accelerate_notebook_launcher_ranks_report_too(no_accelerator_yet):
    pytest.importorskip("accelerate")
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent("""
        import torch
        from torch import nn
        from accelerate import Accelerator, notebook_launcher

        def training_function():
            torch.set_num_threads(1)
            accelerator = Accelerator(cpu=True)
            model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            data = torch.utils.data.TensorDataset(torch.randn(256, 32), torch.randint(0, 10, (256,)))
            loader = torch.utils.data.DataLoader(data, batch_size=16)
            model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
            for x, y in loader:
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                accelerator.backward(loss)
                optimizer.step()
    """), namespace)
    cell = f'notebook_launcher(training_function, num_processes=2, use_port="{cases.free_port()}")'
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    report = jupyter_perf.profile(cell, namespace)
    assert report.error is None, report.error
    # torchelastic (under notebook_launcher) leaves its own handlers installed: Ctrl-C must stay a KeyboardInterrupt
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert [r.steps for r in report.ranks] == [8, 8]  # 256 samples, batch 16, sharded over 2 ranks
    assert report.ranks[0].signals["distributed"]["ddp"]["buckets"] >= 8
    assert report.signals["distributed"]["function"] == "training_function"


def test_torchrun_writes_rank_reports_that_load_merges(tmp_path, ipython):
    script = tmp_path / "train.py"
    script.write_text(cases.SETUP + textwrap.dedent("""
        if __name__ == "__main__":
            import sys
            train(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), None, sys.argv[1], 8)
    """))
    out = tmp_path / "ranks"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    torchrun = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                                 f"--master-port={cases.free_port()}", "-m", "jupyter_perf.run", "--out", str(out),
                                 str(script), "straggler"], env=env, cwd=tmp_path, start_new_session=True)
    try:
        assert torchrun.wait(timeout=100) == 0
    finally:  # its ranks too, whatever happened
        with contextlib.suppress(ProcessLookupError):
            os.killpg(torchrun.pid, signal.SIGKILL)
    assert sorted(p.name for p in out.iterdir()) == ["rank-00000.json", "rank-00001.json"]
    loaded = jupyter_perf.distributed.load(out)
    assert [r.steps for r in loaded.ranks] == [8, 8]
    assert {r.signals["distributed"]["launcher"] for r in loaded.ranks} == {"torchrun"}
    assert loaded.finding("straggler").evidence["rank"] == 1
    ipython.run_cell(f"%perfprofile --load {out} -o loaded_ranks")
    assert ipython.user_ns["loaded_ranks"].finding("straggler").evidence["rank"] == 1


# -------------------------------------------------------------------- Ctrl-C
CTRL_C = """
import json, sys
sys.path.insert(0, {tests!r})
import psutil, jupyter_perf, distributed_cases as cases
ns = {{"__name__": "__main__"}}
running = "optimizer.step()\\n        if step == 2: print('running', flush=True)"
exec(cases.SETUP.replace("optimizer.step()", running), ns)
report = jupyter_perf.profile(cases.launch("healthy", 100000), ns)
print(json.dumps({{"interrupted": report.interrupted, "ranks": [[r.interrupted, r.steps] for r in report.ranks],
                  "pids": [r.signals["distributed"]["pid"] for r in report.ranks],
                  "children": [p.pid for p in psutil.Process().children(recursive=True)]}}))
"""


@pytest.mark.parametrize("group", [True, False], ids=["process-group", "parent-only"])
def test_ctrl_c_stops_every_rank_and_keeps_their_reports(group, tmp_path):
    """Jupyter's interrupt (and a terminal's Ctrl-C) reaches the whole process group; a ``kill -INT`` only
    the parent, which then stops the ranks itself.

    The script writes to a file, not a pipe: with its stdout on a pipe a reader thread empties, forked gloo
    ranks stalled in their first backward in most runs here, with or without the profiler (torch 2.13, CPU)."""
    code = CTRL_C.format(tests=str(ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    output = tmp_path / "out.txt"
    with open(output, "w") as out, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=errors, text=True, env=env,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while output.read_text().count("running") < 2:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"{output.read_text().count('running')} of 2 ranks started their loop within 60 s: "
                                + _stderr(process, errors))
                time.sleep(0.1)
            if group:
                os.killpg(process.pid, signal.SIGINT)
            else:
                os.kill(process.pid, signal.SIGINT)
            process.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        lines = [line for line in output.read_text().splitlines() if line.strip()]
        assert lines, _stderr(process, errors)
    result = json.loads(lines[-1])
    assert result["interrupted"] and result["children"] == []
    assert [interrupted for interrupted, _steps in result["ranks"]] == [True, True]
    assert all(steps >= 2 for _interrupted, steps in result["ranks"])
    assert not any(psutil.pid_exists(pid) for pid in result["pids"])


def _stderr(process: subprocess.Popen, errors) -> str:
    """The script's stderr so far (it is killed first where still running), for a failure's message."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    errors.seek(0)
    return errors.read()[-3000:]
