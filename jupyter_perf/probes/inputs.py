"""The arguments of one real call of each watched model, kept for replay after the run.

The numerics guard (optimizations/guard.py) runs a model before and after a
change that alters its numerics, and must call it the way the user's code
does: ``model(x, hidden)``, ``model(**batch)``, ``model(input_ids=..., labels=...)``.
Guessing an input from the namespace fails on any model that takes more than
one tensor, so the module probe records the arguments of each watched model's
first call in a profiled run, as references (no copy: recording costs one
dict lookup per call, and a batch the loop already made).

The record is per model object, held weakly: a model that is deleted takes
its record with it, and a later run replaces an earlier run's record.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedCall:
    """Positional and keyword arguments of one call, as the user's code passed them."""

    args: tuple
    kwargs: dict[str, Any]


_RECORDS: weakref.WeakKeyDictionary[Any, RecordedCall] = weakref.WeakKeyDictionary()


def remember(model: Any, call: RecordedCall) -> None:
    """Keep ``call`` as ``model``'s recorded call (replacing an earlier run's)."""
    try:
        _RECORDS[model] = call
    except TypeError:  # an object that cannot be weakly referenced: nothing to keep it by
        pass


def recorded(model: Any) -> RecordedCall | None:
    """The arguments of ``model``'s first call in the latest profiled run that called it, or None."""
    try:
        return _RECORDS.get(model)
    except TypeError:
        return None


def forget_all() -> None:
    """Drop every record (the extension's unload, and tests that need a fresh process state)."""
    _RECORDS.clear()
