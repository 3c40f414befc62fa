"""The one-click optimizations, by id.

``jupyter_perf/catalog.py`` declares each (id, title, why, certainty, cost, the ``module:Class`` that
implements it), so listing the ids (for ``--apply`` validation, or the panel) imports nothing heavy;
``get()`` imports the one module it needs. A new optimization is one module with one ``Optimization``
subclass and one entry in the catalog (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from .. import state
from ..catalog import CATALOG
from ..cells import Target
from .base import NotApplicable, applied  # noqa: F401  (public: cheap, no torch)

if TYPE_CHECKING:
    from ..report import Report
    from .base import Change, Optimization

_instances: dict[str, Optimization] = {}


def ids() -> tuple[str, ...]:
    """Every optimization id that can be applied, in catalog order."""
    return tuple(CATALOG)


def get(opt_id: str) -> Optimization:
    """The optimization for ``opt_id``; KeyError naming the valid ids otherwise."""
    if opt_id not in CATALOG:
        raise KeyError(f"unknown optimization {opt_id!r}; valid ids: {', '.join(CATALOG)}")
    if opt_id not in _instances:
        module, cls = CATALOG[opt_id].implementation.split(":")
        _instances[opt_id] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return _instances[opt_id]


def catalog() -> dict[str, Optimization]:
    """Every optimization, imported, by id."""
    return {opt_id: get(opt_id) for opt_id in CATALOG}


def parse_ids(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; ValueError naming the valid ids if one is unknown."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in CATALOG]
    if unknown or not wanted:
        raise ValueError(f"unknown optimization {', '.join(unknown) or repr(text)}; valid ids: {', '.join(CATALOG)}")
    return wanted


def apply_to_cell(opt_ids: list[str], namespace: dict[str, Any], cell: str | Target,
                  report: Report | None = None) -> tuple[str, list[Change | str]]:
    """Apply each optimization in turn to the namespace and the cell, each seeing the code the previous wrote.

    Returns the cell's code to run and, per id, its Change or the reason it did not apply.
    """
    target = state.current().target(cell)
    outcomes: list[Change | str] = []
    for opt_id in opt_ids:
        try:
            change = get(opt_id).apply(namespace, target, report)
        except NotApplicable as exc:
            outcomes.append(f"{opt_id} not applied: {exc}")
            continue
        outcomes.append(change)
        new = change.rewritten(target)
        if new is not None:
            target = dataclasses.replace(target, source=new)
    return target.source, outcomes
