"""The live dashboard's widget: gauges, step phases and the timelines in one anywidget.

One widget, one comm message per push: the kernel sets ``frame`` (the samples
since the last push, twice a second) and the browser plays them back
at the sampling cadence. The view is TypeScript (``labextension/src/live/``)
bundled by the package's build into one self-contained ES module,
``static/live.js``; its CSS is ``static/live.css``. anywidget renders them in
JupyterLab, Notebook 7, VS Code and Colab alike, with or without the
JupyterLab extension.

Importing this module imports anywidget and ipywidgets (≈ 0.5 s), so it is only
imported when the first dashboard is drawn.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

_STATIC = Path(__file__).with_name("static")
_ESM = _STATIC / "live.js"
if not _ESM.exists():  # a checkout nobody built: the dashboard says why, the summary still comes
    raise ImportError(f"{_ESM} is not built: `pip install -e .` (or `npm run build` in labextension/) builds it")


class LiveDashboard(anywidget.AnyWidget):
    _esm = _ESM.read_text(encoding="utf-8")
    _css = (_STATIC / "live.css").read_text(encoding="utf-8")

    #: Fixed for the run: cores, GPUs, colours, playback delay, the timeline panels.
    meta = traitlets.Dict().tag(sync=True)
    #: The latest push: ``seq`` and the ``rows`` sampled since the previous one.
    frame = traitlets.Dict().tag(sync=True)
    #: Set when the run has ended, just before the summary replaces the dashboard.
    done = traitlets.Bool(False).tag(sync=True)

    def __repr__(self) -> str:
        # What frontends without widgets show while the cell runs; the summary replaces it.
        return "jupyter-perf: profiling… (the live dashboard needs a widget frontend; the summary follows)"
