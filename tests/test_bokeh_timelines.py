"""The summary's interactive bokeh timelines: the document's shape, when it is drawn, what a saved notebook keeps.

The figures are drawn by the JupyterLab extension (tests/ui/test_labextension.py clicks and hovers them);
here the kernel's side: one linked x range named for the extension, hover with the step number, CPU on
the live view's scale, and the rule that keeps bokeh's import out of short runs (docs/dashboard.md).
"""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import jupyter_perf
from jupyter_perf.report import Report
from jupyter_perf.ui import bokeh_timelines as bt
from jupyter_perf.ui.summary import REPORT_MIME
from jupyter_perf.ui.timeline_panels import machine_share

bokeh = pytest.importorskip("bokeh")

#: issue 13: a saved notebook grows by at most this per profiled cell.
MAX_CELL_GROWTH = 300 * 1024
#: A training-shaped loop of 100-ms steps (the step band needs a model, an optimizer).
LOOP = """
import time, torch
model = torch.nn.Linear(16, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range({steps}):
    loss = model(torch.randn(8, 16)).sum()
    loss.backward(); opt.step(); opt.zero_grad()
    time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def report() -> Report:
    return jupyter_perf.profile(LOOP.format(steps=15), {})


def test_every_panel_shares_one_x_range_named_for_the_extension(report):
    from bokeh.models import Range1d

    doc = bt.figures(report)
    plots = [child[0] for child in doc.children]
    ranges = {id(p.x_range) for p in plots}
    assert len(plots) >= 3 and len(ranges) == 1, "steps band, CPU and host memory zoom and pan together"
    (x_range,) = {p.x_range for p in plots}
    assert isinstance(x_range, Range1d) and x_range.name == bt.X_RANGE
    assert x_range.start == 0 and x_range.end >= report.timeline["t"][-1]
    item = json.dumps(bokeh.embed.json_item(doc))
    assert f'"name":"{bt.X_RANGE}"' in item.replace(" ", "")


def test_hover_names_the_step_and_the_phases(report):
    from bokeh.models import HoverTool

    doc = bt.figures(report)
    band, *panels = [child[0] for child in doc.children]
    band_tips = dict(next(t for t in band.tools if isinstance(t, HoverTool)).tooltips)
    assert band_tips["step"] == "@steps" and "forward" in band_tips and "wall" in band_tips
    for p in panels:
        tips = dict(next(t for t in p.tools if isinstance(t, HoverTool)).tooltips)
        assert "step" in tips and "time" in tips
    steps = band.renderers[0].data_source.data["steps"]
    assert steps[0] == "1" and steps[-1] == f"{report.steps:,}"


def test_cpu_is_a_percent_of_the_machine_as_in_the_live_view(report):
    doc = bt.figures(report)
    cpu = next(child[0] for child in doc.children if child[0].title.text.startswith("CPU"))
    assert (cpu.y_range.start, cpu.y_range.end) == (0, 100)
    assert list(cpu.yaxis.ticker.ticks) == [0, 50, 100], "the top is a labelled tick"
    data = cpu.renderers[0].data_source.data
    cores = report.environment["cpu_count"]
    expected = [machine_share(v, cores) for v in report.timeline["proc_cpu_percent"]]
    assert [round(float(v), 3) for v in data["proc"]] == pytest.approx([round(v, 3) for v in expected], abs=1e-3)


def test_memory_reads_in_a_binary_unit_up_to_a_labelled_top_tick(report):
    doc = bt.figures(report)
    memory = next(child[0] for child in doc.children if child[0].title.text.startswith("host memory"))
    unit = memory.yaxis.axis_label
    assert unit in ("KiB", "MiB", "GiB")
    scale = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    ticks = list(memory.yaxis.ticker.ticks)
    peak = max(v for v in report.timeline["rss"] if v is not None) / scale
    assert ticks[0] == 0 and ticks[-1] == memory.y_range.end >= peak, (ticks, peak)
    assert memory.xaxis.axis_label is None or doc.children[-1][0].xaxis.axis_label == "seconds since the start"
    assert bt.axis_ticks(363) == [0, 100, 200, 300, 400]  # as the live view: 363 MiB reads 0–400 MiB


def test_short_runs_keep_the_static_charts_unless_bokeh_is_already_imported(report, monkeypatch):
    short, long_ = Report(wall_time=1.0), Report(wall_time=bt.MIN_RUN_FOR_IMPORT_S)
    medium = Report(wall_time=bt.MIN_RUN_IMPORTED_S)
    assert bt.MIN_RUN_FOR_IMPORT_S * bt.IMPORT_SHARE >= bt.BOKEH_IMPORT_S, "the import is ≤ 10 % of the run"
    assert bt.worth_drawing(medium) and not bt.worth_drawing(short)  # bokeh is imported in this process
    monkeypatch.delitem(sys.modules, "bokeh")
    assert bt.worth_drawing(long_) and not bt.worth_drawing(medium)


def test_a_terminal_gets_no_figures(report):
    report.wall_time = 60.0
    assert bt.interactive_timelines(report) == {}, "no kernel here: text only"


# ------------------------------------------------------------ a real notebook
@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """Executed by nbclient: a short profiled cell with bokeh not imported, then, after the user's own
    ``import bokeh``, one long enough for the figures. Saved as a file, as a user's notebook would be."""
    profiled = "%%perfprofile\n" + LOOP.format(steps=35)
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext jupyter_perf"),
            new_code_cell("%%perfprofile\n" + LOOP.format(steps=3)),  # 1: 0.3 s
            new_code_cell("import sys; print('bokeh' in sys.modules)"),  # 2
            new_code_cell("import bokeh"),
            new_code_cell(profiled),  # 4: 3.5 s, bokeh imported
            new_code_cell(profiled),  # 5
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path_factory.mktemp("bokeh_nb")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path)}}).execute()
    saved = path / "saved.ipynb"
    nbformat.write(nb, str(saved))
    return nb, saved


def summary_output(cell):
    (out,) = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")
              and REPORT_MIME in o.get("data", {})]  # the summary, not the panel's record beside it
    return out["data"]


def test_a_short_run_neither_imports_bokeh_nor_carries_figures(notebook):
    nb, _ = notebook
    assert bt.TIMELINES_MIME not in summary_output(nb.cells[1])
    assert nb.cells[2].outputs[0]["text"].strip() == "False"


def test_a_long_enough_run_carries_figures_beside_the_static_svg(notebook):
    nb, _ = notebook
    for i in (4, 5):
        data = summary_output(nb.cells[i])
        assert 'class="jp-perf-chart"' in data["text/html"], "views without the extension keep the SVG"
        part = data[bt.TIMELINES_MIME]
        assert part["bokeh"].startswith(bt.BOKEHJS + ".")
        assert bt.X_RANGE in json.dumps(part["item"])


def test_the_saved_notebook_grows_at_most_300_kb_per_profiled_cell_without_bokehjs(notebook):
    nb, saved = notebook
    text = saved.read_text()
    per_cell = [len(json.dumps(nb.cells[i].outputs)) for i in (1, 4, 5)]
    assert max(per_cell) <= MAX_CELL_GROWTH, per_cell
    widgets = len(json.dumps(nb.metadata.get("widgets", {})))
    assert (len(text) - widgets) / 3 <= MAX_CELL_GROWTH
    for library in ("Bokeh.set_log_level", "bokeh-3.", "cdn.bokeh.org", "Bokeh.embed"):
        assert library not in text, f"BokehJS ({library!r}) is loaded by the extension, never saved"
