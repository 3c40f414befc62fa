"""The same summary in Notebook 7 (the ``notebook`` package, one document per page), not only in JupyterLab.

Notebook 7 renders outputs with JupyterLab's components but in its own page and shell, where the jupyter-perf
extension and the widgets' ES modules must load as well: the verdict box opens the summary, its buttons are
the panel's live ones, and Apply from the box rewrites the cell that built the DataLoader. The module's own
server replaces conftest's ``lab_server`` (every other fixture is conftest's).
"""

from __future__ import annotations

import pytest
from lab_browser import LabServer
from scenarios import INPUT_PIPELINE
from test_labextension import LOAD, run_cell, source, wait_source
from verdict_checks import decimal_sizes, live_buttons, verdict_box

pytestmark = pytest.mark.browser

NEW_LOADER = "num_workers=2, persistent_workers=True"


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """``jupyter notebook`` (Notebook 7) on 127.0.0.1 with a fresh root directory, stopped after the module."""
    pytest.importorskip("notebook", minversion="7")
    server = LabServer(tmp_path_factory.mktemp("nb7-root"), tmp_path_factory.mktemp("nb7-home"), app="notebook")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_the_verdict_box_renders_and_its_apply_rewrites_the_cell_in_notebook_7(lab_notebook, notebook_file,
                                                                              ui_artifacts):
    notebook_file("nb7.ipynb", [LOAD, INPUT_PIPELINE.setup, "%%perfprofile --no-live\n" + INPUT_PIPELINE.cell])
    nb = lab_notebook("nb7.ipynb").open()
    assert nb.page.locator("#jp-NotebookPanel, .jp-NotebookPanel").count() >= 1
    assert "/notebooks/nb7.ipynb" in nb.page.url  # Notebook 7's page, not JupyterLab's
    for i in range(3):
        run_cell(nb, i)
    box = verdict_box(nb.cell(2))
    assert box.get_attribute("data-bottleneck") == "input_pipeline"
    assert box.locator(".jpp-verdict-line").inner_text().startswith("The model waits for data ")
    top = box.locator(".jpp-verdict-actions").get_attribute("data-optimization")
    assert top == "dataloader.workers", top
    buttons = live_buttons(box, top)
    nb.cell(2).screenshot(path=str(ui_artifacts / "verdict-notebook7.png"))

    buttons["apply"].click()
    wait_source(nb, 1, f"s.includes('{NEW_LOADER}')", timeout_s=60)
    nb.page.wait_for_selector('.jpp-card[data-optimization="dataloader.workers"][data-state="applied"]',
                              timeout=60_000)
    assert source(nb, 1) == INPUT_PIPELINE.setup.replace("batch_size=8)", f"batch_size=8, {NEW_LOADER})")
    text = nb.cell(2).locator(".jp-Cell-outputArea").inner_text()
    assert not decimal_sizes(text), decimal_sizes(text)
