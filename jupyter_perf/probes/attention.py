"""How a model computes attention: a fused kernel, or the softmax of a matmul written out.

Read once per model after the run, never on the hot path. A Hugging Face model says it in its config
(``config._attn_implementation``: ``"eager"``, ``"sdpa"``, ``"flash_attention_2"``, ...). Any other model is
read from its modules' source: a ``forward`` that takes a softmax over a matmul (``q @ k.transpose(-2, -1)``,
``torch.matmul``), directly or through the names it assigns (``att = q @ k...; att = att.masked_fill(...);
att = F.softmax(att, -1)``), computes attention by hand, unless it also calls
``scaled_dot_product_attention`` (nanoGPT keeps both paths and takes the fused one where torch has it).
The eager path materialises the T×T score matrix in memory and runs several kernels over it; torch's
``scaled_dot_product_attention`` (torch ≥ 2.0) computes the same in one fused kernel (FlashAttention or
memory-efficient attention on a GPU, a flash-style kernel on the CPU).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, TypeGuard

#: Calls that compute a softmax: ``F.softmax(x)``, ``torch.softmax(x)``, ``x.softmax(-1)`` (the last name).
_SOFTMAX = ("softmax",)
_MATMUL_CALLS = ("matmul", "bmm", "einsum")
_FUSED = "scaled_dot_product_attention"


def attention_facts(model: Any) -> dict[str, Any] | None:
    """``{"implementation", "by", "modules", "where", "fused_available", "sdpa_supported"}``, or None where the
    model has no attention this can recognise. ``implementation`` is the Hugging Face name, or ``"hand-written"``
    for a softmax over a matmul in a module's forward; ``where`` is that forward's file and line."""
    import torch

    fused = hasattr(torch.nn.functional, _FUSED)
    config = getattr(model, "config", None)
    implementation = getattr(config, "_attn_implementation", None)
    if isinstance(implementation, str):
        return {"implementation": implementation, "by": "config", "modules": [], "where": None,
                "fused_available": fused, "sdpa_supported": bool(getattr(model, "_supports_sdpa", False))}
    hand = [cls for cls in dict.fromkeys(type(m) for m in model.modules()) if hand_written(cls)]
    if not hand:
        return None
    return {"implementation": "hand-written", "by": "source", "modules": [cls.__name__ for cls in hand],
            "where": _where(hand[0]), "fused_available": fused, "sdpa_supported": fused}


def hand_written(cls: type) -> bool:
    """Whether ``cls.forward`` takes a softmax over a matmul and never calls the fused kernel (read once per
    class per run, after it: a source read and a parse, about a millisecond)."""
    tree = forward_tree(cls)
    if tree is None or calls_fused(tree):
        return False
    tainted: set[str] = set()  # names holding a matmul's result, or something computed from one
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _from_matmul(node.value, tainted):
            tainted.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return any(_is_softmax(n) and any(_from_matmul(a, tainted) for a in _operands(n)) for n in ast.walk(tree))


def calls_fused(tree: ast.AST) -> bool:
    """Whether the code names ``scaled_dot_product_attention`` (``F.scaled_dot_product_attention(...)``)."""
    return any(isinstance(n, ast.Attribute) and n.attr == _FUSED or isinstance(n, ast.Name) and n.id == _FUSED
               for n in ast.walk(tree))


def forward_tree(cls: type) -> ast.FunctionDef | None:
    """The AST of the ``forward`` ``cls`` defines itself (not an inherited one); None without source."""
    forward = cls.__dict__.get("forward")
    if forward is None or cls.__module__.startswith("torch."):
        return None
    try:
        source = textwrap.dedent(inspect.getsource(forward))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, ast.FunctionDef) else None


def _where(cls: type) -> str | None:
    try:
        forward = cls.__dict__["forward"]
        return f"{inspect.getsourcefile(forward)}:{inspect.getsourcelines(forward)[1]}"
    except (OSError, TypeError):
        return None


def _is_softmax(node: ast.AST) -> TypeGuard[ast.Call]:
    return isinstance(node, ast.Call) and _callee(node) in _SOFTMAX


def _operands(call: ast.Call) -> list[ast.expr]:
    """What a softmax may be taken of: its first argument (``F.softmax(x, -1)``), or the object it is called on
    (``x.softmax(-1)``); a module such as ``F`` or ``torch`` never holds a matmul, so both can be looked at."""
    return list(call.args[:1]) + ([call.func.value] if isinstance(call.func, ast.Attribute) else [])


def _from_matmul(node: ast.AST, tainted: set[str]) -> bool:
    """An expression holding a matmul, or a name assigned from one."""
    for n in ast.walk(node):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult):
            return True
        if isinstance(n, ast.Call) and _callee(n) in _MATMUL_CALLS:
            return True
        if isinstance(n, ast.Name) and n.id in tainted:
            return True
    return False


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
