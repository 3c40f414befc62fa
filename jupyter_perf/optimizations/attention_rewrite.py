"""Hand-written attention -> ``scaled_dot_product_attention``, in the class's own code (libcst).

Recognised: in a class's ``forward``, nanoGPT's shape of attention, one statement after another in one block::

    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))   # or torch.matmul(q, k.transpose(...)), / s
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf')) # optional, or inside the softmax
    att = F.softmax(att, dim=-1)                                        # or torch.softmax, att.softmax(-1)
    att = self.attn_dropout(att)                                        # optional: an nn.Dropout, or F.dropout
    y = att @ v                                                         # the scores' one use, later in the block

becomes ``y = F.scaled_dot_product_attention(q, k, v, is_causal=True)``: the statements building the scores go,
and their one use becomes the call. A mask ``masked_fill(cond, -inf)`` becomes ``is_causal=True`` where the
caller says ``cond`` is a causal mask (a lower-triangular buffer sliced to the sequence), else
``attn_mask=~(cond)``; a scale other than torch's default 1/√d is passed as ``scale=``; dropout becomes
``dropout_p=<p> if self.training else 0.0``. Anything else (another op between the two matmuls, the scores
used twice, returned or stored) is not recognised: None, and the optimization explains what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeGuard

import libcst as cst

from .rewrite import code, find_nodes, leading_lines, mentions, parse, replace_nodes, swapped

#: Key transposes: ``k.transpose(-2, -1)`` (either order, or dims 2 and 3 of a 4-d tensor), ``k.mT``.
_TRANSPOSES = {("-2", "-1"), ("-1", "-2"), ("2", "3"), ("3", "2")}
#: Scales equal to torch's default 1/sqrt(d) for the key ``k``: ``1.0 / math.sqrt(k.size(-1))``,
#: ``k.size(-1) ** -0.5``, ``1 / (k.shape[-1] ** 0.5)`` ... (``{k}`` is the key's or the query's code).
_DEFAULT_SCALE = r"1(\.0)?\s*/\s*\(?\s*(math\.sqrt\({d}\)|{d}\s*\*\*\s*0?\.5)\s*\)?|{d}\s*\*\*\s*-\s*0?\.5"
_DEFAULT_DIVISOR = r"\(?\s*(math\.sqrt\({d}\)|{d}\s*\*\*\s*0?\.5)\s*\)?"
_HEAD_DIM = r"({x}\.size\(-1\)|{x}\.shape\[-1\]|{x}\.size\(3\)|{x}\.shape\[3\])"


@dataclass
class Scores:
    """What the statements building the attention scores do, read off the code."""

    query: str
    key: str
    scale: str | None = None  # code of the scale passed to sdpa, None for the default
    scaled: bool = False  # the scores were scaled (by the default or ``scale``)
    mask: str | None = None  # ``is_causal=True``, or ``attn_mask=~(<masked_fill's condition>)``
    dropout: str | None = None  # code of the dropout probability expression
    softmaxed: bool = False
    functional: str | None = None  # the module the softmax was called from (``F``), to call sdpa from
    statements: list[cst.BaseStatement] = field(default_factory=list)


def rewrite_attention(source: str, class_name: str, is_causal: Callable[[str], bool], is_dropout: Callable[[str], bool],
                      functional: str) -> str | None:
    """The cell with ``class_name.forward``'s hand-written attention replaced by one fused call (module docstring).

    ``is_causal(code)``: whether a masked_fill condition is a causal mask; ``is_dropout(attribute)``: whether
    ``self.<attribute>`` is an ``nn.Dropout``; ``functional``: the name of ``torch.nn.functional`` to write where
    the softmax was not called from it. The same text where the forward already calls the fused kernel;
    None where the pattern is not found exactly once.
    """
    module = parse(source)
    if module is None:
        return None
    classes = find_nodes(module, cst.ClassDef, lambda n: n.name.value == class_name)
    if len(classes) != 1:
        return None
    forwards = [s for s in classes[0].body.body if isinstance(s, cst.FunctionDef) and s.name.value == "forward"]
    if len(forwards) != 1:
        return None
    if "scaled_dot_product_attention" in code(forwards[0]):
        return source
    found = [(block, match) for block in find_nodes(forwards[0], cst.IndentedBlock)
             for match in [_match(list(block.body), is_causal, is_dropout)] if match is not None]
    if len(found) != 1:
        return None
    block, (scores, use, value) = found[0]
    call = cst.parse_expression(_sdpa(scores, value, functional))
    statements = list(block.body)
    first, count = statements.index(scores.statements[0]), len(scores.statements)
    after = statements[first + count]  # it carries the comments that stood above the chain
    after = after.with_changes(leading_lines=[*leading_lines(scores.statements[0]), *leading_lines(after)])
    body = [swapped(s, use, call) for s in [*statements[:first], after, *statements[first + count + 1:]]]
    return replace_nodes(module, {block: lambda updated: updated.with_changes(body=body)})


def _sdpa(scores: Scores, value: str, functional: str) -> str:
    args = [scores.query, scores.key, value]
    if scores.mask is not None:
        args.append(scores.mask)
    if scores.dropout is not None:
        args.append(f"dropout_p={scores.dropout}")
    if scores.scale is not None or not scores.scaled:  # unscaled scores: sdpa's default 1/sqrt(d) would scale them
        args.append(f"scale={scores.scale or '1.0'}")
    return f"{scores.functional or functional}.scaled_dot_product_attention({', '.join(args)})"


def _match(statements: list[cst.BaseStatement], is_causal, is_dropout) -> tuple[Scores, cst.CSTNode, str] | None:
    """(what the scores are, the node using them, the value's code) for a chain starting in ``statements``."""
    for i, statement in enumerate(statements):
        assigned = _assignment(statement)
        if assigned is None:
            continue
        name, value = assigned
        scores = _product(value)
        if scores is None:
            continue
        scores.statements.append(statement)
        for later in statements[i + 1:]:
            step = _assignment(later)
            if step is None or step[0] != name or not _apply(step[1], name, scores, is_causal, is_dropout):
                break
            scores.statements.append(later)
        rest = statements[i + len(scores.statements):]
        uses = [n for s in rest for n in find_nodes(s, cst.Name, lambda n: n.value == name)]
        products = [n for s in rest for n in find_nodes(s, cst.CSTNode, lambda n: _value_product(n, name) is not None)]
        if scores.softmaxed and len(uses) == 1 and len(products) == 1 \
                and (value_code := _value_product(products[0], name)) is not None:
            return scores, products[0], value_code
    return None


def _assignment(statement: cst.CSTNode) -> tuple[str, cst.BaseExpression] | None:
    """(name, value) for a line ``name = value``."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        return small.targets[0].target.value, small.value
    return None


def _product(value: cst.BaseExpression) -> Scores | None:
    """``q @ kᵀ``, ``torch.matmul(q, kᵀ)``, either times or over a scale."""
    scale: cst.BaseExpression | None = None
    divide = False
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        divide = isinstance(value.operator, cst.Divide)
        scale = value.right
        value = value.left
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.MatrixMultiply):
        query, keys = value.left, value.right
    elif _called(value, ("matmul",)) and len(value.args) == 2:
        query, keys = value.args[0].value, value.args[1].value
    else:
        return None
    key = _untransposed(keys)
    if key is None:
        return None
    scores = Scores(code(query.with_changes(lpar=[], rpar=[])), key, scaled=scale is not None)
    if scale is not None:
        text = code(scale.with_changes(lpar=[], rpar=[]))
        dims = "|".join(_HEAD_DIM.format(x=re.escape(x)) for x in (scores.key, scores.query))
        default = (_DEFAULT_DIVISOR if divide else _DEFAULT_SCALE).format(d=f"({dims})")
        if not re.fullmatch(default, text.strip()):
            scores.scale = f"1 / ({text})" if divide else text
    return scores


def _untransposed(node: cst.BaseExpression) -> str | None:
    """``k`` for ``k.transpose(-2, -1)`` and the like, ``k.mT``."""
    if isinstance(node, cst.Attribute) and node.attr.value == "mT":
        return code(node.value)
    if _called(node, ("transpose",)) and isinstance(node.func, cst.Attribute) and len(node.args) == 2:
        dims = tuple(code(a.value).replace(" ", "") for a in node.args)
        return code(node.func.value) if dims in _TRANSPOSES else None
    return None


def _apply(value: cst.BaseExpression, name: str, scores: Scores, is_causal, is_dropout) -> bool:
    """Read one step of the chain (``name = f(name)``) into ``scores``; False where it is not one of the kind."""
    if isinstance(value, cst.Name):
        return value.value == name
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)) \
            and not scores.softmaxed and not scores.scaled and scores.mask is None \
            and not mentions(value.right, name):
        text = code(value.right)
        scores.scaled = True
        scores.scale = f"1 / ({text})" if isinstance(value.operator, cst.Divide) else text
        return _apply(value.left, name, scores, is_causal, is_dropout)
    if _called(value, ("masked_fill",)) and isinstance(value.func, cst.Attribute) and len(value.args) == 2 \
            and not scores.softmaxed and scores.mask is None and not mentions(value.args[0].value, name):
        condition = code(value.args[0].value)
        scores.mask = "is_causal=True" if is_causal(condition) else f"attn_mask=~({condition})"
        return _apply(value.func.value, name, scores, is_causal, is_dropout)
    if _called(value, ("softmax",)) and not scores.softmaxed:
        inner, dims = _softmax_operand(value)
        if inner is None or dims not in ("-1", "dim=-1", "3", "dim=3") or \
                not _apply(inner, name, scores, is_causal, is_dropout):
            return False
        func = value.func  # F.softmax(x): sdpa is called from F too; not from torch, nor from x in x.softmax()
        if isinstance(func, cst.Attribute) and func.value is not inner and code(func.value) != "torch":
            scores.functional = code(func.value)
        scores.softmaxed = True
        return True
    if scores.softmaxed and scores.dropout is None:
        return _dropout(value, name, scores, is_causal, is_dropout)
    return False


def _softmax_operand(call: cst.Call) -> tuple[cst.BaseExpression | None, str]:
    """(what the softmax is over, its dim argument's code)."""
    if isinstance(call.func, cst.Attribute) and len(call.args) == 1:  # att.softmax(-1) / att.softmax(dim=-1)
        return call.func.value, code(call.args[0]).replace(" ", "").rstrip(",")
    if len(call.args) == 2:  # F.softmax(att, dim=-1), torch.softmax(att, -1)
        return call.args[0].value, code(call.args[1]).replace(" ", "").rstrip(",")
    return None, ""


def _dropout(value: cst.BaseExpression, name: str, scores: Scores, is_causal, is_dropout) -> bool:
    """``self.drop(att)`` with ``self.drop`` an nn.Dropout, or ``F.dropout(att, p=..., training=...)``."""
    if not isinstance(value, cst.Call) or not value.args or not isinstance(value.args[0].value, cst.Name) \
            or value.args[0].value.value != name:
        return False
    func = value.func
    if isinstance(func, cst.Attribute) and code(func.value) == "self" and len(value.args) == 1 \
            and is_dropout(func.attr.value):
        scores.dropout = f"self.{func.attr.value}.p if self.training else 0.0"
        return True
    keywords = {a.keyword.value: code(a.value) for a in value.args[1:] if a.keyword}
    if _called(value, ("dropout",)) and set(keywords) == {"p", "training"} and len(value.args) == 3:
        scores.dropout = f"{keywords['p']} if {keywords['training']} else 0.0"
        return True
    return False


def _value_product(node: cst.CSTNode, name: str) -> str | None:
    """``v``'s code where ``node`` is ``name @ v`` or ``torch.matmul(name, v)``."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply) \
            and isinstance(node.left, cst.Name) and node.left.value == name and not node.left.lpar:
        return code(node.right.with_changes(lpar=[], rpar=[]))
    if _called(node, ("matmul",)) and len(node.args) == 2 and isinstance(node.args[0].value, cst.Name) \
            and node.args[0].value.value == name:
        return code(node.args[1].value)
    return None


def _called(node: cst.CSTNode, names: tuple[str, ...]) -> TypeGuard[cst.Call]:
    """A call of ``x.<name>(...)`` or ``<name>(...)``."""
    if not isinstance(node, cst.Call):
        return False
    func = node.func
    return (func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)) in names
