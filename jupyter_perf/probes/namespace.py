"""Facts read from the user's namespace: names of objects, and containers that accumulate autograd graphs.

A container holding tensors with a ``grad_fn`` is not a leak by itself: an RNN's
``hidden = (h, c)`` or a Hugging Face ``outputs`` (a ``ModelOutput``, a dict)
hold the last step's graph only, and the next step frees it by rebinding the
name. A leak is a container whose graph-holding tensors *grow with the steps*
(``losses.append(loss)``), so :class:`GraphCensus` counts them per name at the
run's start, at a few steps during it and at its end, and reports how many each
name gained per step; the diagnosis decides which growth is a leak.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any, Callable

#: Look at most this many items of a container: a list of a million floats is not a leak suspect worth a scan.
_MAX_ITEMS = 10_000
#: Items looked at, at each end of a container, before it is counted (``graph_holders``).
_ENDS = 8
#: The census lists containers holding at least this many graphs at the end: a single one is one result
#: (a loss, IPython's ``Out`` caching a cell's value), not a collection of them.
_MIN_LISTED = 2


def names_by_id(namespace: dict[str, Any]) -> dict[int, str]:
    """The first public name bound to each object, to say "train_loader" rather than "a DataLoader"."""
    names: dict[int, str] = {}
    for name, value in namespace.items():
        if not name.startswith("_"):
            names.setdefault(id(value), name)
    return names


def graph_holders(namespace: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Public list, tuple and dict names (dict subclasses such as ModelOutput included) -> (type name,
    number of tensors with a ``grad_fn`` among their first items), for those holding at least one.

    A container is counted only when one of the items at either end holds a graph: an accumulator
    appends (or inserts) what it keeps, so its graphs show at its end, while a list of 4 000 input
    batches costs a look at ``2 * _ENDS`` items instead of a walk of every one at each census.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    tensor = torch.Tensor
    found = {}
    for name, value in list(namespace.items()):  # a copy: another thread may bind names meanwhile
        if name.startswith("_") or not isinstance(value, (list, tuple, dict)):
            continue
        items = value.values() if isinstance(value, dict) else value
        if not _ends_hold_graphs(value, tensor):
            continue
        count = 0
        for i, item in enumerate(items):
            if i >= _MAX_ITEMS:
                break
            if isinstance(item, tensor) and item.grad_fn is not None:
                count += 1
        if count:
            found[name] = (type(value).__name__, count)
    return found


def _ends_hold_graphs(container: list | tuple | dict, tensor: type) -> bool:
    """Whether one of the first or last ``_ENDS`` items is a tensor with a ``grad_fn``."""
    ends: list[Any]
    if isinstance(container, dict):
        ends = [*itertools.islice(container.values(), _ENDS), *itertools.islice(reversed(container.values()), _ENDS)]
    else:
        ends = [*container[:_ENDS], *container[-_ENDS:]]
    return any(isinstance(item, tensor) and getattr(item, "grad_fn", None) is not None for item in ends)


class GraphCensus:
    """Graph-holding tensors per namespace name at the run's start, during it and at its end.

    ``tick()`` is called from the step accounting's callback on the profiled
    thread; it takes a census when the step count reaches 1, 2, 4, 8, ... so a
    run of N steps pays for about log2(N) scans (each a few isinstance checks
    per item, ≤ 10 000 items per container: ≲ 1 ms). Only names and counts are
    kept, never the user's objects.
    """

    def __init__(self, namespace: dict[str, Any], steps: Callable[[], int]):
        self._namespace = namespace
        self._steps = steps
        self._next_at = 1
        #: name -> (steps done, graph tensors) when the name was first seen holding graphs.
        self._first: dict[str, tuple[int, int]] = {}
        self._take(0)

    def tick(self) -> None:
        done = self._steps()
        if done >= self._next_at:
            self._next_at = 2 * done
            self._take(done)

    def _take(self, done: int) -> None:
        for name, (_, count) in graph_holders(self._namespace).items():
            self._first.setdefault(name, (done, count))

    def finish(self, steps: int) -> list[dict[str, Any]]:
        """The containers holding graphs at the end (two or more), each with what it gained since first seen.

        A name first seen only now (no census saw it during the run) counts from
        the run's start with none: its whole content was gained over every step.
        """
        out = []
        for name, (kind, count) in graph_holders(self._namespace).items():
            if count < _MIN_LISTED:
                continue
            since, before = self._first.get(name, (0, 0))
            over = steps - since
            out.append({
                "name": name,
                "type": kind,
                "tensors": count,
                "baseline_tensors": before,
                "baseline_step": since,
                "gained": count - before,
                "steps": over,
                "per_step": (count - before) / over if over > 0 else None,
            })
        return out
