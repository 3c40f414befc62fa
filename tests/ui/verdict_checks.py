"""What the browser tests read off a profiled cell's summary, shared by the JupyterLab and Notebook 7 modules.

The verdict box must be the summary's first visible block and hold the bottleneck and the top fix's live
buttons (jupyter_perf/ui/verdict.py, labextension/src/panel/verdict.ts); sizes anywhere in the output must be
binary (units.py), never "MB" or "GB".
"""

from __future__ import annotations

import re

#: A size in decimal units as a person would read it: "6.3 MB", "12 GB", "512 kB".
DECIMAL_SIZE = re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:[kKMGTP]B)\b")


def decimal_sizes(text: str) -> list[str]:
    return DECIMAL_SIZE.findall(text)


def first_block(summary) -> str:
    """The class of the summary's first element that is drawn (its <style> is not)."""
    return summary.evaluate("s => [...s.children].find(c => c.tagName !== 'STYLE').className")


def verdict_box(cell):
    """The cell's verdict box, checked to open its summary; returns its locator."""
    summary = cell.locator(".jp-perf-summary").first
    summary.wait_for(timeout=60_000)
    assert first_block(summary) == "jp-perf-verdict", summary.inner_html()[:500]
    return summary.locator(".jp-perf-verdict")


def live_buttons(box, optimization: str) -> dict[str, object]:
    """The panel's Apply and Apply & re-run, drawn into the box's slot once the panel's view is up."""
    slot = box.locator(f'.jpp-verdict-actions[data-optimization="{optimization}"][data-live="true"]')
    slot.wait_for(timeout=60_000)
    return {action: slot.locator(f'button[data-action="{action}"]') for action in ("apply", "apply-rerun")}
