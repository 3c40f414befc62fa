"""The kernel side of the cell-edit channel to the JupyterLab extension, with its fallback.

Protocol (comm target ``jupyter_perf``, version 1): when the IPython extension
loads, the kernel opens a comm with ``{"type": "hello", "protocol": 1}``. The
JupyterLab extension, if installed, answers ``{"type": "ready"}``; without
it, the frontend closes the comm. Each edit is then sent as::

    {"type": "edit", "request": n, "cell_id": ..., "expected_source_sha256": ..., "new_source": ...}

and the extension replaces the cell's text only if the SHA-256 of its current
text equals ``expected_source_sha256`` (so an edit applies only to the text it
was computed from), answering ``{"type": "edit_result", "request": n, "ok":
bool, "reason": str}`` and telling the user itself when it refuses.

Without the extension (or for a cell without an id), the live objects are
already changed and the new code is shown instead: the diff and the whole new
cell with a copy button. The page never has its cells edited behind the user's
back, and ``set_next_input`` is never used.
"""

from __future__ import annotations

import hashlib
import html
from typing import Any

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
        self.comm, self.ready = None, False

    def handle(self, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if data.get("type") == "ready":
            self.ready = True
        elif data.get("type") == "edit_result" and isinstance(data.get("request"), int):
            self.results[data["request"]] = {"ok": bool(data.get("ok")), "reason": data.get("reason", "")}

    def send_edit(self, cell_id: str, expected_source: str, new_source: str) -> int:
        self.requests += 1
        self.comm.send({
            "type": "edit",
            "request": self.requests,
            "cell_id": cell_id,
            "expected_source_sha256": sha256(expected_source),
            "new_source": new_source,
        })
        return self.requests


CHANNEL = Channel()
_told = False


def reaches(cell_id: str | None) -> bool:
    """Whether an edit of this cell goes to the notebook (else its code is shown to copy)."""
    return bool(cell_id) and CHANNEL.ready


def request_edit(cell_id: str | None, expected_source: str, new_source: str) -> str:
    """Ask the notebook to replace ``expected_source`` by ``new_source`` in cell ``cell_id``.

    Returns ``"sent"`` when the extension got the request, ``"shown"`` when the
    new code was displayed for the user to copy instead.
    """
    if reaches(cell_id):
        CHANNEL.send_edit(cell_id, expected_source, new_source)
        return "sent"
    from IPython.display import display

    display(fallback_bundle(cell_id, expected_source, new_source), raw=True)
    return "shown"


def fallback_bundle(cell_id: str | None, expected_source: str, new_source: str) -> dict[str, str]:
    """The diff and the new code (with a copy button), saying once why the cell was not edited."""
    global _told
    from .optimizations.rewrite import unified_diff

    first = next((line.strip() for line in expected_source.splitlines() if line.strip()), "")
    where = f"cell {cell_id}" if cell_id else f"the cell starting {first[:40]!r}" if first else "the cell"
    note = "" if _told else _NOT_INSTALLED
    _told = True
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
