"""Screenshots of the quickstart's summary in JupyterLab, light and dark theme, for README and docs/img/.

Runs notebooks/01_quickstart.ipynb up to its first profiled cell in a real
JupyterLab (the one on the path, with whatever jupyter-perf extension it
finds) under Debian's Chromium, then photographs that cell's output in each
theme. The same script made the "before" pictures (the summary as it was) and
makes the current ones:

    python scripts/screenshots.py --prefix after-      # docs/img/after-quickstart-summary-{light,dark}.png
    python scripts/screenshots.py --prefix before-     # docs/img/before-quickstart-summary-….png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ui"))

from lab_browser import LabNotebook, LabServer, launch_chromium  # noqa: E402

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
#: Tall enough that the summary and the panel under it are drawn whole (JupyterLab draws only what is in view).
VIEWPORT = {"width": 1100, "height": 3200}


def profiled_cell(nb: LabNotebook) -> int:
    """Run the notebook's cells up to its first ``%%perfprofile`` cell; that cell's index."""
    sources = nb.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map(c => [c.model.type, c.model.sharedModel.getSource()])"
    )
    for index, (kind, text) in enumerate(sources):
        if kind != "code":
            continue
        nb.page.evaluate(
            "i => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
            " return window.jupyterapp.commands.execute('notebook:run-cell'); }",
            index,
        )
        nb.wait_done()
        if text.startswith("%%perfprofile"):
            return index
    raise SystemExit("the notebook has no %%perfprofile cell")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default=str(ROOT / "notebooks" / "01_quickstart.ipynb"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp, "root"), Path(tmp, "home")
        root.mkdir()
        home.mkdir()
        name = Path(args.notebook).name
        shutil.copy(args.notebook, root / name)
        server = LabServer(root, home)
        server.start()
        try:
            with sync_playwright() as playwright:
                context = launch_chromium(playwright, Path(tmp, "chromium"), viewport=VIEWPORT)
                page = context.new_page()
                page.set_default_timeout(120_000)
                nb = LabNotebook(page, server, name).open()
                index = profiled_cell(nb)
                cell = nb.cell(index)
                cell.locator(".jp-perf-summary").first.wait_for()
                page.wait_for_timeout(3_000)  # the panel's widget, drawn after the summary
                for theme, label in THEMES.items():
                    nb.command("apputils:change-theme", {"theme": label})
                    page.wait_for_function(
                        "t => document.body.dataset.jpThemeName === t", arg=label, timeout=30_000
                    )
                    page.wait_for_timeout(1_000)
                    path = out / f"{args.prefix}quickstart-summary-{theme}.png"
                    cell.locator(".jp-Cell-outputArea").first.screenshot(path=str(path))
                    print(path)
                context.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
