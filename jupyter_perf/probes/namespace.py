"""Facts read from the user's namespace after the run: names of objects, graphs kept alive."""

from __future__ import annotations

import sys
from typing import Any

#: Look at most this many items of a container: a list of a million floats is not a leak suspect worth a scan.
_MAX_ITEMS = 10_000


def names_by_id(namespace: dict[str, Any]) -> dict[int, str]:
    """The first public name bound to each object, to say "train_loader" rather than "a DataLoader"."""
    names: dict[int, str] = {}
    for name, value in namespace.items():
        if not name.startswith("_"):
            names.setdefault(id(value), name)
    return names


def retained_graphs(namespace: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers holding tensors with a ``grad_fn``: each keeps its whole autograd graph alive."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found = []
    for name, value in namespace.items():
        if name.startswith("_") or not isinstance(value, (list, tuple, dict)):
            continue
        items = value.values() if isinstance(value, dict) else value
        count = 0
        for i, item in enumerate(items):
            if i >= _MAX_ITEMS:
                break
            if isinstance(item, torch.Tensor) and item.grad_fn is not None:
                count += 1
        if count >= 2:
            found.append({"name": name, "tensors": count})
    return found
