"""Run a cell's source in a namespace the way IPython would: statements, then the last expression.

The profiled code must behave exactly as if the magic were not there: same
namespace, same value displayed for a trailing expression, and a traceback
that starts at the user's own line (the source is registered with linecache
under the file name IPython gives it, so frames show their code).
"""

from __future__ import annotations

import ast
import linecache
from types import CodeType
from typing import Any

_counter = 0


def compile_source(source: str, filename: str | None = None) -> tuple[CodeType, CodeType | None]:
    """Compile ``source`` into its statements and, if it ends with an expression, that expression."""
    global _counter
    if filename is None:
        _counter += 1
        filename = f"<perfprofile-{_counter}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    tree = ast.parse(source, filename, "exec")
    last = None
    if tree.body and isinstance(tail := tree.body[-1], ast.Expr):
        tree.body.pop()
        last = ast.Expression(tail.value)
    body = compile(tree, filename, "exec")
    return body, compile(last, filename, "eval") if last is not None else None


def run_compiled(body: CodeType, last: CodeType | None, namespace: dict[str, Any]) -> Any:
    """Execute in ``namespace``; return the trailing expression's value (None without one)."""
    exec(body, namespace)  # noqa: S102 - running the user's cell is what the profiler is for
    return eval(last, namespace) if last is not None else None
