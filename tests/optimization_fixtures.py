"""Shared pieces of the optimization tests: a fake notebook behind the cell-edit channel, and checks.

``notebook`` plays the JupyterLab extension's side of frontend.py's protocol:
it holds cells by id and applies an edit only when the SHA-256 of the cell's
current text matches, as the real extension must. With it, "undo restores
the exact original text" is checked on the text a notebook would hold.
"""

from __future__ import annotations

import ast
import contextlib
import gc

import fix_scenarios as fix  # noqa: F401  (the planted problems, shared with fix_efficacy.py)
import pytest

from jupyter_perf import frontend, state
from jupyter_perf.optimizations.base import Target

#: A cell's text with what a rewrite must keep: comments, odd spacing, unicode, no final newline.
ODD = "  # ünïcode ✓ and trailing spaces   \n"


class FakeNotebook:
    def __init__(self) -> None:
        self.cells: dict[str, str] = {}
        self.refused: list[str] = []

    def add(self, cell_id: str, text: str) -> Target:
        self.cells[cell_id] = text
        return Target(text, cell_id)

    # the comm the kernel sends on
    def send(self, data: dict) -> None:
        assert data["type"] == "edit"
        current = self.cells[data["cell_id"]]
        if frontend.sha256(current) != data["expected_source_sha256"]:
            self.refused.append(data["cell_id"])
            return
        self.cells[data["cell_id"]] = data["new_source"]

    def close(self) -> None:
        pass


@contextlib.contextmanager
def connected(book):
    """The frontend channel talks to ``book`` as if the JupyterLab extension were connected, then is put back."""
    saved = state.current().channel.comm, state.current().channel.ready
    state.current().channel.comm, state.current().channel.ready = book, True
    try:
        yield book
    finally:
        state.current().channel.comm, state.current().channel.ready = saved


@pytest.fixture(name="notebook")
def notebook_fixture(ipython):
    """A connected fake extension; commits publish their edits to it (they do inside IPython)."""
    with connected(FakeNotebook()) as book:
        yield book


_namespaces: list[dict] = []


def run(source: str, namespace: dict) -> dict:
    """Execute a cell in ``namespace``; the namespace is emptied after the test (see below)."""
    _namespaces.append(namespace)
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def release_namespaces():
    """Empty the namespaces cells ran in: functions defined there reference them in a cycle, so a
    DataLoader with persistent workers would live to interpreter exit, where shutting its workers
    down takes torch about 5 s each."""
    yield
    for namespace in _namespaces:
        namespace.clear()
    _namespaces.clear()
    gc.collect()


def assert_parses(source: str) -> None:
    ast.parse(source)
