"""What the distributed optimizations share: the training function the ranks run, its code, and the live swap.

A launched run's objects live in the ranks, gone when the cell ends. What the
notebook holds is the training function the launcher was given
(``mp.start_processes(train, ...)``, ``mp.spawn(train, ...)``,
``notebook_launcher(train, ...)``). So these optimizations rewrite that
function's code, in the cell that defines it, and its *live* change is the
function itself: the rewritten ``def`` is run in the namespace and every name
bound to the old function points at the new one (the undo points them back),
so the next launch (Apply & re-run's) runs the new code.

Inside the function, two constructions are recognised (each exactly once):
``X = DistributedDataParallel(...)`` (any name the notebook binds to the class,
``DDP`` included), the PyTorch DDP tutorial's shape, and
``accelerator = Accelerator(...)``, accelerate's, whose DDP arguments travel in a
``DistributedDataParallelKwargs`` handler. Same contract as rewrite.py: a helper
returns the new text, the same text when already done, None where the pattern
is not there exactly once.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence
from types import FunctionType
from typing import Any

import libcst as cst

from ..cells import Target
from .base import Context, NotApplicable, Undo, rebind
from .rewrite import append_keywords, code, dotted, find_nodes, parse, replace_nodes, swapped

#: Launchers whose first argument is the function each rank runs.
LAUNCHERS = ("start_processes", "spawn", "notebook_launcher", "debug_launcher")
FUNCTION_PARAM = ("the training function the ranks run (default: the one the report saw launched, else the one the "
                  "cell passes to mp.start_processes / mp.spawn / notebook_launcher)")
DDP_CLASS = "DistributedDataParallel"
ACCELERATOR = "Accelerator"
HANDLER = "DistributedDataParallelKwargs"


# ----------------------------------------------------------------- function
def training_function(ctx: Context) -> tuple[str, FunctionType]:
    """The launched training function's name and object, its name recorded in ``ctx.params['function']``."""
    name = ctx.param("function", lambda: _launched(ctx))
    fn = ctx.namespace.get(name)
    if not isinstance(fn, FunctionType):
        found = "nothing" if fn is None else f"a {type(fn).__name__}"
        raise NotApplicable(f"{name!r} holds {found}, not the training function the ranks run")
    return name, fn


def _launched(ctx: Context) -> str:
    facts = (ctx.report.signals.get("distributed") or {}) if ctx.report else {}
    if facts.get("function") in ctx.namespace:
        return facts["function"]
    module = parse(ctx.cell.source) if ctx.cell else None
    names = list(dict.fromkeys(launched_functions(module))) if module else []
    if not names:
        raise NotApplicable("the cell launches no training function by name (mp.start_processes(train, ...), "
                            "mp.spawn(train, ...), notebook_launcher(train, ...)): pass function=<its name>")
    if len(names) > 1:
        raise NotApplicable(f"the cell launches several functions ({', '.join(names)}): pass function=")
    return names[0]


def launched_functions(module: cst.Module) -> list[str]:
    """The names of the functions the code launches ranks with (``mp.start_processes(train, ...)``), in order."""
    calls = find_nodes(module, cst.Call, lambda n: (dotted(n.func) or "").split(".")[-1] in LAUNCHERS
                       and bool(n.args) and isinstance(n.args[0].value, cst.Name))
    return [cst.ensure_type(c.args[0].value, cst.Name).value for c in calls]


def in_function(name: str,
                transform: Callable[[cst.FunctionDef], cst.FunctionDef | None]) -> Callable[[str], str | None]:
    """A cell transform for ``ctx.rewrite``: ``transform`` applied to the cell's top-level ``def name``."""

    def rewrite(source: str) -> str | None:
        module = parse(source)
        if module is None:
            return None
        defs = [s for s in module.body if isinstance(s, cst.FunctionDef) and s.name.value == name]
        if len(defs) != 1:
            return None
        new = transform(defs[0])
        return None if new is None else replace_nodes(module, {defs[0]: lambda _updated: new})

    return rewrite


def swap_function(ctx: Context, name: str, old: FunctionType, target: Target,
                  rewrite: Callable[[str], str | None]) -> Callable[[Undo], None]:
    """The live step: the rewritten ``def name`` run in the namespace; every name of ``old`` bound to the new one."""
    new_text = rewrite(target.source)

    def live(undo: Undo) -> None:
        module = parse(new_text) if new_text is not None else None
        assert module is not None  # (live is offered only where the rewrite gave code)
        definition = next(s for s in module.body if isinstance(s, cst.FunctionDef) and s.name.value == name)
        text = cst.Module([definition]).code
        filename = f"<jupyter-perf: {ctx.opt.id} {name}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)  # inspect.getsource
        scratch: dict[str, Any] = {}
        exec(compile(text, filename, "exec"), ctx.namespace, scratch)  # noqa: S102 - the user's own def, rewritten
        rebind(ctx.namespace, old, scratch[name], undo)

    return live


def statement_index(body: list[cst.BaseStatement], found: Callable[[cst.CSTNode], bool]) -> int | None:
    """The position in ``body`` (a function's statements) of the one statement holding what ``found`` matches."""
    hits = [i for i, s in enumerate(body) if find_nodes(s, cst.CSTNode, found)]
    return hits[0] if len(hits) == 1 else None


def with_imports(function: cst.FunctionDef, imports: list[str]) -> cst.FunctionDef:
    """``imports`` (statements) at the top of the function's body, after its docstring; those present stay once."""
    body = list(function.body.body)
    present = {code(s.with_changes(leading_lines=[])).strip() for s in body}
    new = [cst.parse_statement(i + "\n") for i in imports if i not in present]
    at = 1 if body and _is_docstring(body[0]) else 0
    return function.with_changes(body=function.body.with_changes(body=body[:at] + new + body[at:]))


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


# ------------------------------------------------------------ constructions
def ddp_aliases(namespace: dict[str, Any]) -> set[str]:
    """Names the notebook calls DistributedDataParallel by (``DDP``), and its own name."""
    from torch.nn.parallel import DistributedDataParallel

    return {DDP_CLASS, *(k for k, v in namespace.items() if v is DistributedDataParallel)}


def construction(function: cst.FunctionDef, callees: set[str]) -> tuple[str, cst.Call] | None:
    """``(X, the call)`` for the one ``X = <callee>(...)`` in the function, the callee's last name in ``callees``."""
    found = [(target, call) for target, call in _calls_assigned(function)
             if (dotted(call.func) or "").split(".")[-1] in callees]
    return found[0] if len(found) == 1 else None


def keywords(call: cst.Call) -> dict[str, str]:
    """The call's keyword arguments as code."""
    return {a.keyword.value: code(a.value) for a in call.args if a.keyword is not None}


def set_keywords(call: cst.Call, values: dict[str, str]) -> cst.Call | None:
    """The call with these keyword arguments set (replaced where present, appended after the others in the
    call's own layout); None where it passes ``*args``/``**kwargs`` (they might hold them)."""
    if any(a.star for a in call.args):
        return None
    args, todo = list(call.args), dict(values)
    for i, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value in todo:
            args[i] = arg.with_changes(value=cst.parse_expression(todo.pop(arg.keyword.value)))
    if todo:
        args = append_keywords(call, args, todo)
    return call.with_changes(args=args)


def handler_arguments(function: cst.FunctionDef, values: dict[str, str],
                      imports: Sequence[str] = ()) -> cst.FunctionDef | None:
    """accelerate: ``Accelerator(...)``'s ``DistributedDataParallelKwargs`` handler given these arguments (the
    handler added in a ``kwargs_handlers=[...]`` where there is none; its import, and ``imports`` the values
    need, at the function's top)."""
    found = construction(function, {ACCELERATOR})
    if found is None:
        return None
    _name, accelerator = found
    handlers = find_nodes(accelerator, cst.Call, lambda n: (dotted(n.func) or "").endswith(HANDLER))
    if len(handlers) > 1:
        return None
    if handlers:
        new = set_keywords(handlers[0], values)
        return None if new is None else with_imports(swapped(function, handlers[0], new), list(imports))
    given = keywords(accelerator)
    if "kwargs_handlers" in given:
        return None  # a list of other handlers: adding to it is left to the user (snippet)
    arguments = ", ".join(f"{k}={v}" for k, v in values.items())
    new = set_keywords(accelerator, {"kwargs_handlers": f"[{HANDLER}({arguments})]"})
    if new is None:
        return None
    return with_imports(swapped(function, accelerator, new), [f"from accelerate.utils import {HANDLER}", *imports])


def bound_optimizers(node: cst.CSTNode) -> set[str]:
    """Names the code binds to a torch.optim class's instance (``optimizer = optim.SGD(...)``): a training
    function's optimizer is its local, not a namespace name."""
    import torch.optim

    classes = {n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)}
    return {target for target, call in _calls_assigned(node) if (dotted(call.func) or "").split(".")[-1] in classes}


def _calls_assigned(node: cst.CSTNode) -> list[tuple[str, cst.Call]]:
    """``(X, the call)`` for each ``X = <call>`` in the code, in order."""
    found = []
    for assign in find_nodes(node, cst.Assign, lambda n: len(n.targets) == 1):
        target, value = assign.targets[0].target, assign.value
        if isinstance(target, cst.Name) and isinstance(value, cst.Call):
            found.append((target.value, value))
    return found
