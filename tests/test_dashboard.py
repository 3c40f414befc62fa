"""The live dashboard without a browser: a real kernel under nbclient, plain IPython, and the updater alone.

The browser side (the dashboard moving, the summary after, a reopen) is in
``tests/ui``; here is everything a kernel and Python can check: what goes over
the comm while the cell runs, that the summary replaces the dashboard, that
nbclient stores widget state, ``--no-live``, no leftover threads, the text
fallback in plain IPython, and that a failing updater never reaches the cell.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_perf import state
from jupyter_perf.report import Report
from jupyter_perf.ui import dashboard as dashboard_module
from jupyter_perf.ui.dashboard import Dashboard
from jupyter_perf.ui.panel import MIME as PANEL_MIME
from jupyter_perf.ui.panel import TEXT as PANEL_TEXT

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIVE_ID = "jupyter_perf.ui.live_widget.LiveDashboard"
MAX_CELL_GROWTH = 300 * 1024

TRAINING = """%%perfprofile -o rep
import time
import torch
from torch import nn
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
t0, steps = time.perf_counter(), 0
while time.perf_counter() - t0 < 3 or steps < 200:  # past the first pushes' seconds, steps enough to count
    loss = model(torch.randn(64, 64)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    steps += 1
"""

THREADS_AFTER_MANY_RUNS = """
import threading, json
before = sorted(t.name for t in threading.enumerate())
for _ in range(40):
    get_ipython().run_cell_magic("perfprofile", "", "sum(range(1000))")
after = sorted(t.name for t in threading.enumerate())
print(json.dumps({"before": before, "after": after}))
"""

CLEARS_ITS_OUTPUT = """%%perfprofile
from IPython.display import clear_output
import time
time.sleep(0.3)
print("progress"); clear_output()
time.sleep(0.3)
"""


class RecordingClient(NotebookClient):
    """nbclient, keeping every comm message it sees (nbclient itself only keeps the merged state)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.comm_msgs: list[dict] = []

    def handle_comm_msg(self, outs, msg, cell_index):
        self.comm_msgs.append({"cell": cell_index, **msg})
        return super().handle_comm_msg(outs, msg, cell_index)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """One notebook run headless by nbclient: two live profiled cells, one --no-live, then many quick runs."""
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext jupyter_perf\nimport torch"),
            new_code_cell(TRAINING),  # 1
            new_code_cell("import json; print(json.dumps(rep.recommended()))"),  # 2
            new_code_cell(TRAINING.replace("-o rep", "--no-live")),  # 3
            new_code_cell(TRAINING.replace("-o rep", "-o rep2").replace("< 3", "< 0.5")),  # 4
            new_code_cell(THREADS_AFTER_MANY_RUNS),  # 5
            new_code_cell(CLEARS_ITS_OUTPUT),  # 6
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path_factory.mktemp("nb")
    client = RecordingClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path)}})
    client.execute()  # raises CellExecutionError if any cell fails
    nbformat.write(nb, str(path / "executed.ipynb"))
    return nb, client


def live_states(nb) -> dict[str, dict]:
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return {k: v["state"] for k, v in state.items() if v["state"].get("_anywidget_id") == LIVE_ID}


def only_summary_and_panel(outputs) -> bool:
    """The summary, then (where there are recommendations) the optimization panel, and nothing else."""
    summary, *panel = outputs
    return summary.output_type == "display_data" and len(panel) <= 1 \
        and all(o["data"].get("text/plain", "").startswith(PANEL_TEXT) for o in panel)


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_nbclient_run_succeeds_stores_widget_state_and_settles_into_the_summary(executed):
    nb, _ = executed
    live = live_states(nb)
    assert len(live) == 2 + 40 + 1, "one dashboard per live profiled cell, none for --no-live"
    for cell_index in (1, 4):
        outputs = nb.cells[cell_index].outputs
        assert only_summary_and_panel(outputs), outputs
        data = outputs[0]["data"]
        assert WIDGET_VIEW not in data, "the dashboard's output was replaced by the summary"
        assert 'class="jp-perf-summary"' in data["text/html"] and 'class="jp-perf-verdict"' in data["text/html"]
        assert data["text/plain"].startswith("jupyter-perf ·") and "Step breakdown" in data["text/plain"]
    # The stored state is the dashboard's last: the run ended, rows had arrived, the timeline panels are described.
    trained = [s for s in live.values() if s["frame"].get("rows")]
    assert trained, "rows were pushed to the dashboard while the cell ran"
    for stored in live.values():
        assert stored["done"] is True
        assert [p["title"] for p in stored["meta"]["panels"]] == ["CPU", "host memory (RSS)"]  # no GPU on this machine
        assert all(p["series"] for p in stored["meta"]["panels"])
    assert max(len(json.dumps(s)) for s in live.values()) < 64 * 1024, "each stored dashboard state stays small"


def test_recommendations_are_listed_once_as_the_panels_cards_the_top_one_in_the_verdict(executed):
    nb, _ = executed
    recommended = json.loads(stream_text(nb.cells[2]))
    summary, panel = (o["data"] for o in nb.cells[1].outputs[:2])
    html = summary["text/html"]
    assert 'class="jp-perf-rec"' not in html  # one list of fixes: the panel's cards, not a second one here
    assert f'<div class="jpp-verdict-actions" data-optimization="{recommended[0]}">' in html  # the buttons' slot
    assert PANEL_MIME in panel  # the panel's own output, its cards in the record beside the widget's view
    cards = [line[2:].split(" — ")[0] for line in panel["text/plain"].splitlines() if line.startswith("* ")]
    assert cards == recommended


def test_updates_stream_while_the_cell_runs_with_the_cells_parent_header(executed):
    _, client = executed
    opens = [m for m in client.comm_msgs if m["msg_type"] == "comm_open"
             and m["content"]["data"].get("state", {}).get("_anywidget_id") == LIVE_ID]  # fmt: skip
    first = opens[0]
    frames = [
        m for m in client.comm_msgs
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == first["content"]["comm_id"]
        and "frame" in m["content"]["data"].get("state", {})
    ]  # fmt: skip
    # Ten pushes a second at the start (the first numbers show at once), then at most two, each a batch of the
    # samples taken since the last.
    assert len(frames) >= 2
    dates = [m["header"]["date"] for m in frames]
    run_times = [m["content"]["data"]["state"]["frame"]["status"]["t"] for m in frames]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(dates)]
    assert min(gaps) >= dashboard_module.START_PERIOD - 0.01, gaps
    assert run_times[0] < 0.5, "the first push comes within the run's first half second"
    settled = [g for g, t in zip(gaps, run_times[1:]) if t > dashboard_module.START_SECONDS + 0.2]
    assert settled and min(settled) >= dashboard_module.PUSH_PERIOD - 0.01, (gaps, run_times)
    seqs = [m["content"]["data"]["state"]["frame"]["seq"] for m in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    rows = [r for m in frames for r in m["content"]["data"]["state"]["frame"]["rows"]]
    assert len(rows) >= 20  # 10 Hz sampling over ≥ 3 s
    assert all(set(r) >= {"t", "cpu", "cores", "rss", "avail", "p"} for r in rows)
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    statuses = [m["content"]["data"]["state"]["frame"]["status"] for m in frames]
    # each push carries the run's status: its time, the step count, the throughput and the last step
    assert all(b["t"] > a["t"] and b["steps"] >= a["steps"] for a, b in itertools.pairwise(statuses))
    assert any(s["steps"] > 0 and s["steps_per_s"] and s["step"] and s["step"]["wall"] > 0 for s in statuses)
    # Pushed from the updater thread, yet attributed to the cell that runs (ipykernel 7 keeps the
    # parent header in context variables, which the thread inherits).
    parent = first["parent_header"]["msg_id"]
    assert parent and all(m["parent_header"].get("msg_id") == parent for m in frames)
    # Opening a dashboard sends a small state: panel descriptions, no plotting library.
    assert max(len(json.dumps(m["content"]["data"]["state"])) for m in opens) < 64 * 1024


def test_a_cell_that_clears_its_output_still_gets_the_summary(executed):
    nb, _ = executed
    outputs = nb.cells[6].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    assert 'class="jp-perf-summary"' in outputs[0]["data"]["text/html"]


def test_no_live_shows_only_the_summary(executed):
    nb, client = executed
    outputs = nb.cells[3].outputs
    assert only_summary_and_panel(outputs), outputs
    assert 'class="jp-perf-summary"' in outputs[0]["data"]["text/html"]
    opened = [m["content"]["data"].get("state", {}).get("_anywidget_id") for m in client.comm_msgs
              if m["cell"] == 3 and m["msg_type"] == "comm_open"]
    assert LIVE_ID not in opened, "--no-live opens no live dashboard (the optimization panel is not live)"


def test_many_profiled_runs_leave_no_thread_behind(executed):
    nb, _ = executed
    threads = json.loads(stream_text(nb.cells[5]).strip().splitlines()[-1])
    assert threads["after"] == threads["before"]
    assert "jupyter-perf-dashboard" not in threads["after"]


def test_saved_notebook_grows_little_per_profiled_cell(executed, tmp_path):
    nb, _ = executed
    live = live_states(nb)
    outputs = [len(json.dumps(nb.cells[i].outputs)) for i in (1, 4)]
    widget_state = max(len(json.dumps(s)) for s in live.values())
    assert max(outputs) + widget_state <= MAX_CELL_GROWTH, (outputs, widget_state)


# ------------------------------------------------------------------ plain IPython
def test_plain_ipython_prints_the_text_summary_and_imports_no_widgets():
    script = textwrap.dedent(
        """
        import sys, threading
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyter_perf")
        before = sorted(t.name for t in threading.enumerate())
        shell.run_cell("%%perfprofile\\nimport time\\nt0 = time.perf_counter()\\n"
                       "while time.perf_counter() - t0 < 0.3:\\n    sum(range(1000))\\n")
        print("MODULES", sorted(m for m in ("anywidget", "ipywidgets") if m in sys.modules))
        print("THREADS LEFT", sorted(t.name for t in threading.enumerate()) == before)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # the verdict first (a sub-second loop with no torch: too little to name one), then the numbers
    assert out.startswith("jupyter-perf · Too little ran to name a bottleneck"), out
    assert "[bottleneck: none]" in out and "wall time 3" in out and "Step breakdown" in out
    assert "<div" not in out, "a terminal gets text, not HTML"
    assert "MODULES []" in out
    assert "THREADS LEFT True" in out
    assert "dashboard" not in result.stderr  # nothing to apologise for: a terminal has no widgets to miss


# -------------------------------------------------------- the updater on its own
@pytest.fixture(autouse=True)
def fresh_notes(monkeypatch):
    """Each test starts with nothing said yet (notes are said once per process)."""
    monkeypatch.setattr(state.current(), "said", set())


class FakeGpu:
    devices = ()
    note = "no GPU here"


class FakeSampler:
    gpu = FakeGpu()

    def __init__(self):
        self.t0 = time.perf_counter()


class FakeSession:
    """Enough of a Session for the dashboard: a Timeline and a StepTrace filled by hand."""

    def __init__(self, interval=0.1):
        from jupyter_perf.probes.steps import StepTrace
        from jupyter_perf.sampling.timeline import Timeline

        self.interval = interval
        self.timeline = Timeline()
        self.trace = StepTrace()
        self.sampler = FakeSampler()
        self.running = False


def row(t, steps, **extra):
    return {"t": t, "steps": steps, "cpu_percent": 50.0, "proc_cpu_percent": 90.0, "cpu0": 40.0, "cpu1": 60.0,
            "rss": 2**30, "rss_children": 0, "mem_available": 2**32, **extra}  # fmt: skip


def test_frames_carry_new_rows_once_with_step_markers():
    session = FakeSession()
    dash = Dashboard(session, shell=None)
    try:
        for i in range(40):  # 4 s at 10 Hz, 40 steps a second
            session.timeline.append(row(i / 10, 4 * i))
        rows = dash.frame_rows()
        assert [r["t"] for r in rows] == [i / 10 for i in range(40)]
        assert dash.frame_rows() == [], "a row is sent once"
        assert rows[-1]["p"]["proc"] == rows[-1]["proc"] == pytest.approx(90.0 / dash._cores)  # % of the machine
        # 40 steps a second: a marker every 100 steps (powers of ten, about one a second or fewer)
        marks = [m for r in rows for m in r.get("marks", [])]
        assert marks == [(2.5, 100)]
    finally:
        dash.close()


def test_the_status_counts_steps_from_the_first_one_with_the_rates_of_the_last_seconds(monkeypatch):
    """The count is the hot path's (``steps_closed``), there before any step is accounted or the anchor decided;
    the rates come once a quarter second of history exists, samples and tokens per step from accounted steps."""
    session = FakeSession()
    dash = Dashboard(session, shell=None)
    clock = [0.1]
    monkeypatch.setattr(dash, "_run_time", lambda: clock[0])
    try:
        assert dash.status()["steps"] == 0 and dash.status()["steps_per_s"] is None
        session.trace.steps_closed = 1  # one step closed, none accounted yet
        first = dash.status()
        assert first["steps"] == 1 and first["t"] == 0.1 and first["samples_per_s"] is None
        clock[0] = 0.5
        session.trace.steps_closed = 5
        session.trace.steps, session.trace.samples, session.trace.tokens = 4, 4 * 32, 4 * 32 * 128
        status = dash.status()
        assert status["steps_per_s"] == pytest.approx(10.0)  # 5 steps in the run's first 0.5 s
        assert status["samples_per_s"] == pytest.approx(320.0) and status["tokens_per_s"] == pytest.approx(40960.0)
        for _ in range(54):  # a steady 20 steps a second: the window forgets the start
            clock[0] += 0.05
            session.trace.steps_closed += 1
            status = dash.status()
        assert status["steps"] == 59 and status["steps_per_s"] == pytest.approx(20.0)
    finally:
        dash.close()


def test_a_failing_updater_never_reaches_the_cell_and_says_so_once(capsys, monkeypatch):
    session = FakeSession()
    dash = Dashboard(session, shell=None)

    def broken(seen):
        raise RuntimeError("timeline gone")

    monkeypatch.setattr(session.timeline, "since", broken)
    monkeypatch.setattr(dashboard_module, "PUSH_PERIOD", 0.01)
    dash._period = 0.01
    dash._thread.start()
    session.running = True
    deadline = time.monotonic() + 5
    while dash.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    session.running = False
    dash.finish(Report())
    assert isinstance(dash.error, RuntimeError)
    assert not dash._thread.is_alive()
    err = capsys.readouterr().err
    assert err.count("stopped updating") == 1 and "timeline gone" in err
    dash.close()


def test_the_updater_thread_inherits_the_cells_context():
    """ipykernel 7 keeps the parent header in context variables; the thread must see the cell's."""
    marker = contextvars.ContextVar("marker", default="unset")
    marker.set("the cell")
    session = FakeSession()
    dash = Dashboard(session, shell=None)
    seen = []
    dash.push = lambda: seen.append(marker.get()) or True
    dash._period = 0.01
    session.running = True
    dash._thread.start()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    session.running = False
    dash.close()
    assert seen and set(seen) == {"the cell"}
    assert not dash._thread.is_alive()


def test_a_dashboard_that_fails_to_open_falls_back_to_the_summary_and_says_so(capsys, monkeypatch):
    monkeypatch.setattr(dashboard_module, "widgets_unavailable", lambda shell: None)

    def broken(self, session, shell):
        raise RuntimeError("no comm")

    monkeypatch.setattr(Dashboard, "__init__", broken)
    assert dashboard_module.open_dashboard(FakeSession(), live=True) is None
    assert dashboard_module.open_dashboard(FakeSession(), live=True) is None
    assert capsys.readouterr().err.count("failed to open") == 1


def test_no_thread_survives_finish():
    def names():
        return sorted(t.name for t in threading.enumerate())

    before = names()
    for _ in range(5):
        session = FakeSession()
        dash = Dashboard(session, shell=None)
        dash._thread.start()
        session.running = True
        session.timeline.append(row(0.0, 0))
        time.sleep(0.05)
        session.running = False
        dash.finish(Report())
    dash.close()
    assert names() == before


def test_gpu_panels_and_their_values():
    from jupyter_perf.ui.timeline_panels import build_timeline, plot_row

    gpus = [{"index": 0, "name": "H200", "mem_total": 141 * 2**30}, {"index": 1, "name": "H200", "mem_total": 2**30}]
    assert [p["title"] for p in build_timeline([])] == ["CPU", "host memory (RSS)"]
    panels = build_timeline(gpus)
    assert [p["title"] for p in panels] == ["CPU", "GPU utilisation", "host memory (RSS)", "GPU memory"]
    assert panels[0]["unit"] == "% of the machine's cores" and panels[2]["unit"] == panels[3]["unit"] == "bytes"
    assert panels[3]["y"] == {"min": 0, "max": 141 * 2**30}  # up to the largest device's capacity
    memory = panels[-1]
    assert [s["column"] for s in memory["series"]] == ["used0", "used1", "alloc", "resv"]
    values = plot_row(
        {"t": 1.0, "cpu_percent": 30.0, "proc_cpu_percent": 150.0, "rss": 2**31, "gpu0_util": 80.0,
         "gpu0_mem_used": 3 * 2**30, "gpu1_util": None, "cuda_allocated": 2**30},
        cores=2, gpus=[0, 1],
    )  # fmt: skip
    assert values["proc"] == 75.0 and values["rss"] == 2**31 and values["used0"] == 3 * 2**30
    assert values["alloc"] == 2**30
    assert values["util1"] is None and values["used1"] is None and values["rssc"] is None  # unobserved stays a gap
