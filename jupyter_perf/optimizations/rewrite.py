"""Rewrite a cell's code with libcst, keeping its formatting and comments.

Every helper takes the cell's text and returns the new text, the same text
when the code already has the change, or None when it does not find its
pattern (or finds it more than once). None is the signal for the caller to
show a snippet to add by hand: a rewrite that guesses can lose user code.
Where a helper finds its pattern but no edit of it is sure to do the same
thing, it raises ``NoRewrite`` with the reason, which the snippet carries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import libcst as cst

_NO_SPACE = cst.SimpleWhitespace("")
_Node = TypeVar("_Node", bound=cst.CSTNode)


class NoRewrite(Exception):  # noqa: N818 - a reason, not an error: the caller shows a snippet with it
    """The pattern is there, but no edit of it is sure to keep what the code does; the message says why."""


def parse(source: str) -> cst.Module | None:
    """The cell as a libcst module, or None where it is not plain Python (magics, shell escapes)."""
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError:
        return None


def dotted(node: cst.CSTNode) -> str | None:
    """``torch.utils.data.DataLoader`` for the expression naming it; None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


class _Mentions(cst.CSTVisitor):
    """Whether a node uses the variable ``name`` (not an attribute of that name, like ``self.name``)."""

    def __init__(self, name: str):
        self.name, self.found = name, False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.found |= node.value == self.name


def mentions(node: cst.CSTNode, name: str) -> bool:
    visitor = _Mentions(name)
    node.visit(visitor)
    return visitor.found


def find_nodes(node: cst.CSTNode, kind: type[_Node] | tuple[type[_Node], ...],
               match: Callable[[_Node], bool] | None = None) -> list[_Node]:
    """The nodes of ``kind`` in ``node`` (itself included) for which ``match`` holds, in the order of the code."""
    class Finder(cst.CSTVisitor):
        def on_visit(self, n: cst.CSTNode) -> bool:
            if isinstance(n, kind) and (match is None or match(n)):
                found.append(n)
            return True

    found: list[_Node] = []
    node.visit(Finder())
    return found


def calls_method(source: str, method: str) -> bool:
    """Whether the code calls ``<anything>.method(...)`` (e.g. ``backward``)."""
    module = parse(source)
    return module is not None and bool(find_nodes(
        module, cst.Call, lambda n: isinstance(n.func, cst.Attribute) and n.func.attr.value == method))


#: What replaces a node: its updated self edited, a FlattenSentinel of several, or RemovalSentinel.REMOVE. It takes
#: the node (of the type of the one it is keyed by, which a dict's type cannot say, hence Any).
Edit = Callable[[Any], cst.CSTNode | cst.FlattenSentinel[Any] | cst.RemovalSentinel]


def swapped(node: _Node, old: cst.CSTNode, new: cst.CSTNode) -> _Node:
    """``node`` with its descendant ``old`` (by identity) replaced by ``new`` (of a kind that may stand there, so
    ``node`` stays of its kind)."""

    class Swap(cst.CSTTransformer):
        def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:
            return new if original_node is old else updated_node

    result = node.visit(Swap())
    assert isinstance(result, type(node))
    return result


def replace_nodes(module: cst.Module, changes: Mapping[_Node, Edit]) -> str:
    """The module's code with each original node (by identity) passed, updated, through its edit.

    Edits see the node with its children already edited, so nested matches
    (``x.to(a).to(b)``) all apply.
    """

    class Swap(cst.CSTTransformer):
        def on_leave(self, original, updated):
            edit = changes.get(original)
            return edit(updated) if edit else updated

    return module.visit(Swap()).code


# ------------------------------------------------------------- call arguments
def builder_calls(module: cst.Module, name: str, callee: str) -> list[cst.Call]:
    """Every call ``name = ...callee(...)`` in the cell (``callee`` is the last dotted part)."""
    calls = []
    assignments: list[cst.Assign | cst.AnnAssign] = find_nodes(module, (cst.Assign, cst.AnnAssign))
    for n in assignments:
        targets = [t.target for t in n.targets] if isinstance(n, cst.Assign) else [n.target]
        if (len(targets) == 1 and isinstance(targets[0], cst.Name) and targets[0].value == name
                and isinstance(n.value, cst.Call) and (dotted(n.value.func) or "").split(".")[-1] == callee):
            calls.append(n.value)
    return calls


def builder_call(module: cst.Module, name: str, callee: str) -> cst.Call | None:
    """The one call ``name = ...callee(...)`` in the cell; None where there is none or several."""
    found = builder_calls(module, name, callee)
    return found[0] if len(found) == 1 else None


def set_call_arguments(source: str, name: str, callee: str, values: dict[str, str],
                       positional: Sequence[str] = ()) -> str | None:
    """Give the call that builds ``name`` these arguments (name -> code), keeping its layout.

    An argument passed by position (``positional`` lists the parameters in
    order) is replaced where it stands; a keyword is replaced in place or
    appended in the call's own style (one per line stays one per line, a
    trailing comma stays).

    A call that unpacks ``**kwargs`` (pytorch/examples' ``DataLoader(ds,
    **train_kwargs)``) may get the argument from the mapping, and
    ``f(**kw, key=v)`` raises "got multiple values" when it does: so the value
    goes into the mapping. Into the dict display that defines it, where that
    is sure to be the mapping the call unpacks and no other (``dict_defining``);
    else into a merge at the call, ``**{**kwargs, "key": v}``, whose later key
    overrides whatever ``kwargs`` holds, for this call only. A call that also
    passes ``*args`` or unpacks several mappings raises NoRewrite.
    """
    module = parse(source)
    if module is None:
        return None
    calls = builder_calls(module, name, callee)
    if len(calls) != 1:
        if calls:
            raise NoRewrite(f"the cell assigns {name} = {callee}(...) {len(calls)} times: which one built the live "
                            "object is not known")
        return None
    call = calls[0]
    starred = [a for a in call.args if a.star == "*"]
    mappings = [i for i, a in enumerate(call.args) if a.star == "**"]
    if starred:
        raise NoRewrite(f"the call passes *{code(starred[0].value)}: which parameters its items fill is known only "
                        "when it runs")
    if len(mappings) > 1:
        listed = ", ".join("**" + code(call.args[i].value) for i in mappings)
        raise NoRewrite(f"the call unpacks several mappings ({listed}): one of them may hold the argument too")
    args, todo = list(call.args), dict(values)
    for i, arg in enumerate(args):
        key = arg.keyword.value if arg.keyword else (positional[i] if i < len(positional) and not arg.star else None)
        if key in todo:
            args[i] = arg.with_changes(value=cst.parse_expression(todo.pop(key)))
    changes: dict[cst.CSTNode, Edit] = {}
    if todo and mappings:
        at = mappings[0]
        unpacked = args[at].value
        quote = _quote(module)
        definition = unpacked if isinstance(unpacked, cst.Dict) else dict_defining(module, unpacked, call)
        if definition is None or (edited := _set_items(definition, todo, quote)) is None:
            args[at] = args[at].with_changes(value=_merged(unpacked, todo, quote))
        elif definition is unpacked:
            args[at] = args[at].with_changes(value=edited)
        else:
            changes[definition] = lambda _updated: edited
    elif todo:
        args = append_keywords(call, args, todo)
    changes[call] = lambda updated: updated.with_changes(args=args)
    return replace_nodes(module, changes)


def dict_defining(module: cst.Module, value: cst.BaseExpression, call: cst.Call) -> cst.Dict | None:
    """The dict display that ``**value`` at ``call`` is sure to unpack, to edit in place; else None.

    Sure means: ``value`` is a name assigned once in this cell, by a top-level
    ``name = {...}`` statement before the one holding the call, and the cell
    uses the name nowhere else. Another use could add keys (``kw.update(cuda_kwargs)``,
    ``kw["num_workers"] = 1``, pytorch/examples' mnist) or share the dict with
    another loader, whose code would then change without its live object; a
    conditional (``{...} if use_cuda else {}``) defines it twice: a merge at the
    call is right in all those cases.
    """
    if not isinstance(value, cst.Name) or _uses(module, value.value) != 2:
        return None
    statements = list(module.body)
    holding = next((i for i, stmt in enumerate(statements) if find_nodes(stmt, cst.Call, lambda n: n is call)), None)
    for stmt in statements[:holding]:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign):
            assign = stmt.body[0]
            targets = [t.target for t in assign.targets]
            if (len(targets) == 1 and isinstance(targets[0], cst.Name) and targets[0].value == value.value
                    and isinstance(assign.value, cst.Dict)):
                return assign.value
    return None


def _uses(module: cst.Module, name: str) -> int:
    """How many times the cell names the variable ``name`` (not an attribute ``x.name`` or a keyword ``f(name=)``)."""
    class Count(cst.CSTVisitor):
        def __init__(self) -> None:
            self.count = 0

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Arg(self, node: cst.Arg) -> bool:
            node.value.visit(self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            self.count += node.value == name

    counter = Count()
    module.visit(counter)
    return counter.count


def _set_items(display: cst.Dict, values: dict[str, str], quote: str) -> cst.Dict | None:
    """The dict display with each key set to its code: replaced where it stands, else appended in the
    display's own style (after any ``**other`` in it, so it wins). None where a key stands before a
    ``**other`` that could override it."""
    elements, todo = list(display.elements), dict(values)
    for i, element in enumerate(elements):
        key = _key(element)
        if key in todo:
            if any(isinstance(e, cst.StarredDictElement) for e in elements[i + 1:]):
                return None
            elements[i] = element.with_changes(value=cst.parse_expression(todo.pop(key)))
    new = [cst.DictElement(cst.SimpleString(f"{quote}{k}{quote}"), cst.parse_expression(v)) for k, v in todo.items()]
    if new:
        elements = _extend(elements, new, display.lbrace.whitespace_after)
    return display.with_changes(elements=elements)


def _key(element: cst.BaseDictElement) -> str | None:
    if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString):
        key = element.key.evaluated_value
        return key if isinstance(key, str) else None  # (a bytes key is no keyword argument)
    return None


def _merged(mapping: cst.BaseExpression, values: dict[str, str], quote: str) -> cst.BaseExpression:
    """``{**mapping, "key": value, ...}``: the mapping's items, these keys overriding it."""
    inner = code(mapping)
    if not mapping.lpar and not isinstance(mapping, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Dict)):
        inner = f"({inner})"
    items = ", ".join(f"{quote}{k}{quote}: {v}" for k, v in values.items())
    return cst.parse_expression(f"{{**{inner}, {items}}}")


def _quote(module: cst.Module) -> str:
    """The cell's own string quote (pytorch/examples write ``'num_workers'``), for the keys written into it."""
    strings = find_nodes(module, cst.SimpleString)
    return strings[0].quote if strings and strings[0].quote in ("'", '"') else '"'


def append_keywords(call: cst.Call, args: list[cst.Arg], values: dict[str, str]) -> list[cst.Arg]:
    """``args`` (the call's, maybe edited) with ``keyword=value`` appended for each item of ``values``, spaced
    like the call's own keywords and laid out like its arguments."""
    keyword = next((a for a in args if a.keyword), None)
    equal = keyword.equal if keyword else cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE)
    new = [cst.Arg(cst.parse_expression(v), keyword=cst.Name(k), equal=equal) for k, v in values.items()]
    return _extend(args, new, call.whitespace_before_args)


def _extend(items: list, new: list, opening: cst.BaseParenthesizableWhitespace) -> list:
    """``items`` (a call's arguments, a dict's elements) followed by ``new``, in the items' own style.

    The separator is the one between the last two items (one per line stays
    one per line), else the line break after the opening bracket, else ", ";
    the old last item's trailing comma and closing whitespace move to the new
    last one. ``opening`` is the whitespace after the opening bracket.
    """
    if not items:
        sep = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        return [a.with_changes(comma=sep) for a in new[:-1]] + new[-1:]
    if len(items) >= 2 and isinstance(items[-2].comma, cst.Comma):
        sep = cst.Comma(whitespace_after=_bare(items[-2].comma.whitespace_after))
    elif isinstance(opening, cst.ParenthesizedWhitespace):
        sep = cst.Comma(whitespace_after=_bare(opening))
    else:
        sep = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    last = items[-1]
    closing = {"whitespace_after_arg": last.whitespace_after_arg} if isinstance(last, cst.Arg) else {}
    new = [a.with_changes(comma=sep) for a in new[:-1]] + [new[-1].with_changes(comma=last.comma, **closing)]
    cleared = {k: _NO_SPACE for k in closing}
    return items[:-1] + [last.with_changes(comma=sep, **cleared)] + new


def _bare(ws: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
    """A separator's whitespace without the comment or blank lines that followed the original comma."""
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return ws.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
    return ws


# ------------------------------------------------------------------- loops
def loops_over(module: cst.Module, name: str) -> list[cst.For]:
    """``for`` statements whose iterable uses ``name`` (``loader``, ``enumerate(loader)``, ``tqdm(loader)``)."""
    return [n for n in find_nodes(module, cst.For) if mentions(n.iter, name)]


def add_non_blocking(source: str, loader: str) -> str | None:
    """``non_blocking=True`` on every ``.to(...)``/``.cuda(...)`` in the loops over ``loader``."""
    module = parse(source)
    if module is None:
        return None
    calls = [c for loop in loops_over(module, loader) for c in find_nodes(
        loop.body, cst.Call, lambda n: isinstance(n.func, cst.Attribute) and n.func.attr.value in ("to", "cuda"))]
    if not calls:
        return None
    changes: dict[cst.Call, Edit] = {}
    for call in calls:
        if any(a.star == "**" for a in call.args) or any(a.keyword and a.keyword.value == "non_blocking"
                                                         for a in call.args):
            continue
        changes[call] = _non_blocking
    return replace_nodes(module, changes)


def _non_blocking(call: cst.Call) -> cst.Call:
    return call.with_changes(args=append_keywords(call, list(call.args), {"non_blocking": "True"}))


# -------------------------------------------------------------- statements
def calls_name(node: cst.CSTNode, name: str) -> bool:
    return bool(find_nodes(node, cst.Call, lambda n: isinstance(n.func, cst.Name) and n.func.value == name))


def wrap_calls(source: str, callee: str, context: str, replaces: Sequence[str] = (),
               before: Sequence[str] = ()) -> str | None:
    """Run the top-level statements that call ``callee(...)`` inside ``with <context>:``.

    Statements already in a ``with <context>`` are left alone; a ``with`` over
    one of ``replaces`` (e.g. ``torch.no_grad()``) has that item swapped for
    ``context``; otherwise the span from the first to the last calling
    statement is wrapped. ``before`` statements not already in the cell above
    that span are put just before it. A span ending in the cell's displayed
    expression is not wrapped (the value would no longer show): None.
    """
    module = parse(source)
    if module is None:
        return None
    body = list(module.body)
    hits = [i for i, stmt in enumerate(body) if calls_name(stmt, callee)]
    if not hits:
        return None
    first, last = hits[0], hits[-1]
    withs = [stmt for i in hits if isinstance(stmt := body[i], cst.With)]
    if len(withs) == len(hits):
        for i, stmt in zip(hits, withs, strict=True):
            its = [code(w.item) for w in stmt.items]
            if context not in its and not set(its) & set(replaces):
                return None
            body[i] = stmt.with_changes(items=[
                w.with_changes(item=cst.parse_expression(context)) if code(w.item) in replaces else w
                for w in stmt.items])
        span = [body[first]]
    elif withs or _is_expression(body[last]) and last == len(body) - 1:
        return None
    else:
        inner = body[first:last + 1]
        span = [cst.With(items=[cst.WithItem(cst.parse_expression(context))],
                         body=cst.IndentedBlock(body=[inner[0].with_changes(leading_lines=[]), *inner[1:]]),
                         leading_lines=inner[0].leading_lines)]
        body[first:last + 1] = span
    present = {code(s.with_changes(leading_lines=[])).strip() for s in body[:first]}
    prelude = [cst.parse_statement(s) for s in before if s not in present]
    if prelude:
        prelude[0] = prelude[0].with_changes(leading_lines=span[0].leading_lines)
        body[first:first + 1] = [*prelude, span[0].with_changes(leading_lines=[])]
    return module.with_changes(body=body).code


def _is_expression(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[-1], cst.Expr)


def leading_lines(stmt: cst.BaseStatement) -> Sequence[cst.EmptyLine]:
    """The comment and blank lines above a statement (each kind of statement has them; their base class does
    not say so)."""
    assert isinstance(stmt, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
    return stmt.leading_lines


def after_imports(body: Sequence[cst.BaseStatement]) -> int:
    """Where the cell's leading import statements end: the index of the first other statement."""
    at = 0
    for stmt in body:
        if not (isinstance(stmt, cst.SimpleStatementLine)
                and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)):
            break
        at += 1
    return at


def ensure_call(source: str, callee: str, args: str) -> str | None:
    """A top-level ``callee(args)`` statement: its arguments replaced if present, else added after the imports."""
    module = parse(source)
    if module is None:
        return None
    body = list(module.body)
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr):
            call = stmt.body[0].value
            if isinstance(call, cst.Call) and dotted(call.func) == callee:
                new = cst.ensure_type(cst.parse_expression(f"{callee}({args})"), cst.Call)
                return replace_nodes(module, {call: lambda updated: updated.with_changes(args=new.args)})
    at = after_imports(body)
    statement = cst.parse_statement(f"{callee}({args})\n")
    return module.with_changes(body=body[:at] + [statement] + body[at:]).code


# ------------------------------------------------------------------ graphs
#: Calls that already turn a tensor into something holding no autograd graph.
_RELEASED_METHODS = ("item", "detach", "tolist")
_RELEASED_FUNCTIONS = ("float", "int")


def _appended_to(call: cst.Call) -> str | None:
    """``X`` for a call ``X.append(value)``; None for any other call."""
    func = call.func
    if (isinstance(func, cst.Attribute) and func.attr.value == "append" and isinstance(func.value, cst.Name)
            and len(call.args) == 1 and not call.args[0].star):
        return func.value.value
    return None


def _appends(module: cst.Module, container: str) -> list[cst.Call]:
    """The ``container.append(value)`` calls."""
    return find_nodes(module, cst.Call, lambda n: _appended_to(n) == container)


def appended_names(source: str) -> list[str]:
    """The variables the cell appends to, in order of first appearance."""
    module = parse(source)
    names = [_appended_to(call) for call in find_nodes(module, cst.Call)] if module else []
    return list(dict.fromkeys(name for name in names if name is not None))


def release_appends(source: str, container: str, method: str) -> str | None:
    """``container.append(x)`` -> ``container.append(x.<method>())`` where ``x`` still holds its graph."""
    module = parse(source)
    if module is None:
        return None
    appends = _appends(module, container)
    if not appends:
        return None
    changes: dict[cst.Call, Edit] = {}
    for call in appends:
        value = call.args[0].value
        if not _released(value):
            target = value if isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) else \
                value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            released = cst.Call(cst.Attribute(target, cst.Name(method)))
            changes[call] = functools.partial(_with_argument, released)
    return replace_nodes(module, changes)


def _with_argument(value: cst.BaseExpression, call: cst.Call) -> cst.Call:
    """``call`` with the value of its one argument replaced by ``value``."""
    return call.with_changes(args=[call.args[0].with_changes(value=value)])


def _released(node: cst.CSTNode) -> bool:
    return bool(find_nodes(node, cst.Call, lambda n: (
        isinstance(n.func, cst.Attribute) and n.func.attr.value in _RELEASED_METHODS
        or isinstance(n.func, cst.Name) and n.func.value in _RELEASED_FUNCTIONS)))
