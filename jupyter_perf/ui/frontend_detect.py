"""Can this process show widgets? (What cannot be shown is said once per kernel: ``state.say_once``.)

Widgets need a Jupyter kernel with a comm manager (ipykernel 6 or 7) and
anywidget installed. Plain IPython, a terminal, or a script have neither: the
magic then displays the text/HTML summary, which is all those can show.
Nothing here imports anything heavy.
"""

from __future__ import annotations

import importlib.util
from typing import Any


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
    if importlib.util.find_spec("anywidget") is None:
        return "anywidget is not installed (pip install anywidget)"
    return None
