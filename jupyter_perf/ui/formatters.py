"""Reports and Comparisons shown as their summaries, by IPython's display formatter.

A Report is plain data with a plain-text repr; the UI teaches IPython how to draw it (``summary.py``), so the
data layer never imports the UI. Registered when the extension loads (and by ``profile()`` in IPython), by
class name, so nothing is imported until a Report is shown.
"""

from __future__ import annotations

from typing import Any

#: (module, class) shown by (ui module, its function returning the mimebundle).
_TYPES = (("jupyter_perf.report", "Report", "summary", "mimebundle"),
          ("jupyter_perf.report", "Comparison", "comparison", "mimebundle"))


def register(shell: Any) -> None:
    """Draw Reports and Comparisons as their summaries in ``shell`` (idempotent)."""
    formatter = shell.display_formatter.mimebundle_formatter
    for module, name, view, renderer in _TYPES:
        formatter.for_type_by_name(module, name, _renderer(view, renderer))


def unregister(shell: Any) -> None:
    formatter = shell.display_formatter.mimebundle_formatter
    for module, name, _view, _renderer_name in _TYPES:
        formatter.pop(f"{module}.{name}", None)


def _renderer(view: str, name: str) -> Any:
    def render(obj: Any) -> dict[str, Any]:
        from . import comparison, summary

        return getattr({"summary": summary, "comparison": comparison}[view], name)(obj)

    render.__qualname__ = f"jupyter_perf.{view}.{name}"
    return render
