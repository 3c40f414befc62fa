"""attention.sdpa: attention in torch's fused ``scaled_dot_product_attention`` instead of a softmax over q @ kᵀ.

The eager path writes the T×T scores to memory, masks them, takes their softmax, then multiplies by v: several
kernels over a matrix that grows with the square of the sequence. ``scaled_dot_product_attention`` does it in
one kernel (FlashAttention or memory-efficient attention on a GPU, a flash-style kernel on the CPU).

* A Hugging Face model (``config._attn_implementation == "eager"``): the live model switches with
  ``model.set_attn_implementation("sdpa")`` (transformers 5; undone the same way), and the code that chose
  eager (``from_pretrained(..., attn_implementation="eager")``, a config built with it) says ``"sdpa"``;
  where no such argument is found, ``model.set_attn_implementation("sdpa")`` goes after the line building it.
* A hand-written attention module (probes/attention.py found it): where its forward has nanoGPT's shape
  (attention_rewrite.py), the class's cell is rewritten to one ``F.scaled_dot_product_attention`` call and the
  live class gets the rewritten ``forward`` (every instance at once; the undo puts the old function back).
  Otherwise the Change says where the attention is and what to write there, and changes nothing.

Numerics: the same math in another order, so the guard holds the outputs within float32 roundoff (the
``attention`` threshold), replaying the model's recorded call from the profiled run where there is one.
"""

from __future__ import annotations

import inspect
import linecache
import re
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import libcst as cst

from ..catalog import CATALOG
from ..probes.attention import attention_facts, calls_fused, forward_tree
from .attention_rewrite import rewrite_attention
from .base import Change, Context, NotApplicable, Optimization, Undo, torch_name
from .model_rewrite import after_binding
from .models import INPUTS_PARAM, MODEL_PARAM, held_inputs, pick_model
from .rewrite import code, find_nodes, parse, replace_nodes

if TYPE_CHECKING:
    from .guard import NumericsResult

#: A masked_fill condition that is a causal mask: ``self.<buffer>[:, :, :T, :T] == 0`` (any leading full slices),
#: the buffer being checked lower-triangular on the live modules.
_CAUSAL = re.compile(r"self\.(\w+)\[(?:\s*:\s*,)*\s*:\s*(\w+)\s*,\s*:\s*\2\s*\]\s*==\s*0")


class Sdpa(Optimization):
    entry = CATALOG["attention.sdpa"]
    params: ClassVar[dict[str, str]] = {"model": MODEL_PARAM, "inputs": INPUTS_PARAM}

    def plan(self, ctx: Context) -> Change:
        name, model = pick_model(ctx)
        facts = attention_facts(model)
        if facts is None:
            if any(_fused(type(m)) for m in model.modules()):
                return ctx.unchanged(f"{name}'s attention calls scaled_dot_product_attention")
            raise NotApplicable(f"{name} has no attention recognised here: neither a Hugging Face config's "
                                "attn_implementation nor a forward taking a softmax over q @ kᵀ")
        if not facts["fused_available"]:
            raise NotApplicable("this torch has no torch.nn.functional.scaled_dot_product_attention (torch ≥ 2.0)")
        if facts["by"] == "config":
            return _hugging_face(ctx, name, model, facts["implementation"])
        return _hand_written(ctx, name, model, facts)


# ------------------------------------------------------------- Hugging Face
def _hugging_face(ctx: Context, name: str, model: Any, implementation: str) -> Change:
    if implementation == "sdpa":
        return ctx.unchanged(f'{name} computes attention with attn_implementation="sdpa"')
    if implementation != "eager":
        raise NotApplicable(f'{name} computes attention with attn_implementation="{implementation}" already')
    if not hasattr(model, "set_attn_implementation"):
        raise NotApplicable('this transformers cannot switch a built model\'s attention: build it with '
                            'attn_implementation="sdpa"')
    if not getattr(model, "_supports_sdpa", False) or not model._can_set_attn_implementation():
        raise NotApplicable(f"{type(model).__name__} does not support switching to sdpa attention")
    statement = f'{name}.set_attn_implementation("sdpa")'
    found = ctx.rewrite(ctx.targets(name), lambda s: eager_to_sdpa(s) or after_binding(s, name, statement))
    check = _guard(ctx, name, model)

    def live(undo: Undo) -> NumericsResult:
        def switch() -> Any:
            model.set_attn_implementation("sdpa")
            undo.push(lambda: model.set_attn_implementation(implementation))
            return model

        return check(switch)

    return ctx.change(f'{name} computes attention with "sdpa" (scaled_dot_product_attention) instead of "eager"; '
                      "re-run the cell to measure", live, [], None if found else statement, expects={name: model})


def eager_to_sdpa(source: str) -> str | None:
    """The one ``attn_implementation="eager"`` argument in the cell made ``"sdpa"`` (quotes kept); None unless
    there is exactly one."""
    module = parse(source)
    if module is None:
        return None
    found = find_nodes(module, cst.Arg, lambda n: n.keyword is not None
                       and n.keyword.value == "attn_implementation" and isinstance(n.value, cst.SimpleString)
                       and n.value.evaluated_value == "eager")
    if len(found) != 1:
        return None
    quote = cst.ensure_type(found[0].value, cst.SimpleString).quote
    return replace_nodes(module, {found[0]: lambda u: u.with_changes(value=cst.SimpleString(f"{quote}sdpa{quote}"))})


# -------------------------------------------------------------- hand-written
def _hand_written(ctx: Context, name: str, model: Any, facts: dict[str, Any]) -> Change:
    from torch import nn

    cls = next(type(m) for m in model.modules() if type(m).__name__ == facts["modules"][0])
    instances = [m for m in model.modules() if type(m) is cls]
    functional = _functional(ctx.namespace)

    def is_causal(condition: str) -> bool:
        match = _CAUSAL.fullmatch(condition.strip())
        return match is not None and all(_lower_triangular(getattr(m, match.group(1), None)) for m in instances)

    def is_dropout(attribute: str) -> bool:
        return all(isinstance(getattr(m, attribute, None), nn.Dropout) for m in instances)

    rewritten: list[str] = []

    def rewrite(source: str) -> str | None:
        new = rewrite_attention(source, cls.__name__, is_causal, is_dropout, functional) \
            if _same_class(source, cls) else None
        rewritten[:] = [new] if new is not None else rewritten
        return new

    where = facts.get("where") or cls.__qualname__
    if ctx.rewrite(ctx.targets(cls.__name__), rewrite) is None:
        return ctx.change(f"{cls.__name__}.forward ({where}) computes attention by hand in a shape not rewritten "
                          "here; replace it by hand", snippet=_explanation(cls.__name__, functional))
    forward = _compiled_forward(rewritten[0], cls)
    check = _guard(ctx, name, model)
    old = cls.__dict__["forward"]

    def live(undo: Undo) -> NumericsResult:
        def switch() -> Any:
            cls.forward = forward
            undo.push(lambda: setattr(cls, "forward", old))
            return model

        return check(switch)

    return ctx.change(f"{cls.__name__}.forward ({len(instances)} modules of {name}) computes attention with "
                      f"{functional}.scaled_dot_product_attention instead of softmax(q @ kᵀ) @ v; re-run the cell to "
                      "measure", live, [], expects={name: model})


def _same_class(source: str, cls: type) -> bool:
    """Whether the cell's ``cls.__name__.forward`` is the code of the live class's (not a later redefinition)."""
    module = parse(source)
    found = [f for c in find_nodes(module, cst.ClassDef, lambda n: n.name.value == cls.__name__)
             for f in c.body.body if isinstance(f, cst.FunctionDef) and f.name.value == "forward"] if module else []
    try:
        live = textwrap.dedent(inspect.getsource(cls.__dict__["forward"]))
    except (OSError, TypeError):
        return False
    return len(found) == 1 and textwrap.dedent(code(found[0])).strip() == live.strip()


def _compiled_forward(source: str, cls: type) -> Callable:
    """The rewritten cell's ``cls.forward``, compiled with the old one's globals; its source kept in linecache, so
    tracebacks show it and a second plan sees the fused call."""
    module = parse(source)
    assert module is not None  # (the rewritten cell: its code parsed when it was written)
    node = next(f for c in find_nodes(module, cst.ClassDef, lambda n: n.name.value == cls.__name__)
                for f in c.body.body if isinstance(f, cst.FunctionDef) and f.name.value == "forward")
    text = textwrap.dedent(code(node.with_changes(leading_lines=[])))
    old = cls.__dict__["forward"]
    if old.__closure__ or "super(" in text or "__class__" in text:
        raise NotApplicable(f"{cls.__name__}.forward uses names of an enclosing scope (super(), a closure): change it "
                            "by hand with the diff shown")
    filename = f"<attention.sdpa {cls.__qualname__}.forward>"
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    scope: dict[str, Any] = {}
    exec(compile(text, filename, "exec"), old.__globals__, scope)  # noqa: S102 - the user's own code, rewritten
    forward = scope["forward"]
    forward.__qualname__, forward.__module__ = old.__qualname__, old.__module__
    return forward


def _fused(cls: type) -> bool:
    tree = forward_tree(cls)
    return tree is not None and calls_fused(tree)


def _lower_triangular(buffer: Any) -> bool:
    import torch

    if not isinstance(buffer, torch.Tensor) or buffer.dim() < 2 or buffer.shape[-1] != buffer.shape[-2]:
        return False
    return bool(torch.equal(buffer != 0, torch.ones_like(buffer, dtype=torch.bool).tril()))


def _functional(namespace: dict[str, Any]) -> str:
    """How the notebook names torch.nn.functional: ``F``, or ``torch.nn.functional``."""
    import torch.nn.functional

    alias = next((k for k, v in namespace.items() if v is torch.nn.functional and not k.startswith("_")), None)
    return alias or f"{torch_name(namespace)}.nn.functional"


def _explanation(cls: str, functional: str) -> str:
    return (f"# In {cls}.forward, with q, k, v of shape (batch, heads, T, head_dim), replace the scores, their mask, "
            "softmax and dropout, and their product with v, by:\n"
            f"y = {functional}.scaled_dot_product_attention(\n"
            "    q, k, v,\n"
            "    is_causal=True,  # a causal mask; else attn_mask=<bool tensor, True where a query may attend>\n"
            "    dropout_p=self.dropout if self.training else 0.0,  # the dropout on the scores, if any\n"
            ")  # scale= only where the scores were not scaled by 1/sqrt(head_dim)\n")


# -------------------------------------------------------------------- guard
def _guard(ctx: Context, name: str, model: Any) -> Callable[[Callable[[], Any]], NumericsResult]:
    """Check the outputs before and after ``change()`` on the model's recorded call from the profiled run
    (without a KV cache it carried), else on an input the cell gives it (models.held_inputs)."""
    inputs = held_inputs(ctx, name, model)
    return lambda change: inputs.check("attention", model, change)
