"""Code rewrites for the model-level optimizations, with libcst (formatting and comments kept).

Same contract as rewrite.py: each helper takes a cell's text and returns the
new text, the same text when the code already has the change, or None where
it does not find its pattern, so the caller shows a snippet instead of
guessing. Four shapes of edit:

* a statement that changes the model (``model = torch.compile(model)``) goes
  right after the top-level statement that builds it, past the lines that
  only configure it (``model.eval()``, ``model.load_state_dict(...)``): never
  at the top of a loop cell, where running the cell again would apply it twice;
* a setting (``torch.backends.cudnn.allow_tf32 = True``) goes after the imports;
* the model's calls: their input converted (``model(x.to(memory_format=...))``),
  or the statements making them run under a context (autocast);
* the training loop, recognised only in its plain form: one ``loss.backward()``
  statement in the body of a ``for`` loop, the loss assigned by a statement
  before it, one ``<optimizer>.step()`` statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeGuard

import libcst as cst

from .rewrite import (
    after_imports,
    calls_name,
    code,
    find_nodes,
    leading_lines,
    mentions,
    parse,
    replace_nodes,
    wrap_calls,
)


def free_name(base: str, source: str, namespace: dict) -> str:
    """``base``, or ``base_2``..., unused by the cell's code and the namespace."""
    module = parse(source)

    def taken(n: str) -> bool:
        return n in namespace or (module is not None and mentions(module, n))

    name, i = base, 1
    while taken(name):
        i += 1
        name = f"{base}_{i}"
    return name


# ------------------------------------------------------------------ statements
def after_binding(source: str, name: str, statement: str, imports: Sequence[str] = ()) -> str | None:
    """``statement`` after the top-level statement binding ``name`` (and the lines configuring it); ``imports`` too.

    Unchanged where the cell already has the statement; None where no
    top-level statement binds ``name``.
    """
    module = parse(source)
    if module is None:
        return None
    body = list(module.body)
    new = cst.parse_statement(statement.rstrip("\n") + "\n")
    if any(_same(stmt, new) for stmt in body):
        return source
    bound = [i for i, stmt in enumerate(body) if binds_name(stmt, name)]
    if not bound:
        return None
    at = bound[-1] + 1
    while at < len(body) and _configures(body[at], name):
        at += 1
    body.insert(at, new)
    return _with_imports(body, imports, module)


def ensure_assignment(source: str, target: str, value: str) -> str | None:
    """A top-level ``target = value``: its value replaced where the cell assigns ``target``, else added after the
    imports."""
    module = parse(source)
    if module is None:
        return None
    for stmt in module.body:
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and code(small.targets[0].target) == target:
            return replace_nodes(module, {small: lambda u: u.with_changes(value=cst.parse_expression(value))})
    body = list(module.body)
    body.insert(after_imports(body), cst.parse_statement(f"{target} = {value}\n"))
    return module.with_changes(body=body).code


def convert_inputs(source: str, callee: str, conversion: str) -> str | None:
    """``callee(x, ...)`` -> ``callee(x.<conversion>, ...)`` for every call by name; ``conversion`` is e.g.
    ``to(...)``."""
    module = parse(source)
    if module is None:
        return None
    calls = find_nodes(module, cst.Call, lambda n: isinstance(n.func, cst.Name) and n.func.value == callee
                       and bool(n.args) and not n.args[0].star and n.args[0].keyword is None)
    if not calls:
        return None
    template = cst.ensure_type(cst.parse_expression(f"_.{conversion}"), cst.Call)

    def convert(call: cst.Call) -> cst.Call:
        value = call.args[0].value
        if code(value).endswith(f".{conversion}"):
            return call
        if not isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        converted = template.with_changes(func=template.func.with_changes(value=value))
        return call.with_changes(args=[call.args[0].with_changes(value=converted), *call.args[1:]])

    return replace_nodes(module, dict.fromkeys(calls, convert))


def _same(stmt: cst.CSTNode, new: cst.CSTNode) -> bool:
    return code(stmt.with_changes(leading_lines=[])).strip() == code(new).strip()


def binds_name(stmt: cst.CSTNode, name: str) -> bool:
    """Whether a top-level simple statement assigns ``name`` (``name = ...``, ``a, name = ...``, ``name: T = ...``)."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    targets: list[cst.CSTNode] = []
    for small in stmt.body:
        if isinstance(small, cst.Assign):
            targets += [t.target for t in small.targets]
        elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
            targets.append(small.target)
    return any(name in _target_names(t) for t in targets)


def _target_names(target: cst.CSTNode) -> list[str]:
    """Variables an assignment target binds: ``a``, ``a, (b, *c)``; not ``obj.a`` or ``d[a]``."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    return []


def _configures(stmt: cst.CSTNode, name: str) -> bool:
    """A line of ``name.method(...)`` calls only (``model.eval()``, ``model.load_state_dict(sd)``)."""
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, cst.Expr) and isinstance(s.value, cst.Call) and isinstance(s.value.func, cst.Attribute)
        and isinstance(s.value.func.value, cst.Name) and s.value.func.value.value == name for s in stmt.body)


def _with_imports(body: Sequence[cst.BaseStatement], imports: Iterable[str], module: cst.Module) -> str:
    """The module with ``body``, and each ``import x.y`` the cell lacks added after its imports."""
    present = {code(alias.name) for stmt in body if isinstance(stmt, cst.SimpleStatementLine)
               for small in stmt.body if isinstance(small, cst.Import) for alias in small.names}
    missing = [cst.parse_statement(f"import {m}\n") for m in imports if m not in present]
    at = after_imports(body)
    return module.with_changes(body=[*body[:at], *missing, *body[at:]]).code


def autocast_calls(source: str, callee: str, context: str) -> str | None:
    """The top-level statements calling ``callee`` under ``context``: wrapped (rewrite.wrap_calls), or, where they
    are ``with`` statements already (``with torch.inference_mode():``), with ``context`` added to their items."""
    wrapped = wrap_calls(source, callee, context)
    module = parse(source) if wrapped is None else None
    if module is None:
        return wrapped
    hits = [s for s in module.body if calls_name(s, callee)]
    if not hits or not all(isinstance(s, cst.With) for s in hits):
        return wrapped
    item = cst.WithItem(cst.parse_expression(context))

    def add(u: cst.With) -> cst.With:
        if any(code(w.item) == context for w in u.items):
            return u
        last = u.items[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        return u.with_changes(items=[*u.items[:-1], last, item])

    return replace_nodes(module, dict.fromkeys(hits, add))


# --------------------------------------------------------------- training loop
class TrainingLoop:
    """The cell's training loop: the ``for`` whose own body holds the one ``.backward()`` statement."""

    def __init__(self, loop: cst.For, line: int, backward: cst.Call):
        self.loop, self.line, self.backward = loop, line, backward
        self.lines: list[cst.BaseStatement] = list(cst.ensure_type(loop.body, cst.IndentedBlock).body)

    @classmethod
    def find(cls, module: cst.Module) -> TrainingLoop | None:
        calls = find_nodes(module, cst.Call, lambda n: isinstance(n.func, cst.Attribute)
                           and n.func.attr.value == "backward")
        if len(calls) != 1:
            return None
        for loop in find_nodes(module, cst.For):
            if not isinstance(loop.body, cst.IndentedBlock):
                continue
            for i, line in enumerate(loop.body.body):
                if isinstance(line, cst.SimpleStatementLine) and any(
                        isinstance(s, cst.Expr) and s.value is calls[0] for s in line.body):
                    return cls(loop, i, calls[0])
        return None

    @property
    def receiver(self) -> cst.BaseExpression:
        """What ``.backward()`` is called on."""
        return cst.ensure_type(self.backward.func, cst.Attribute).value

    @property
    def loss(self) -> str | None:
        """``loss`` in ``loss.backward()``, ``(loss / 2).backward()``, ``scaler.scale(loss).backward()``."""
        receiver = self.receiver
        if _is_scaled(receiver):
            receiver = receiver.args[0].value
        if isinstance(receiver, cst.BinaryOperation) and isinstance(receiver.operator, cst.Divide):
            receiver = receiver.left
        return receiver.value if isinstance(receiver, cst.Name) else None

    def replace_lines(self, module: cst.Module, lines: list[cst.BaseStatement]) -> str:
        return replace_nodes(module, {self.loop: lambda u: u.with_changes(body=u.body.with_changes(body=lines))})


def _is_scaled(node: cst.CSTNode) -> TypeGuard[cst.Call]:
    """``scaler.scale(x)``: GradScaler's scaled loss."""
    return _is_call_of(node, ("scale",)) and len(node.args) == 1


def _assigns(node: cst.CSTNode, name: str) -> bool:
    return any(isinstance(t.target, cst.Name) and t.target.value == name
               for a in find_nodes(node, cst.Assign) for t in a.targets)


def _wrap(lines: list[cst.BaseStatement], start: int, end: int, context: str) -> list[cst.BaseStatement]:
    """``lines[start:end + 1]`` inside ``with <context>:``, the comments above the first line above the ``with``."""
    inner = lines[start:end + 1]
    block = cst.With(items=[cst.WithItem(cst.parse_expression(context))],
                     body=cst.IndentedBlock(body=[inner[0].with_changes(leading_lines=[]), *inner[1:]]),
                     leading_lines=leading_lines(inner[0]))
    return [*lines[:start], block, *lines[end + 1:]]


def autocast_training(source: str, model: str, context: str) -> str | None:
    """In the training loop, the statements from the first call of ``model`` to the loss's assignment under ``context``.

    The backward and the optimizer step stay outside, as autocast's
    documentation asks. Unchanged where the loss is already assigned under an
    autocast ``with``.
    """
    module = parse(source)
    found = TrainingLoop.find(module) if module is not None else None
    if module is None or found is None or (loss := found.loss) is None:
        return None
    before = found.lines[:found.line]
    if any(isinstance(s, cst.With) and _assigns(s, loss) and any("autocast" in code(w.item) for w in s.items)
           for s in before):
        return source
    assigned = [i for i, s in enumerate(before) if isinstance(s, cst.SimpleStatementLine) and _assigns(s, loss)]
    start = next((i for i, s in enumerate(before) if calls_name(s, model)), None)
    if not assigned or start is None or start > assigned[-1]:
        return None
    return found.replace_lines(module, _wrap(found.lines, start, assigned[-1], context))


def scale_gradients(source: str, scaler: str, optimizers: Iterable[str], create: str) -> str | None:
    """GradScaler calls: ``scaler.scale(loss).backward()``, ``scaler.step(opt)`` then ``scaler.update()``.

    ``create`` (``scaler = torch.amp.GradScaler("cuda")``) goes before the
    top-level statement holding the loop. Unchanged where the backward is
    already scaled.
    """
    module = parse(source)
    found = TrainingLoop.find(module) if module is not None else None
    if module is None or found is None or found.loss is None:
        return None
    if _is_scaled(found.receiver):
        return source
    names = set(optimizers)
    lines = find_nodes(module, cst.SimpleStatementLine, lambda n: any(_step_of(s, names) for s in n.body))
    top = [s for s in module.body if find_nodes(s, cst.For, lambda n: n is found.loop)]
    if len(lines) != 1:
        return None
    step_line = lines[0]
    at = next(i for i, s in enumerate(step_line.body) if _step_of(s, names))
    optimizer = _step_of(step_line.body[at], names)
    scaled = cst.ensure_type(cst.parse_expression(f"{scaler}.scale(_)"), cst.Call)
    scaled = scaled.with_changes(args=[scaled.args[0].with_changes(
        value=found.receiver.with_changes(lpar=[], rpar=[]))])
    update = cst.parse_statement(f"{scaler}.update()\n")
    created = cst.parse_statement(create + "\n").with_changes(leading_lines=top[0].leading_lines)

    def step(u: cst.SimpleStatementLine) -> cst.FlattenSentinel[cst.BaseStatement]:
        body = list(u.body)
        body[at] = body[at].with_changes(value=cst.parse_expression(f"{scaler}.step({optimizer})"))
        return cst.FlattenSentinel([u.with_changes(body=body), update])

    return replace_nodes(module, {
        found.backward: lambda u: u.with_changes(func=u.func.with_changes(value=scaled)),
        step_line: step,
        top[0]: lambda u: cst.FlattenSentinel([created, u.with_changes(leading_lines=[])]),
    })


def _step_of(small: cst.CSTNode, optimizers: set[str]) -> str | None:
    """The optimizer's name where ``small`` is the statement ``<optimizer>.step()`` or
    ``<scaler>.step(<optimizer>)``."""
    call = small.value if isinstance(small, cst.Expr) else None
    if not _is_call_of(call, ("step",)):
        return None
    receiver = cst.ensure_type(call.func, cst.Attribute).value
    if isinstance(receiver, cst.Name) and receiver.value in optimizers and not call.args:
        return receiver.value
    if len(call.args) == 1 and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value in optimizers:
        return call.args[0].value.value
    return None


# ----------------------------------------------------------- micro-batches
def micro_batches(source: str, k: int, optimizers: Iterable[str]) -> tuple[str, int | None, set[str]] | None:
    """Each batch of the training loop split into ``k`` micro-batches, the loss scaled by 1/k, one step per batch.

    Returns (new text, the micro-batch count the code had already or None,
    the names statements after the step read that now hold the last
    micro-batch's values only). The loop's own batch variables are chunked
    with ``.chunk(k)`` under the same names, so the forward code is untouched;
    ``zero_grad`` moves before the micro-batch loop, the step and what
    follows the backward stay after it.
    """
    module = parse(source)
    found = TrainingLoop.find(module) if module is not None else None
    if module is None or found is None:
        return None
    existing = chunk_count(found.loop)
    if existing is not None:
        return source, existing, set()
    names = _batch_names(found.loop)
    scaled = scaled_backward(found.backward, k)
    split = split_loop_body(found, set(optimizers))
    if names is None or scaled is None or split is None:
        return None
    pre, micro, post = split
    micro = [replace_call(s, found.backward, scaled) for s in micro]
    chunked = [f"{n}.chunk({k})" for n in names]
    iterable = chunked[0] if len(chunked) == 1 else f"zip({', '.join(chunked)})"
    target = code(_inner_target(found.loop))
    inner = cst.parse_statement(f"for {target} in {iterable}:\n    pass\n").with_changes(
        body=cst.IndentedBlock(body=[micro[0].with_changes(leading_lines=[]), *micro[1:]]),
        leading_lines=micro[0].leading_lines)
    assigned = {t.target.value for s in micro for a in find_nodes(s, cst.Assign)
                for t in a.targets if isinstance(t.target, cst.Name)}
    stale = {n for n in {*names, *assigned} if any(mentions(s, n) for s in post)}
    return found.replace_lines(module, [*pre, inner, *post]), None, stale


def _inner_target(loop: cst.For) -> cst.CSTNode:
    """The batch part of the loop target: ``(x, y)`` in ``for i, (x, y) in enumerate(loader)``."""
    if (isinstance(loop.iter, cst.Call) and isinstance(loop.iter.func, cst.Name) and loop.iter.func.value == "enumerate"
            and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2):
        return loop.target.elements[1].value
    return loop.target


def _batch_names(loop: cst.For) -> list[str] | None:
    target = _inner_target(loop)
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        names = [e.value.value for e in target.elements if isinstance(e.value, cst.Name)]
        return names if len(names) == len(target.elements) else None
    return None


def chunk_count(loop: cst.For) -> int | None:
    """k where the loop already iterates ``x.chunk(k)`` or ``zip(x.chunk(k), ...)``."""
    calls = find_nodes(loop.iter, cst.Call, lambda n: isinstance(n.func, cst.Attribute) and n.func.attr.value == "chunk"
                       and len(n.args) == 1 and isinstance(n.args[0].value, cst.Integer))
    return int(cst.ensure_type(calls[0].args[0].value, cst.Integer).value) if calls else None


def scaled_backward(call: cst.Call, k: int) -> cst.Call | None:
    """``(loss / k).backward()``; ``scaler.scale(loss / k).backward()``."""
    receiver = cst.ensure_type(call.func, cst.Attribute).value
    if isinstance(receiver, cst.Name):
        return call.with_changes(func=call.func.with_changes(value=cst.parse_expression(f"({receiver.value} / {k})")))
    if _is_scaled(receiver) and isinstance(receiver.args[0].value, cst.Name):
        arg = receiver.args[0].with_changes(value=cst.parse_expression(f"{receiver.args[0].value.value} / {k}"))
        return call.with_changes(func=call.func.with_changes(value=receiver.with_changes(args=[arg])))
    return None


def replace_call(stmt: cst.BaseStatement, old: cst.Call, new: cst.Call) -> cst.BaseStatement:
    """``stmt`` with the expression statement that is the call ``old`` (by identity) made ``new``."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return stmt
    return stmt.with_changes(body=[s.with_changes(value=new) if isinstance(s, cst.Expr) and s.value is old else s
                                   for s in stmt.body])


_PRE, _MICRO, _POST = range(3)


def split_loop_body(found: TrainingLoop, optimizers: set[str]) -> tuple[list, list, list] | None:
    """The loop body's lines as (before the micro-batch loop, inside it, after it); None where it cannot be split.

    Before the backward: ``zero_grad`` calls go before the micro-batch loop,
    everything else inside it; from the backward on, everything stays after
    it, and there the optimizer must step exactly once. A line holding
    statements of several parts (``opt.zero_grad(); loss.backward(); opt.step()``)
    is split into one line per part; every other line is kept as it is.
    """
    regions: list[list] = [[], [], []]
    seen_backward, steps = False, 0
    for line in found.lines:
        if not isinstance(line, cst.SimpleStatementLine):
            if not seen_backward and find_nodes(line, cst.Call, lambda n: _is_call_of(n, ("zero_grad", "step"))):
                return None  # inside an if/with before the backward: not the plain form
            regions[_POST if seen_backward else _MICRO].append(line)
            continue
        parts = []
        for small in line.body:
            if seen_backward:
                parts.append(_POST)
                steps += _step_of(small, optimizers) is not None
            elif isinstance(small, cst.Expr) and small.value is found.backward:
                parts.append(_MICRO)
                seen_backward = True
            elif _step_of(small, optimizers) is not None:
                return None  # a step before the backward
            else:
                parts.append(_PRE if isinstance(small, cst.Expr) and _is_call_of(small.value, ("zero_grad",))
                             else _MICRO)
        for region, run in _runs(line, parts):
            regions[region].append(run)
    pre, micro, post = regions
    return (pre, micro, post) if steps == 1 else None


def _is_call_of(node: cst.CSTNode | None, methods: tuple[str, ...]) -> TypeGuard[cst.Call]:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in methods


def _runs(line: cst.SimpleStatementLine, parts: list[int]) -> list[tuple[int, cst.SimpleStatementLine]]:
    """The line, whole when all its statements go to one part, else one line per run of statements of a part."""
    if len(set(parts)) == 1:
        return [(parts[0], line)]
    runs: list[tuple[int, list]] = []
    for region, small in zip(parts, line.body):
        if runs and runs[-1][0] == region:
            runs[-1][1].append(small)
        else:
            runs.append((region, [small]))
    out = []
    for i, (region, smalls) in enumerate(runs):
        smalls[-1] = smalls[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        out.append((region, cst.SimpleStatementLine(
            body=smalls, leading_lines=line.leading_lines if i == 0 else [],
            trailing_whitespace=line.trailing_whitespace if i == len(runs) - 1 else cst.TrailingWhitespace())))
    return out
