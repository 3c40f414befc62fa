"""An import check over a package's source: every import (at the top or inside a function, ``TYPE_CHECKING``
blocks aside) must go to the module's own layer or one it may use, and no modules may import each other in a
cycle. Read from the AST, nothing imported, so a hidden function-level back-edge is found as surely as a
top-level one. docs/architecture.md draws the layers this checks."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module names of a package directory's Python files."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(module imported, line) for each import of a module of the package, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree) if _type_checking(block) for node in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(_known(alias.name, known), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full if full in known else _known(base, known), node.lineno))
    return [(target, line) for target, line in out if target is not None and target != name]


def check(root: Path, layers: dict[str, tuple[str, ...]], uses: dict[str, tuple[str, ...]]) -> list[Violation]:
    """Violations of the layering (``layers``: layer -> module prefixes; ``uses``: layer -> layers it may
    import besides itself) and every import cycle, in a package directory ``root``."""
    known = modules(root)
    layer_of = {name: _layer(name, layers) for name in known}
    graph: dict[str, set[str]] = {name: set() for name in known}
    found = []
    for name, path in known.items():
        for target, line in imports(name, path, known):
            graph[name].add(target)
            mine, theirs = layer_of[name], layer_of[target]
            if mine is None:
                found.append(Violation(name, target, line, "the module belongs to no layer"))
            elif theirs is not None and theirs != mine and theirs not in uses.get(mine, ()):
                found.append(Violation(name, target, line, f"layer {mine!r} may not use layer {theirs!r}"))
    for cycle in cycles(graph):
        found.append(Violation(cycle[0], cycle[1], 0, "an import cycle: " + " -> ".join([*cycle, cycle[0]])))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _layer(name: str, layers: dict[str, tuple[str, ...]]) -> str | None:
    """The layer whose longest prefix matches ``name``."""
    best, length = None, -1
    for layer, prefixes in layers.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _absolute(package: str, module: str | None, level: int) -> str:
    if not level:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _known(name: str, known: dict[str, Path]) -> str | None:
    """The package module ``name`` is, or lies in (``a.b.c`` where only ``a.b`` is a module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None
