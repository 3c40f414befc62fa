"""The JupyterLab extension in a real browser: loaded, rewrites the right cell, refuses stale edits,
honours clicks while a cell runs, and keeps a moving status-bar item.

One JupyterLab server for the module (tests/ui/conftest.py); each test opens
its own notebook with its own kernel. Cells are run one at a time, as a
person would: the kernel only hears the extension's answer to its hello once
it is idle again. Timings go to the artifacts folder.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import time

import pytest

pytestmark = pytest.mark.browser

CHANGED = "the cell changed since it was profiled — nothing was rewritten"
REFUSED = "cell [2] was edited since it ran, so nothing was changed: run it as it is now and profile again"

LOAD = "%load_ext jupyter_perf"
LOADER = """# données synthétiques: this cell builds the DataLoader
import torch
from torch.utils.data import DataLoader, TensorDataset
data = TensorDataset(torch.randn(512, 8), torch.randn(512, 1))
loader = DataLoader(data, batch_size=32)
"""
PROFILED = """%%perfprofile -o rep
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(3):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
"""
# The optimization the report recommends for this cell (input_pipeline); named rather than taken from
# rep.recommendations so that a change of ranking does not turn this test into a diagnosis test.
APPLY = ('import jupyter_perf\n'
         'change = jupyter_perf.apply("dataloader.workers", globals(), report=rep)\n'
         'print(change.status)')
UNDO = "change.undo()\nprint(change.status, loader.num_workers)"
RESULTS = ("from jupyter_perf import state\n"
           "print(state.current().channel.ready, list(state.current().channel.results.values()))")


# ------------------------------------------------------------------ helpers
def run_cell(nb, index: int) -> None:
    """Run one cell and wait until it finished (the command's promise) and the kernel is idle."""
    nb.page.evaluate(
        "i => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
        " return window.jupyterapp.commands.execute('notebook:run-cell'); }",
        index,
    )
    nb.wait_idle()


def start_cell(nb, index: int) -> None:
    """Start running one cell and return at once."""
    nb.page.evaluate(
        "i => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
        " window.jupyterapp.commands.execute('notebook:run-cell'); }",
        index,
    )


def source(nb, index: int) -> str:
    return nb.page.evaluate(
        "i => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource()", index
    )


def wait_source(nb, index: int, predicate_js: str, timeout_s: float = 30) -> float:
    """Wait until the cell's source satisfies ``predicate_js`` (a JS expression of ``s``); seconds waited."""
    t0 = time.perf_counter()
    nb.page.wait_for_function(
        f"i => {{ const s = window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource();"
        f" return {predicate_js}; }}",
        arg=index,
        timeout=timeout_s * 1000,
    )
    return time.perf_counter() - t0


def output_text(nb, index: int) -> str:
    return nb.cell(index).locator(".jp-OutputArea").inner_text()


def saved_source(path, index: int) -> str:
    return "".join(json.loads(path.read_text())["cells"][index]["source"])


def wait_saved(path, index: int, expected: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            saved = saved_source(path, index)
        except json.JSONDecodeError:  # read mid-write: the server rewrites the file in place
            saved = None
        if saved == expected:
            return
        assert time.monotonic() < deadline, f"saved cell {index} is {saved!r}"
        time.sleep(0.1)


def cell_ids(path) -> list[str]:
    return [cell["id"] for cell in json.loads(path.read_text())["cells"]]


def record(ui_artifacts, name: str, values: dict) -> None:
    print(f"{name}:", values)
    (ui_artifacts / f"{name}.json").write_text(json.dumps(values, indent=2))


# -------------------------------------------------------------------- tests
def test_extension_loaded_and_channel_survives_a_reload(lab_notebook, notebook_file):
    ready = "from jupyter_perf import state\nprint('ready:', state.current().channel.ready)"
    notebook_file("loaded.ipynb", [LOAD, ready, "state.current().channel.ready = False"])
    nb = lab_notebook("loaded.ipynb").open()
    page = nb.page
    assert page.evaluate("() => window.jupyterapp.isPluginActivated('jupyter-perf:plugin')")

    run_cell(nb, 0)  # the kernel says hello; the extension answers ready
    run_cell(nb, 1)
    assert "ready: True" in output_text(nb, 1)

    # A reloaded page never saw the comm open: it must take the kernel's comm over and say ready again.
    # The take-over is asynchronous (comm info request, then the comm): a cell run at once may precede it.
    run_cell(nb, 2)
    page.reload()
    nb.open()
    deadline = time.monotonic() + 15
    run_cell(nb, 1)
    while "ready: True" not in output_text(nb, 1) and time.monotonic() < deadline:
        time.sleep(0.5)
        run_cell(nb, 1)
    assert "ready: True" in output_text(nb, 1)


def test_apply_rewrites_the_cell_that_built_the_loader_and_undo_restores_it(
    lab_notebook, notebook_file, ui_artifacts
):
    path = notebook_file("apply.ipynb", [LOAD, LOADER, PROFILED, APPLY, UNDO, RESULTS])
    nb = lab_notebook("apply.ipynb").open()
    for i in range(3):
        run_cell(nb, i)
    original = source(nb, 1)
    assert original == LOADER

    start_cell(nb, 3)
    try:
        waited = wait_source(nb, 1, "s.includes('num_workers=')")  # from the Apply cell's start
    except Exception:  # noqa: BLE001 - whatever kept the rewrite from showing, the test says what Apply said
        nb.wait_idle()
        pytest.fail(f"cell 1 was not rewritten; the Apply cell said: {output_text(nb, 3)}")
    nb.wait_idle()
    assert "applied" in output_text(nb, 3)
    edited = source(nb, 1)
    assert "persistent_workers=True" in edited and edited.startswith("# données")
    assert "jp-perf-edited" in nb.cell(1).get_attribute("class")  # the brief highlight
    assert source(nb, 2) == PROFILED  # the profiled cell is untouched
    wait_saved(path, 1, edited)  # saved after the rewrite (setting saveAfterEdit)

    run_cell(nb, 4)
    assert "undone 0" in output_text(nb, 4)
    wait_source(nb, 1, "!s.includes('num_workers=')")
    assert source(nb, 1) == original  # byte for byte
    wait_saved(path, 1, original)

    run_cell(nb, 5)
    assert "[{'ok': True, 'reason': ''}, {'ok': True, 'reason': ''}]" in output_text(nb, 5)
    record(ui_artifacts, "labextension-apply", {"apply_cell_start_to_rewrite_s": round(waited, 3)})


def test_apply_refuses_when_the_cell_was_edited_by_hand(lab_notebook, notebook_file, ui_artifacts):
    path = notebook_file("refuse.ipynb", [LOAD, LOADER, PROFILED, APPLY, RESULTS])
    nb = lab_notebook("refuse.ipynb").open()
    for i in range(3):
        run_cell(nb, i)

    editor = nb.cell(1).locator(".cm-content")
    editor.click()
    nb.page.keyboard.press("Control+End")
    nb.page.keyboard.type("\nprint('edited by hand')")
    by_hand = source(nb, 1)
    assert by_hand.endswith("print('edited by hand')")

    # The extension told the kernel the cell's text changed: the kernel refuses before changing
    # anything, so no edit is ever sent (and none refused).
    run_cell(nb, 3)
    shown = output_text(nb, 3)
    assert shown.count(REFUSED) == 1, shown  # one message, naming the cell by its prompt, saying what works
    assert not re.search(r"cell [0-9a-f]{8}", shown), shown  # never the notebook's internal cell id
    nb.page.screenshot(path=str(ui_artifacts / "labextension-refused.png"))
    run_cell(nb, 4)
    assert output_text(nb, 4).strip().endswith("[]"), output_text(nb, 4)
    assert source(nb, 1) == by_hand  # nothing was rewritten
    assert "num_workers" not in saved_source(path, 1)


def test_click_during_a_running_cell_is_honoured(lab_notebook, notebook_file, ui_artifacts):
    target = "x = 1  # the cell the button rewrites\n"
    new = "x = 2  # rewritten by the button\n"
    path = notebook_file("click.ipynb", [LOAD, target, "placeholder", "import time\ntime.sleep(6)"])

    def button(css: str, expected: str) -> str:
        """A stand-in panel button that asks the extension to rewrite cell 1, expecting ``expected`` there."""
        detail = {
            "action": "apply",
            "optimization": "test.noop",
            "edits": [{
                "cell_id": cell_ids(path)[1],
                "expected_source_sha256": hashlib.sha256(expected.encode()).hexdigest(),
                "new_source": new,
            }],
        }  # fmt: skip
        dispatch = (
            "this.dispatchEvent(new CustomEvent('jupyter-perf-action',"
            f" {{bubbles: true, composed: true, cancelable: true, detail: {json.dumps(detail)}}}))"
        )
        return f'<button class="{css}" onclick="{html.escape(dispatch)}">Apply</button>'

    buttons = button("jpp-test-action", target) + button("jpp-test-stale", "what the kernel last saw\n")
    panel_cell = (
        "import jupyter_perf\nfrom IPython.display import HTML, display\n"
        "def panel_action(payload):  # stands in for the panel's entry point\n"
        "    print('panel_action ran:', payload['optimization'], [r['ok'] for r in payload['edit_results']],"
        " payload['source_cell_id'] is not None, [r['reason'] for r in payload['edit_results']])\n"
        "jupyter_perf.panel_action = panel_action\n"
        f"display(HTML({buttons!r}))"
    )
    nb = lab_notebook("click.ipynb").open()
    nb.page.evaluate(
        "src => window.jupyterapp.shell.currentWidget.content.widgets[2].model.sharedModel.setSource(src)", panel_cell
    )
    for i in range(3):
        run_cell(nb, i)
    assert source(nb, 1) == target

    start_cell(nb, 3)
    nb.page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                              " === 'busy'")
    t0 = time.perf_counter()
    nb.cell(2).locator(".jpp-test-action").click()
    wait_source(nb, 1, f"s === {json.dumps(new)}", timeout_s=5)
    edit_s = time.perf_counter() - t0
    state = nb.cell(2).locator(".jpp-test-action").get_attribute("data-jpp-state")
    assert nb.kernel_status() == "busy", "the sleep ended before the checks: they prove nothing"
    assert state == "queued"
    assert "panel_action ran" not in output_text(nb, 2)

    nb.wait_idle()
    nb.page.wait_for_selector('.jpp-test-action[data-jpp-state="done"]', timeout=15_000)
    assert "panel_action ran: test.noop [True] True" in output_text(nb, 2)

    # The rewrite is one undo step of the cell's editor.
    nb.cell(1).locator(".cm-content").click()
    nb.page.keyboard.press("Control+z")
    wait_source(nb, 1, f"s === {json.dumps(target)}", timeout_s=5)

    # An edit computed from text the cell no longer holds is refused by the extension itself.
    nb.cell(2).locator(".jpp-test-stale").click()
    nb.page.wait_for_selector('.jpp-test-stale[data-jpp-state="done"]', timeout=15_000)
    nb.page.wait_for_function(f"() => document.body.innerText.includes({json.dumps(CHANGED)})", timeout=15_000)
    assert f"panel_action ran: test.noop [False] True ['{CHANGED}']" in output_text(nb, 2)
    assert source(nb, 1) == target
    record(ui_artifacts, "labextension-click", {"click_to_rewrite_while_busy_s": round(edit_s, 3)})


def test_status_bar_item_moves_and_lists_profiled_runs(lab_notebook, notebook_file, ui_artifacts):
    burn = "import time\nt0 = time.perf_counter()\nblob = []\nwhile time.perf_counter() - t0 < 5:\n" \
           "    blob.append(bytearray(20_000_000)); blob = blob[-20:]"
    notebook_file("status.ipynb", [LOAD, LOADER, PROFILED, burn])
    nb = lab_notebook("status.ipynb").open()
    page = nb.page
    item = page.locator(".jp-perf-status")
    item.wait_for(state="visible", timeout=15_000)
    page.wait_for_function("() => /^CPU \\d+% · RAM [\\d.,]+ [KMGT]?i?B$/.test("
                           "document.querySelector('.jp-perf-status').textContent)", timeout=15_000)
    for i in range(3):
        run_cell(nb, i)

    start_cell(nb, 3)
    texts = []
    for _ in range(16):
        texts.append(item.text_content())
        page.wait_for_timeout(500)
    nb.wait_idle()
    distinct = sorted(set(texts))
    record(ui_artifacts, "labextension-status", {"texts": texts, "distinct": len(distinct)})
    assert len(distinct) >= 3, texts
    assert "no NVIDIA GPU" in item.get_attribute("title") or "NVML" in item.get_attribute("title")

    item.click()
    runs = page.locator("#jupyter-perf-runs")
    runs.wait_for(state="visible")
    rows = runs.locator("li")
    rows.first.wait_for()
    assert rows.count() == 1

    def field(name: str) -> str:
        return rows.first.locator(f".jp-perf-run-{name}").text_content()

    page.screenshot(path=str(ui_artifacts / "labextension-status-and-runs.png"))
    assert field("cell") == "[3]" and field("time").endswith(" s"), rows.first.inner_text()
    assert field("bottleneck") not in ("", "?") and field("throughput").endswith("/s"), rows.first.inner_text()
    assert "\nstarted " in rows.first.get_attribute("title")  # read from the summary's JSON part, not its HTML
    page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    rows.first.click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2")


# A summary as notebooks saved before the JSON part held it: HTML only (the headline and the heading the
# runs list falls back to reading).
SAVED_SUMMARY = (
    '<div class="jp-perf-summary"><style></style><div><b>jupyter-perf</b> · <span class="muted">wall time</span>'
    ' <b>4.56 s</b> · <span class="muted">steps</span> <b>120 (DataLoader batches)</b> · <span class="muted">'
    'steps/s</span> <b>26.3</b> · <span class="muted">samples/s</span> <b>842</b></div>'
    "<h4>Step breakdown (mean 38.0 ms)</h4><h4>Bottleneck: input_pipeline</h4><div>the device waits</div></div>"
)


def test_runs_list_reads_the_json_part_and_summaries_saved_before_it(lab_server, lab_notebook):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from jupyter_perf.report import Comparison, Recommendation, Report
    from jupyter_perf.ui.comparison import mimebundle as comparison_mimebundle
    from jupyter_perf.ui.summary import REPORT_MIME, mimebundle, report_part

    report = Report(started_at="2024-05-01T10:00:00", wall_time=12.3, steps=1200, bottleneck="input_pipeline",
                    throughput={"steps_per_s": 10.0, "samples_per_s": 320.0},
                    recommendations=[Recommendation("dataloader.workers", "load batches in parallel", 1.8)])
    bundle = mimebundle(report)
    assert REPORT_MIME in bundle
    bundle["text/html"] = "<p>(a summary whose HTML the list must not need)</p>"
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    failed = report_part(report) | {"wall_time": None, "throughput": {"steps_per_s": None, "samples_per_s": None},
                                     "error": {"type": "RuntimeError", "message": "boom", "oom": False}}
    stopped = report_part(report) | {"interrupted": True}
    nb.cells = [
        new_code_cell("%%perfprofile\n...", execution_count=3, outputs=[new_output("display_data", data=bundle)]),
        new_code_cell("%%perfprofile\n...", execution_count=4, outputs=[
            new_output("display_data", data={"text/html": SAVED_SUMMARY, "text/plain": "jupyter-perf"})]),
        new_code_cell("%%perfprofile --compare rep\n...", execution_count=5, outputs=[
            new_output("display_data", data=comparison_mimebundle(Comparison(report, report)))]),
        new_code_cell("%%perfprofile\n...", execution_count=6, outputs=[
            new_output("display_data", data={"text/plain": "jupyter-perf", REPORT_MIME: failed})]),
        new_code_cell("%%perfprofile\n...", execution_count=7, outputs=[
            new_output("display_data", data={"text/plain": "jupyter-perf", REPORT_MIME: stopped})]),
    ]  # fmt: skip
    nbformat.write(nb, str(lab_server.root / "runs.ipynb"))

    # opened as a saved notebook is reopened: the list is read once its outputs have loaded
    notebook = lab_notebook("runs.ipynb").open(kernel_ready=False)
    notebook.command("jupyter-perf:show-runs")
    rows = notebook.page.locator("#jupyter-perf-runs li")
    rows.first.wait_for()
    assert "No profiled run" not in notebook.page.locator("#jupyter-perf-runs").inner_text()
    fields = ("cell", "time", "bottleneck", "throughput", "state")
    listed = [
        {name: row.locator(f".jp-perf-run-{name}").all_text_contents() for name in fields}
        | {"title": row.get_attribute("title")}
        for row in rows.all()
    ]
    title = "Go to the cell\nstarted 2024-05-01T10:00:00, 1,200 steps"
    recommended = "\nrecommended: dataloader.workers (×1.80)"
    assert listed == [  # the comparison is not a run; what a run did not measure is left out, not "?"
        {"cell": ["[3]"], "time": ["12.3 s"], "bottleneck": ["input_pipeline"], "throughput": ["320 samples/s"],
         "state": [], "title": title + recommended},
        {"cell": ["[4]"], "time": ["4.56 s"], "bottleneck": ["input_pipeline"], "throughput": ["842 samples/s"],
         "state": [], "title": "Go to the cell"},
        {"cell": ["[6]"], "time": [], "bottleneck": ["input_pipeline"], "throughput": [],
         "state": ["failed: RuntimeError"], "title": title + "\nerror: RuntimeError: boom" + recommended},
        {"cell": ["[7]"], "time": ["12.3 s"], "bottleneck": ["input_pipeline"], "throughput": ["320 samples/s"],
         "state": ["interrupted"], "title": title + "\ninterrupted: Ctrl-C stopped the run" + recommended},
    ]  # fmt: skip
    assert "?" not in notebook.page.locator("#jupyter-perf-runs").inner_text()
