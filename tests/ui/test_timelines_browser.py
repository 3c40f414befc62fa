"""The live view's first seconds and the settled bokeh timelines, in JupyterLab with the extension.

One notebook, run once: the user imports bokeh (so a 4-s run gets interactive figures: the rule in
``jupyter_perf/ui/bokeh_timelines.py``), then a profiled loop of one step every 100 ms, whose cell
records when its body started and when its first step ended (``time.time()``: the page's
``Date.now()`` reads the same clock), then a second profiled loop. While the first runs, the page looks
at its header every 50 ms. Then the settled summaries: the bokeh figures replace the static charts,
answer a box zoom (the shared ``jp-perf-x`` range, which the extension mirrors on its element, moves)
and a hover (a tooltip with the step number); BokehJS was fetched once for both; the saved notebook
keeps the static SVG in each summary's HTML for views without the extension.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser

#: issue 13: the steps line shows a count within a second of the first step; the clock within 0.5 s.
FIRST_COUNT_S = 1.0
CLOCK_ERROR_S = 0.5
#: Share of looks whose clock reading must be within CLOCK_ERROR_S: a look can come just after the half
#: second at which the whole-second reading was due and before the page's timer wrote it (≈ 10 ms later,
#: more on a loaded machine); no look may be further off than CLOCK_WORST_S.
CLOCK_SHARE = 0.9
CLOCK_WORST_S = 0.75

SETUP = "%load_ext jupyter_perf\nimport bokeh, json, time, torch"
LOOP = """%%perfprofile
T0 = time.time()
model = torch.nn.Linear(16, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
FIRST = None
for _ in range({steps}):
    loss = model(torch.randn(8, 16)).sum()
    loss.backward(); opt.step(); opt.zero_grad()
    time.sleep(0.1)
    if FIRST is None:
        FIRST = time.time()
"""
TIMES = "print(json.dumps({'T0': T0, 'FIRST': FIRST}))"

# Every 50 ms: the page's clock and the watched cell's prompt, elapsed time and steps line.
WATCH = """
(index) => {
  window.__jppLooks = [];
  window.__jppWatch = setInterval(() => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
    const text = (selector) => {
      const e = cell && cell.querySelector(selector);
      return e ? e.textContent : null;
    };
    window.__jppLooks.push({
      wall: Date.now() / 1000, prompt: (text('.jp-InputPrompt') || '').trim(), status: text('.jpp-status'),
      elapsed: text('[data-jpp="elapsed"]'), throughput: text('[data-jpp="throughput"]'),
    });
  }, 50);
}
"""
HOST = ".jp-CodeCell >> nth={} >> .jp-perf-timelines"


def shown_seconds(text: str | None) -> float | None:
    """The header's elapsed time (` · 3 s`, ` · 1 min 2 s`) in seconds."""
    if not text:
        return None
    m = re.fullmatch(r"\s*·\s*(?:(\d+) min\s*)?(\d+) s\s*", text)
    return None if m is None else 60 * int(m.group(1) or 0) + int(m.group(2))


def shown_steps(text: str | None) -> int:
    m = re.search(r"([\d,]+) steps?\b", text or "")
    return int(m.group(1).replace(",", "")) if m else 0


@pytest.fixture(scope="module")
def ran(lab_server, browser_context, tmp_path_factory):
    from lab_browser import LabNotebook, write_notebook

    path = write_notebook(lab_server.root / "timelines.ipynb", [SETUP, LOOP.format(steps=40), TIMES,
                                                                 LOOP.format(steps=35)])
    page = browser_context.new_page()
    page.set_default_timeout(60_000)
    nb = LabNotebook(page, lab_server, path.name).open()
    page.evaluate(WATCH, 1)
    nb.run_all()
    nb.wait_done(timeout=240)
    looks = page.evaluate("() => { clearInterval(window.__jppWatch); return window.__jppLooks; }")
    times = json.loads(nb.cell(2).locator(".jp-OutputArea-output").inner_text())
    yield nb, looks, times, path
    page.close()


def test_the_steps_line_counts_within_a_second_of_the_first_step(ran, ui_artifacts):
    _nb, looks, times, _path = ran
    counted = [look for look in looks if shown_steps(look["throughput"]) > 0]
    assert counted, "the steps line never showed a count"
    after = counted[0]["wall"] - times["FIRST"]
    (ui_artifacts / "live-first-count.json").write_text(json.dumps({"first_count_after_first_step_s": after}))
    print(f"steps line counted {after:.2f} s after the first step ended")
    assert after <= FIRST_COUNT_S
    assert "steps/s" in counted[-1]["throughput"]


def test_the_elapsed_time_reads_the_real_time(ran, ui_artifacts):
    _nb, looks, times, _path = ran
    errors = [shown_seconds(look["elapsed"]) - (look["wall"] - times["T0"]) for look in looks  # while it runs:
              if look["status"] == "profiling" and shown_seconds(look["elapsed"]) is not None]  # not 'finishing'
    assert len(errors) >= 20, f"the elapsed time was shown in only {len(errors)} looks"
    within = sum(abs(e) <= CLOCK_ERROR_S for e in errors) / len(errors)
    worst = max(errors, key=abs)
    (ui_artifacts / "live-clock.json").write_text(json.dumps({"looks": len(errors), "within_0.5_s": within,
                                                              "worst_s": worst}))
    print(f"elapsed time: {within:.0%} of {len(errors)} looks within {CLOCK_ERROR_S} s, worst {worst:+.2f} s")
    assert within >= CLOCK_SHARE and abs(worst) <= CLOCK_WORST_S


def test_bokeh_figures_replace_the_static_charts_and_bokehjs_loads_once(ran):
    nb, *_ = ran
    page = nb.page
    for index in (1, 3):
        host = page.locator(HOST.format(index))
        host.wait_for()
        assert host.get_attribute("data-x-start") == "0"
        assert nb.cell(index).locator("svg.jp-perf-chart").first.is_hidden(), "the figures take the charts' place"
    chunks = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)"
                           ".filter(n => n.includes('bokehjs'))")
    assert len(chunks) == 1, chunks


def frame_box(page, index: int) -> dict:
    """The steps band's plotting area on the page (bokeh's frame of the first figure)."""
    host = page.locator(HOST.format(index)).bounding_box()
    return {"left": host["x"] + 70, "right": host["x"] + host["width"] - 60, "y": host["y"] + 60}


def test_a_box_zoom_narrows_the_shared_x_range(ran, ui_artifacts):
    nb, *_ = ran
    page = nb.page
    host = page.locator(HOST.format(1))
    host.scroll_into_view_if_needed()
    before = float(host.get_attribute("data-x-end"))
    box = frame_box(page, 1)
    width = box["right"] - box["left"]
    page.mouse.move(box["left"] + 0.3 * width, box["y"])
    page.mouse.down()
    page.mouse.move(box["left"] + 0.45 * width, box["y"], steps=5)
    page.mouse.move(box["left"] + 0.6 * width, box["y"], steps=5)
    page.mouse.up()
    page.wait_for_function("([i, end]) => { const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i];"
                           " const e = cell.querySelector('.jp-perf-timelines');"
                           " return e && Number(e.dataset.xEnd) < end; }", arg=[1, before], timeout=10_000)
    start, end = float(host.get_attribute("data-x-start")), float(host.get_attribute("data-x-end"))
    page.screenshot(path=str(ui_artifacts / "timelines-zoomed.png"), full_page=True)
    assert 0 < start < end < before
    assert end - start == pytest.approx(0.3 * before, rel=0.35), (start, end, before)


def test_hover_shows_the_step_number(ran, ui_artifacts):
    nb, *_ = ran
    page = nb.page
    page.locator(HOST.format(3)).scroll_into_view_if_needed()
    box = frame_box(page, 3)
    page.mouse.move(box["left"] + 0.5 * (box["right"] - box["left"]), box["y"] - 5)
    page.mouse.move(box["left"] + 0.5 * (box["right"] - box["left"]), box["y"])
    # BokehJS puts its tooltips at the end of the document; the band's is the one that shows the wall time
    tooltip = page.locator(".bk-tooltip-content").filter(has_text="wall")
    try:
        tooltip.wait_for(timeout=10_000)
    finally:
        page.screenshot(path=str(ui_artifacts / "timelines-hover.png"), full_page=True)
    text = tooltip.inner_text()
    assert re.search(r"step\s*:?\s*\d+", text), text
    assert "forward" in text and "ms" in text


def test_the_saved_html_keeps_the_static_svg(ran):
    nb, _looks, _times, path = ran
    nb.save()
    saved = json.loads(path.read_text())
    for index in (1, 3):
        (data,) = [o["data"] for o in saved["cells"][index]["outputs"]
                   if "application/vnd.jupyter-perf.timelines+json" in o.get("data", {})]
        html = "".join(data["text/html"])
        assert '<svg class="jp-perf-chart"' in html, "GitHub, nbviewer and nbconvert show the static charts"
