"""The kernel side of the cell-edit channel to the JupyterLab extension, with its fallback.

Protocol (comm target ``jupyter_perf``, version 1): when the IPython extension
loads, the kernel opens a comm with ``{"type": "hello", "protocol": 1}``. The
JupyterLab extension, if installed, answers ``{"type": "ready"}``; without
it, the frontend closes the comm. Each edit is then sent as::

    {"type": "edit", "request": n, "cell_id": ..., "expected_source_sha256": ..., "new_source": ...}

and the extension replaces the cell's text only if the SHA-256 of its current
text equals ``expected_source_sha256`` (so an edit applies only to the text it
was computed from), answering ``{"type": "edit_result", "request": n, "ok":
bool, "reason": str}`` and telling the user itself when it refuses. A
refusal reaches the kernel only after the cell that asked has ended, so a
request can carry a callback (``on_result``) that ``optimizations/base.py``
uses to put the live objects back when the code did not change.

The extension also reports what each cell of the notebook holds now,
``{"type": "sources", "cells": {cell_id: sha256}}`` (as the user types, and
before each cell runs), because the kernel otherwise knows a cell only as it
last ran: ``edited_since_run`` compares, so a rewrite computed from text the
user has edited since is refused before anything changes. The kernel sends
``{"type": "notice", "text": ...}`` for the extension to show the user what
happened to a change it had to take back.

Without the extension (or for a cell without an id), the live objects are
already changed and the new code is shown instead: the diff and the whole new
cell with a copy button. The page never has its cells edited behind the user's
back, and ``set_next_input`` is never used.
"""

from __future__ import annotations

import hashlib
import html
import sys
from collections.abc import Callable
from typing import Any, TypeGuard

from .cells import cell_label, unified_diff

TARGET = "jupyter_perf"
PROTOCOL = 1

_NOT_INSTALLED = (
    "The jupyter-perf JupyterLab extension is not installed or not connected, so cells are not edited "
    "for you: the live objects are already changed; copy the new code into the cell to keep the notebook "
    "reproducible."
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Channel:
    """The comm to the JupyterLab extension; ``ready`` once the extension answered the hello."""

    def __init__(self) -> None:
        self.comm: Any = None
        self.ready = False
        self.requests = 0
        #: Replies to edit requests, by request number: ``{"ok": bool, "reason": str}``.
        self.results: dict[int, dict[str, Any]] = {}
        #: SHA-256 of each cell's text as the notebook holds it now, by cell id (reported, or edited by us).
        self.sources: dict[str, str] = {}
        #: Edit requests not answered yet: the cell, the text asked for, and who waits for the answer.
        self._waiting: dict[int, tuple[str, str, Callable[[dict[str, Any]], None] | None]] = {}
        #: Whether the user was told once that cells are shown, not edited, without the extension.
        self.told_no_extension = False

    def open(self) -> None:
        if self.comm is not None:
            return
        import comm

        self.comm = comm.create_comm(target_name=TARGET, data={"type": "hello", "protocol": PROTOCOL})
        self.comm.on_msg(self.handle)
        self.comm.on_close(lambda msg: self._reset())

    def close(self) -> None:
        if self.comm is not None:
            self.comm.close()
        self._reset()

    def _reset(self) -> None:
        """Forget the connection and what it reported: a later one reports afresh and answers only its own."""
        self.comm, self.ready = None, False
        self.sources.clear()
        self._waiting.clear()

    def handle(self, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if data.get("type") == "ready":
            self.ready = True
        elif data.get("type") == "sources" and isinstance(data.get("cells"), dict):
            self.sources.update(data["cells"])
        elif data.get("type") == "edit_result" and isinstance(data.get("request"), int):
            self._answered(data["request"], {"ok": bool(data.get("ok")), "reason": data.get("reason", "")})

    def _answered(self, request: int, result: dict[str, Any]) -> None:
        self.results[request] = result
        cell_id, new_source, on_result = self._waiting.pop(request, (None, "", None))
        if result["ok"] and cell_id is not None:
            self.edited(cell_id, new_source)
        if on_result is not None:
            on_result(result)

    def send_edit(self, cell_id: str, expected_source: str, new_source: str,
                  on_result: Callable[[dict[str, Any]], None] | None = None) -> int:
        self.requests += 1
        self._waiting[self.requests] = (cell_id, new_source, on_result)
        self.comm.send({
            "type": "edit",
            "request": self.requests,
            "cell_id": cell_id,
            "expected_source_sha256": sha256(expected_source),
            "new_source": new_source,
        })
        return self.requests

    def notify(self, text: str) -> None:
        """Show ``text`` to the user in the notebook (the extension's notification), where connected."""
        if self.ready and self.comm is not None:
            self.comm.send({"type": "notice", "text": text})

    def reaches(self, cell_id: str | None) -> TypeGuard[str]:
        """Whether an edit of this cell goes to the notebook (else its code is shown to copy)."""
        return bool(cell_id) and self.ready

    def edited(self, cell_id: str, text: str) -> None:
        """The notebook now holds ``text`` in cell ``cell_id`` (an edit it confirmed), ahead of its next report."""
        self.sources[cell_id] = sha256(text)

    def edited_since_run(self, cell_id: str | None, text: str) -> bool:
        """Whether the notebook reported other text for cell ``cell_id`` than ``text`` (the cell as it ran).

        False where nothing was reported (no extension, no id): then only the
        extension's own hash check, at the edit, can tell.
        """
        reported = self.sources.get(cell_id) if cell_id else None
        return reported is not None and reported != sha256(text)

    def tell(self, text: str) -> None:
        """Say ``text`` where the user sees it even outside a cell: the notebook's notification and stderr."""
        self.notify(text)
        print(text, file=sys.stderr)

    def request_edit(self, cell_id: str | None, expected_source: str, new_source: str,
                     on_result: Callable[[dict[str, Any]], None] | None = None, label: str | None = None) -> str:
        """Ask the notebook to replace ``expected_source`` by ``new_source`` in cell ``cell_id``.

        Returns ``"sent"`` when the extension got the request (``on_result`` is
        called with its answer, once it arrives), ``"shown"`` when the new code
        was displayed for the user to copy instead, naming the cell ``label``
        (by default by how it starts: cells.cell_label).
        """
        if self.reaches(cell_id):
            self.send_edit(cell_id, expected_source, new_source, on_result)
            return "sent"
        from IPython.display import display

        display(self.fallback_bundle(label or cell_label(None, expected_source), expected_source, new_source),
                raw=True)
        return "shown"

    def fallback_bundle(self, where: str, expected_source: str, new_source: str) -> dict[str, str]:
        """The diff and the new code of the cell ``where`` names, with a copy button; says once why the cell was
        not edited."""
        note = "" if self.told_no_extension else _NOT_INSTALLED
        self.told_no_extension = True
        diff = unified_diff(expected_source, new_source, where)
        text = "\n".join(filter(None, [note, f"New code for {where}:", diff, new_source]))
        copy = "navigator.clipboard.writeText(this.parentElement.querySelector('pre.jp-perf-new').textContent)"
        body = (
            (f"<p>{html.escape(note)}</p>" if note else "")
            + f"<details><summary>Diff of {html.escape(where)}</summary><pre>{html.escape(diff)}</pre></details>"
            + f'<button onclick="{copy}">Copy new code</button>'
            + f'<pre class="jp-perf-new">{html.escape(new_source)}</pre>'
        )
        return {"text/plain": text, "text/html": f'<div class="jp-perf-edit">{body}</div>'}
