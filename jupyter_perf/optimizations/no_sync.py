"""distributed.no_sync: gradients accumulated locally for k−1 backward passes, all-reduced on the k-th.

DDP all-reduces after *every* backward. A loop that accumulates gradients over
micro-batches (the shape ``memory.grad_accumulation`` writes: an inner loop
over ``x.chunk(k)``) so pays k all-reduces per optimizer step where one would
do: under ``model.no_sync()`` the first k−1 micro-batches only accumulate, the
last one's all-reduce carries the sum. Same gradients, same steps, k−1 fewer
all-reduces per step. This is the composition with ``memory.grad_accumulation``:
apply that first (it splits each batch), then this.

A loop that steps on every batch has nothing to accumulate; here ``steps=k``
makes it accumulate over k consecutive batches (forward and backward under
``no_sync()`` but every k-th, the loss scaled by 1/k, the optimizer stepping
and zeroing every k-th batch): one all-reduce per k batches, but also an
effective batch k times larger and k times fewer optimizer steps, which the
warning says (the learning rate may want revisiting), as ``dataloader.batch_size``
does.

The code change is in the training function's loop (the DDP-tutorial shape:
``X = DistributedDataParallel(...)`` in the function, ``X(...)`` in the loop, one
``.backward()``); live, the training function rebound to the rewritten one
(ddp_code.py). accelerate loops get the code to write instead
(``Accelerator(gradient_accumulation_steps=k)`` with ``accelerator.accumulate``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import libcst as cst

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization
from .ddp_code import (
    FUNCTION_PARAM,
    bound_optimizers,
    construction,
    ddp_aliases,
    in_function,
    swap_function,
    training_function,
    with_imports,
)
from .model_rewrite import TrainingLoop, chunk_count, free_name, replace_call, scaled_backward, split_loop_body
from .models import optimizer_names
from .rewrite import code, find_nodes, leading_lines, swapped

ACCELERATE = ("accelerator = Accelerator(gradient_accumulation_steps={k})\n...\nfor batch in loader:\n"
              "    with accelerator.accumulate(model):  # no_sync() on all but every {k}th batch\n"
              "        loss = ...\n        accelerator.backward(loss)\n"
              "        optimizer.step()\n        optimizer.zero_grad()")


class NoSync(Optimization):
    entry = CATALOG["distributed.no_sync"]
    params: ClassVar[dict[str, str]] = {
        "function": FUNCTION_PARAM,
        "steps": "backward passes per all-reduce, k (default: the micro-batches per step where the loop accumulates "
                 "already; else 4, accumulating over 4 batches)",
    }

    def plan(self, ctx: Context) -> Change:
        name, fn = training_function(ctx)
        k = ctx.param("steps", lambda: 4)
        if not isinstance(k, int) or k < 2:
            raise NotApplicable(f"steps must be an integer of at least 2, not {k!r}")
        aliases, optimizers = ddp_aliases(ctx.namespace), set(optimizer_names(ctx.namespace))
        outcome: dict[str, Any] = {}

        def transform(function: cst.FunctionDef) -> cst.FunctionDef | None:
            found = construction(function, aliases)
            if found is None:
                return None
            if find_nodes(function, cst.Call, lambda n: code(n.func) == f"{found[0]}.no_sync"):
                return function  # (the backward is then inside a with: TrainingLoop would not find it)
            loop = TrainingLoop.find(cst.Module([function]))
            if loop is None or not find_nodes(loop.loop, cst.Call, lambda n: code(n.func) == found[0]):
                return None
            chunks = outcome["micro"] = chunk_count(loop.loop)
            new = _micro_batches(loop, found[0], chunks, function) if chunks else _across_batches(
                loop, found[0], k, optimizers | bound_optimizers(function), function)
            return None if new is None else with_imports(swapped(function, loop.loop, new), ["import contextlib"])

        rewrite = in_function(name, transform)
        target = ctx.rewrite(ctx.targets(name), rewrite)
        if target is None:
            return ctx.change(f"{name}: no DDP training loop of the supported shape was found (a "
                              "DistributedDataParallel(...) built in it, a for loop with one .backward() calling it)",
                              snippet=ACCELERATE.format(k=k))
        if outcome.get("micro"):
            k = ctx.params["steps"] = outcome["micro"]
            described = (f"the first {k - 1} of each step's {k} micro-batches accumulate under no_sync(): one "
                         f"all-reduce per optimizer step instead of {k}, the same gradients")
            warnings = []
        else:
            described = (f"gradients accumulate over {k} batches under no_sync(), all-reduced and stepped on every "
                         f"{k}th: {k}× fewer all-reduces per sample")
            warnings = [f"the effective batch is {k}× larger and the optimizer steps {k}× less often: revisit the "
                        f"learning rate; statements after the step run every {k}th batch; a last group of fewer than "
                        f"{k} batches leaves its gradients unapplied"]
        if not ctx.has_edits():
            return ctx.unchanged(f"{name}'s loop already accumulates under no_sync()")
        return ctx.change(f"{name}: {described}; the next launch runs it",
                          swap_function(ctx, name, fn, target, rewrite), warnings, expects={name: fn})


def _micro_batches(loop: TrainingLoop, model: str, k: int, function: cst.FunctionDef) -> cst.For:
    """The micro-batch loop with its body under ``no_sync()`` for all but its last micro-batch."""
    index, target, iterable = _enumerated(loop.loop, code(function))
    body = [_with(f"({model}.no_sync() if {index} < {k - 1} else contextlib.nullcontext())", loop.lines)]
    return loop.loop.with_changes(target=target, iter=iterable, body=loop.loop.body.with_changes(body=body))


def _across_batches(loop: TrainingLoop, model: str, k: int, optimizers: set[str],
                    function: cst.FunctionDef) -> cst.For | None:
    """A loop stepping every batch, made to accumulate over ``k`` batches (module docstring)."""
    split = split_loop_body(loop, optimizers)
    if split is None:
        return None
    pre, micro, post = split
    scaled = scaled_backward(loop.backward, k) or _divided(loop.backward, k)
    micro = [replace_call(s, loop.backward, scaled) for s in micro]
    index, target, iterable = _enumerated(loop.loop, code(function))
    sync = f"({index} + 1) % {k}"
    body = [_with(f"({model}.no_sync() if {sync} else contextlib.nullcontext())", micro),
            cst.If(test=cst.parse_expression(f"{sync} == 0"),
                   body=cst.IndentedBlock(body=[s.with_changes(leading_lines=[]) for s in [*post, *pre]]))]
    return loop.loop.with_changes(target=target, iter=iterable, body=loop.loop.body.with_changes(body=body))


def _divided(backward: cst.Call, k: int) -> cst.Call:
    """``(<receiver> / k).backward()`` for any receiver (``loss_fn(out, y).backward()``, the DDP tutorial's)."""
    receiver = cst.ensure_type(backward.func, cst.Attribute).value
    if not isinstance(receiver, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        receiver = receiver.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    divided = cst.BinaryOperation(receiver, cst.Divide(), cst.Integer(str(k)), lpar=[cst.LeftParen()],
                                  rpar=[cst.RightParen()])
    return backward.with_changes(func=backward.func.with_changes(value=divided))


def _enumerated(loop: cst.For, scope: str) -> tuple[str, cst.CSTNode, cst.CSTNode]:
    """(index name, target, iterable) of the loop with an index: its own where it enumerates, else ``enumerate``
    added with an index named ``micro`` (or ``micro_2``..., a name ``scope``'s code does not use)."""
    if (isinstance(loop.iter, cst.Call) and code(loop.iter.func) == "enumerate" and isinstance(loop.target, cst.Tuple)
            and len(loop.target.elements) == 2 and isinstance(loop.target.elements[0].value, cst.Name)):
        return loop.target.elements[0].value.value, loop.target, loop.iter
    index = free_name("micro", scope, {})
    inner = code(loop.target)
    inner = f"({inner})" if isinstance(loop.target, cst.Tuple) and not loop.target.lpar else inner
    return index, cst.parse_expression(f"{index}, {inner}"), cst.parse_expression(f"enumerate({code(loop.iter)})")


def _with(context: str, lines: list[cst.BaseStatement]) -> cst.With:
    return cst.With(items=[cst.WithItem(cst.parse_expression(context))],
                    body=cst.IndentedBlock(body=[lines[0].with_changes(leading_lines=[]), *lines[1:]]),
                    leading_lines=leading_lines(lines[0]))
