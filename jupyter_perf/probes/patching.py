"""Reversible patches and hooks: everything a probe adds is removed when the run ends.

The house rule is that a hundred profiled runs leave nothing behind, so every
change goes through one ledger that restores the exact previous state: an
attribute that was inherited is deleted again rather than set to the parent's
value, and hook handles are removed in reverse order.
"""

from __future__ import annotations

from typing import Any, Callable

_MISSING = object()


class Ledger:
    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` by ``make(original)``; ``original`` is the attribute as looked up."""
        own = owner.__dict__.get(name, _MISSING)
        setattr(owner, name, make(getattr(owner, name)))
        if own is _MISSING:
            self._undo.append(lambda: delattr(owner, name))
        else:
            self._undo.append(lambda: setattr(owner, name, own))

    def handle(self, handle: Any) -> Any:
        """Remember a torch ``RemovableHandle`` (or anything with ``remove()``)."""
        self._undo.append(handle.remove)
        return handle

    def call(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()
