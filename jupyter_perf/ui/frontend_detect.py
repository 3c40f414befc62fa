"""Can this process show widgets, and which browser page is the run for.

Widgets need a Jupyter kernel with a comm manager (ipykernel 6 or 7) and
anywidget installed. Plain IPython, a terminal, or a script have neither: the
magic then displays the text/HTML summary, which is all those can show.
Nothing here imports anything heavy.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

_said: set[str] = set()


def say_once(key: str, message: str) -> None:
    """Tell the user about a degradation once per kernel, on stderr."""
    if key in _said:
        return
    _said.add(key)
    print(f"jupyter-perf: {message}", file=sys.stderr)


def current_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def widgets_unavailable(shell: Any) -> str | None:
    """Why widgets cannot be shown here, or None when they can."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None or getattr(kernel, "comm_manager", None) is None:
        return "no Jupyter kernel (plain IPython or a terminal)"
    for module in ("anywidget", "bokeh"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    return None


def client_session(shell: Any) -> str | None:
    """The session id of the frontend that sent the running cell: a new browser page has a new one.

    None where outputs do not share one page (Colab draws each output in its own frame), so
    whatever a dashboard needs loaded in the page must come with every dashboard.
    """
    if "google.colab" in sys.modules:
        return None
    parent = getattr(shell, "parent_header", None)
    if not parent:
        kernel = getattr(shell, "kernel", None)
        get_parent = getattr(kernel, "get_parent", None)
        parent = get_parent() if get_parent is not None else None
    header = (parent or {}).get("header") or {}
    return header.get("session")
