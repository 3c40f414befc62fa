"""Data that comes from a function, not a DataLoader: nanoGPT's ``X, Y = get_batch('train')``.

Many training loops build their batches with a function of their own (slicing
a token array, sampling indices, reading shards). Its time is the input
pipeline's as much as a DataLoader's ``next()``, so the cell's code is read
(not run) to find such functions: a function from the namespace, called in
the cell, whose result is bound to names that are then passed to a model
(``logits, loss = model(X, Y)``), or iterated over with the loop's variables
passed to a model (``for batch in batches(): model(**batch)``). Only plain
Python functions qualify (never a class, a builtin, or torch's own).

For the run, the namespace's binding is replaced by a wrapper that times
each call as ``data_wait`` (and, for a generator, each item it yields); the
original is bound again when the run ends, unless the cell rebound the name
itself, which then stays as the cell left it.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import types
from typing import Any, Iterator

from .dataloader import batch_size
from .patching import Ledger
from .steps import StepTrace


class DataFunctionProbe:
    def __init__(self, trace: StepTrace, namespace: dict[str, Any], source: str):
        self.trace = trace
        self.namespace = namespace
        self.source = source
        #: Per wrapped function name: calls (or items yielded) and seconds spent in them.
        self.functions: dict[str, dict[str, Any]] = {}

    def install(self, ledger: Ledger) -> None:
        for name in data_functions(self.source, self.namespace):
            original = self.namespace[name]
            wrapper = self._wrap(name, original)
            self.namespace[name] = wrapper
            ledger.call(functools.partial(self._restore, name, original, wrapper))

    def _restore(self, name: str, original: Any, wrapper: Any) -> None:
        if self.namespace.get(name) is wrapper:
            self.namespace[name] = original

    def _wrap(self, name: str, function: Any) -> Any:
        trace, stats = self.trace, self.functions.setdefault(name, {"name": name, "calls": 0, "data_wait_s": 0.0})
        generator = inspect.isgeneratorfunction(function)

        def timed_next(iterator: Iterator) -> Any:
            token = trace.begin("data_wait")
            try:
                item = next(iterator)
            except StopIteration:
                trace.end(token, tag="stop")
                raise
            except BaseException:
                trace.cancel(token)
                raise
            trace.end(token, samples=batch_size(item))
            if token is not None:
                stats["calls"] += 1
                stats["data_wait_s"] += trace.last_duration
            return item

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if generator:
                return _TimedIterator(function(*args, **kwargs), timed_next)
            token = trace.begin("data_wait")
            try:
                result = function(*args, **kwargs)
            except BaseException:
                trace.cancel(token)
                raise
            trace.end(token, samples=batch_size(result))
            if token is not None:
                stats["calls"] += 1
                stats["data_wait_s"] += trace.last_duration
            return result

        return wrapper

    def signals(self) -> list[dict[str, Any]]:
        return [stats for stats in self.functions.values() if stats["calls"]]


class _TimedIterator:
    """A generator's items, each ``next()`` timed; anything else is the generator's own."""

    def __init__(self, iterator: Iterator, timed_next: Any):
        self._iterator = iterator
        self._timed_next = timed_next

    def __iter__(self) -> _TimedIterator:
        return self

    def __next__(self) -> Any:
        return self._timed_next(self._iterator)

    def __getattr__(self, name: str) -> Any:  # send(), close(), gi_frame ...
        return getattr(self._iterator, name)


def data_functions(source: str, namespace: dict[str, Any]) -> list[str]:
    """Names of namespace functions whose results the cell passes to a model (module docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    models = {name for name, value in namespace.items() if _is_module(value)}
    if not models:
        return []
    producers: dict[str, set[str]] = {}  # variable -> functions whose results were bound to it
    fed: set[str] = set()  # variables passed to a model
    direct: set[str] = set()  # functions called in a model's arguments
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and (called := _called_name(node.value)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for var in _names(target):
                    producers.setdefault(var, set()).add(called)
        elif isinstance(node, ast.For) and (called := _called_name(node.iter)):
            for var in _names(node.target):
                producers.setdefault(var, set()).add(called)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in models:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                fed |= _names(arg)
                direct |= {name for n in ast.walk(arg) if (name := _called_name(n))}  # model(*get_batch())
    found = direct | {fn for var in fed for fn in producers.get(var, ())}
    return sorted(name for name in found if _is_plain_function(namespace.get(name)))


def _called_name(node: Any) -> str | None:
    """``f`` for a call ``f(...)`` of a bare name, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _names(node: Any) -> set[str]:
    """Variables an expression reads or a target binds: ``x``, ``(x, y)``, ``batch['ids']``, ``x.to(dev)``, ``**b``."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _is_plain_function(value: Any) -> bool:
    """A function the user wrote (not torch's, not a builtin, not a class)."""
    return isinstance(value, types.FunctionType) and not (value.__module__ or "").startswith("torch")
