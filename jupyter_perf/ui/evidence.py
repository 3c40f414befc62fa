"""A finding's evidence as rows a person reads: labels in words, values in their units (units.py).

Diagnosis records its evidence as a dict of numbers under names that say their unit (``data_wait_s``,
``peak_bytes``, ``data_wait_share``); the summary shows it as a small two-column table folded under the
finding. Nested records (a DataLoader's settings, a fit per memory series) become indented rows, lists of
records one row per record named by its ``name``; long lists are cut with a count of what was left out, never
mid-word.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from html import escape
from typing import Any

from .. import units

#: Records of a list shown before "… and N more".
MAX_ITEMS = 6
#: Nesting levels shown; deeper records read as a count of their fields.
MAX_DEPTH = 3
#: Name endings that carry a unit, longest first, how a value under them reads, and whether the label keeps
#: them (a share says what it is; seconds and bytes say it in the value's unit).
_SUFFIXES: tuple[tuple[str, Callable[[float], str], bool], ...] = (
    ("_bytes_per_s", lambda v: units.rate(v, "B"), False),
    ("_per_s", lambda v: units.number(v) + "/s", False),
    ("_bytes", units.size, False),
    ("_share", units.percent, True),
    ("_fraction", units.percent, True),
    ("_us", lambda v: units.duration(v * 1e-6), False),
    ("_s", units.duration, False),
)
#: Whole names that carry a unit (``share``, ``fraction``: 0..1).
_NAMES: dict[str, Callable[[float], str]] = {"share": units.percent, "fraction": units.percent, "bytes": units.size}
#: A name starting so is microseconds per something (``us_per_leaf_call``).
_MICROS = "us_per_"


def rows(evidence: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(depth, label, value) for each entry; a record's own row has an empty value and its fields follow."""
    return list(_rows(evidence, 0))


def html_table(evidence: dict[str, Any]) -> str:
    """The evidence as a table of labels and values, indented by depth."""
    body = "".join(
        f'<tr><td style="padding-left:{depth * 14}px">{escape(label)}</td><td class="n">{escape(value)}</td></tr>'
        for depth, label, value in rows(evidence)
    )
    return f'<table class="jpp-evidence">{body}</table>'


def text_lines(evidence: dict[str, Any], indent: str) -> list[str]:
    """The evidence as aligned ``label  value`` lines for a terminal."""
    lines = rows(evidence)
    width = max((len(label) + 2 * depth for depth, label, _ in lines), default=0)
    return [f"{indent}{'  ' * depth}{label:<{width - 2 * depth}}  {value}".rstrip() for depth, label, value in lines]


def label(key: str) -> str:
    """``data_wait_s`` → ``data wait``, ``peak_bytes`` → ``peak``, ``read_bytes_per_s`` → ``read``,
    ``us_per_leaf_call`` → ``time per leaf call``; a share keeps its name."""
    if key.startswith(_MICROS):
        key = "time_per_" + key[len(_MICROS):]
    for suffix, _, kept in _SUFFIXES:
        if key.endswith(suffix) and key != suffix.lstrip("_"):
            key = key if kept else key[: -len(suffix)]
            break
    return key.replace("_", " ").strip() or key


def value(key: str, v: Any) -> str:
    """One scalar in the unit its key names; other numbers with three significant digits."""
    if v is None:
        return units.MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return units.MISSING
        if key.startswith(_MICROS):
            return units.duration(v * 1e-6)
        fmt = _NAMES.get(key) or next((f for suffix, f, _ in _SUFFIXES if key.endswith(suffix)), None)
        if fmt is not None:
            return fmt(v)
        return units.count(v) if float(v).is_integer() else units.significant(v)
    return str(v)


def _rows(evidence: dict[str, Any], depth: int) -> Iterator[tuple[int, str, str]]:
    for key, v in evidence.items():
        key = str(key)
        if isinstance(v, dict):
            yield from _record(label(key), v, depth)
        elif isinstance(v, (list, tuple)) and any(isinstance(item, dict) for item in v):
            yield depth, label(key), f"{len(v)}" if len(v) > 1 else ""
            for n, item in enumerate(v[:MAX_ITEMS]):
                name = str(item.get("name", n + 1)) if isinstance(item, dict) else str(n + 1)
                if isinstance(item, dict):
                    fields = {k: x for k, x in item.items() if k != "name"}
                    yield from _record(name, fields, depth + 1)
                else:
                    yield depth + 1, name, value(key, item)
            if len(v) > MAX_ITEMS:
                yield depth + 1, f"… and {len(v) - MAX_ITEMS} more", ""
        elif isinstance(v, (list, tuple)):
            shown = ", ".join(value(key, item) for item in v[:MAX_ITEMS])
            yield depth, label(key), shown + (f", … ({len(v)} in all)" if len(v) > MAX_ITEMS else "")
        else:
            yield depth, label(key), value(key, v)


def _record(name: str, fields: dict[str, Any], depth: int) -> Iterator[tuple[int, str, str]]:
    if depth + 1 >= MAX_DEPTH:
        yield depth, name, f"{len(fields)} fields"
        return
    yield depth, name, ""
    yield from _rows(fields, depth + 1)
