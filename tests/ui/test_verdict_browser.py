"""What a person sees after a profiled run in JupyterLab: the answer first, re-runs judged by what the fix targets.

Real planted problems (tests/scenarios.py), real clicks. The verdict box opens the summary with the
bottleneck in words and the top fix's live buttons; Apply & re-run of a leak fix is judged by the growth per
step (a slower step is not a regression), of a batch-size fix by samples/s with per-step rows per sample;
Undo marks the before/after out of date; no size anywhere reads in decimal units; the runs list has no "?".
One JupyterLab server for the module (tests/ui/conftest.py).
"""

from __future__ import annotations

import pytest
from scenarios import INPUT_PIPELINE, LAUNCH_OVERHEAD, MEMORY_LEAK
from test_labextension import LOAD, run_cell
from verdict_checks import decimal_sizes, live_buttons, verdict_box

pytestmark = pytest.mark.browser


def profiled(lab_notebook, notebook_file, name: str, setup: str, cell: str):
    """The notebook opened, its setup run and ``cell`` profiled; returns it (the profiled cell is index 2)."""
    notebook_file(name, [LOAD, setup, cell])
    nb = lab_notebook(name).open()
    for i in range(3):
        run_cell(nb, i)
    return nb


def card(nb, optimization: str):
    found = nb.cell(2).locator(f'.jpp-card[data-optimization="{optimization}"]')
    found.wait_for(state="visible", timeout=60_000)
    return found


def rerun(nb, optimization: str):
    """Apply & re-run on the card; waits for the before/after; returns the card and its comparison."""
    shown = card(nb, optimization)
    shown.locator('button[data-action="apply-rerun"]').click()
    nb.page.wait_for_selector(
        f'.jpp-card[data-optimization="{optimization}"]:is([data-state="remeasured"], [data-state="regression"])',
        timeout=180_000,
    )
    comparison = shown.locator(".jp-perf-comparison")
    comparison.wait_for(timeout=30_000)
    return shown, comparison


#: The WCAG contrast ratio of an element's text against what is drawn under it (its tint over the nearest opaque
#: background), computed in the page.
CONTRAST_JS = """el => {
  const rgba = s => (s.match(/[\\d.]+/g) || []).map(Number).concat([1]).slice(0, 4);
  const lum = ([r, g, b]) => [r, g, b]
    .map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let under = [255, 255, 255];
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) { under = c.slice(0, 3); break; } }
  }
  for (const c of layers.reverse()) { under = under.map((u, i) => c[i] * c[3] + u * (1 - c[3])); }
  const text = rgba(getComputedStyle(el).color).slice(0, 3);
  const [a, b] = [lum(text), lum(under)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def contrast(locator) -> float:
    return locator.evaluate(CONTRAST_JS)


def outputs(nb) -> str:
    return nb.cell(2).locator(".jp-Cell-outputArea").inner_text()


def test_the_verdict_box_opens_the_summary_with_the_bottleneck_and_the_top_fix(lab_notebook, notebook_file,
                                                                             ui_artifacts):
    nb = profiled(lab_notebook, notebook_file, "verdict.ipynb", INPUT_PIPELINE.setup,
                  "%%perfprofile --no-live\n" + INPUT_PIPELINE.cell)
    box = verdict_box(nb.cell(2))
    assert box.get_attribute("data-bottleneck") == "input_pipeline"
    line = box.locator(".jpp-verdict-line").inner_text()
    assert line.startswith("The model waits for data ") and line.endswith("% of each step"), line
    top = box.locator(".jpp-verdict-actions").get_attribute("data-optimization")
    buttons = live_buttons(box, top)
    assert buttons["apply"].inner_text() == "Apply" and buttons["apply-rerun"].inner_text() == "Apply & re-run"
    assert "expected ×" in box.inner_text() or "gain: measure with Apply & re-run" in box.inner_text()
    # one list of fixes: the cards; the summary lists none of its own
    assert nb.cell(2).locator(".jp-perf-summary .jp-perf-recs").count() == 0
    assert nb.cell(2).locator(".jpp-card").count() >= 1
    text = outputs(nb)
    assert "—:" not in text and not decimal_sizes(text), decimal_sizes(text)
    nb.cell(2).screenshot(path=str(ui_artifacts / "verdict-lab.png"))

    # the card names the cell it rewrites by its prompt, and the name takes you there: active, flashed
    link = card(nb, "dataloader.workers").locator(".jpp-cell-link").first
    assert link.inner_text() == "cell [2]"
    link.click()
    nb.page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 1")
    assert "jp-perf-edited" in nb.cell(1).get_attribute("class")

    # the diff's deleted line stays readable in the dark theme: theme-coloured text on a tint, not red on red
    workers = card(nb, "dataloader.workers")
    workers.locator("summary").first.click()
    nb.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    try:
        nb.page.wait_for_function("() => document.body.dataset.jpThemeName === 'JupyterLab Dark'", timeout=30_000)
        deleted = workers.locator(".jpp-diff .jpp-del").first
        assert contrast(deleted) >= 4.5, contrast(deleted)
        # each line on a line of its own, from the left edge: the added line below the deleted one, in view
        pre, removed, added = (box.bounding_box() for box in (workers.locator(".jpp-diff"), deleted,
                                                              workers.locator(".jpp-diff .jpp-add").first))
        assert added["y"] >= removed["y"] + removed["height"] - 1 and added["x"] - pre["x"] < 20, (removed, added)
        workers.screenshot(path=str(ui_artifacts / "verdict-card-dark.png"))
    finally:
        nb.command("apputils:change-theme", {"theme": "JupyterLab Light"})


def test_a_leak_fix_is_judged_by_its_growth_per_step_and_undo_dates_the_comparison(lab_notebook, notebook_file,
                                                                                 ui_artifacts):
    # sampled at 50 Hz: a one-second run then has enough samples past the warm-up to fit a line
    nb = profiled(lab_notebook, notebook_file, "leak.ipynb", MEMORY_LEAK.setup,
                  "%%perfprofile --no-live --interval 0.02\n" + MEMORY_LEAK.cell)
    box = verdict_box(nb.cell(2))
    assert box.get_attribute("data-bottleneck") == "memory_leak"
    assert box.locator(".jpp-verdict-line").inner_text().startswith("Memory grows ")
    shown, comparison = rerun(nb, "memory.release_graph")
    judged = comparison.locator(".jpp-judged").inner_text()
    assert "judged by " in judged and "growth per step" in judged and judged.endswith("better"), judged
    assert shown.get_attribute("data-state") == "remeasured"
    assert "regression" not in outputs(nb) and comparison.locator(".alert").count() == 0
    assert "/step" in comparison.locator("tr.jpp-judged-row").inner_text()
    nb.cell(2).screenshot(path=str(ui_artifacts / "verdict-leak-rerun.png"))

    shown.locator('button[data-action="undo"]').click()
    nb.page.wait_for_selector('.jpp-card[data-optimization="memory.release_graph"][data-state="undone"]',
                              timeout=60_000)
    dated = shown.locator(".jp-perf-comparison.jpp-outdated")
    dated.wait_for(timeout=30_000)
    assert "out of date" in dated.inner_text()
    text = outputs(nb)
    assert "undone: undone:" not in text and not decimal_sizes(text), decimal_sizes(text)

    nb.command("jupyter-perf:show-runs")
    runs = nb.page.locator("#jupyter-perf-runs")
    runs.locator("li").first.wait_for(timeout=30_000)
    assert "?" not in runs.inner_text(), runs.inner_text()


def test_a_batch_size_fix_is_judged_by_samples_per_second_with_no_worse_per_step_rows(lab_notebook, notebook_file,
                                                                                    ui_artifacts):
    nb = profiled(lab_notebook, notebook_file, "batch.ipynb", LAUNCH_OVERHEAD.setup,
                  "%%perfprofile --no-live\n" + LAUNCH_OVERHEAD.cell)
    verdict_box(nb.cell(2))
    shown, comparison = rerun(nb, "dataloader.batch_size")
    judged = comparison.locator(".jpp-judged").inner_text()
    assert "judged by samples/s" in judged and judged.endswith("better"), judged
    rows = comparison.locator("tbody tr").all_inner_texts()
    # the rates and times, per sample: none worse (a bigger batch may hold more memory: its peak rows may say so)
    timing = [r for r in rows if not r.startswith("peak")]
    assert len(timing) >= 4 and not [r for r in timing if r.rstrip().endswith("worse")], rows
    assert not [r for r in rows if r.startswith("time per step") or r.startswith("steps/s")], rows
    assert "times are per sample" in comparison.inner_text()
    assert "regression" not in outputs(nb) and shown.get_attribute("data-state") == "remeasured"
    assert not decimal_sizes(outputs(nb))
    nb.cell(2).screenshot(path=str(ui_artifacts / "verdict-batch-rerun.png"))
