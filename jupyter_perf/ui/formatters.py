"""Reports and Comparisons shown as their summaries, by IPython's display formatter.

A Report is plain data with a plain-text repr; the UI teaches IPython how to draw it (``summary.py``), so the
data layer never imports the UI. Registered when the extension loads (and by ``profile()`` in IPython), by
class name, so nothing is imported until a Report is shown.
"""

from __future__ import annotations

from typing import Any

_TYPES = (("jupyter_perf.report", "Report", "mimebundle"), ("jupyter_perf.report", "Comparison", "comparison_mimebundle"))


def register(shell: Any) -> None:
    """Draw Reports and Comparisons as their summaries in ``shell`` (idempotent)."""
    formatter = shell.display_formatter.mimebundle_formatter
    for module, name, renderer in _TYPES:
        formatter.for_type_by_name(module, name, _renderer(renderer))


def unregister(shell: Any) -> None:
    formatter = shell.display_formatter.mimebundle_formatter
    for module, name, _renderer_name in _TYPES:
        formatter.pop(f"{module}.{name}", None)


def _renderer(name: str) -> Any:
    def render(obj: Any) -> dict[str, Any]:
        from . import summary

        return getattr(summary, name)(obj)

    render.__qualname__ = f"jupyter_perf.{name}"
    return render
