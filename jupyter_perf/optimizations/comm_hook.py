"""distributed.comm_hook: DDP's gradients sent in 16 bits (or low rank, PowerSGD): fewer bytes all-reduced per step.

A DDP comm hook replaces how each gradient bucket is all-reduced. torch's
``bf16_compress_hook`` / ``fp16_compress_hook`` cast the bucket (divided by
the world size) to 16 bits, all-reduce it and cast back: half the bytes, each
gradient rounded once. bfloat16 keeps float32's range, so nothing overflows
or flushes to zero, but torch allows it only over NCCL ≥ 2.10; float16 works
over gloo too, with 3 more bits of precision and a narrow range. PowerSGD
(``powersgd_rank=r``) sends a rank-r approximation of each gradient matrix
with error feedback, after ``start_iter`` exact iterations: far fewer bytes,
lossy by design.

The guard (like AMP's): the run measured, on its own first gradient bucket,
the relative error of the 16-bit cast (probes/buckets.py); the change is
kept only under ``guard.THRESHOLDS.comm_bf16`` / ``comm_fp16``, and refused
where float16 overflowed. PowerSGD's per-step error is not bounded (its error
feedback makes it up over steps), so it is applied with a warning to watch the
loss.

The code change: ``X.register_comm_hook(...)`` right after the training
function's ``X = DistributedDataParallel(...)`` (or ``comm_hook=`` in
accelerate's ``DistributedDataParallelKwargs``); live, the training function
rebound to the rewritten one (ddp_code.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import libcst as cst

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo
from .ddp_code import (
    FUNCTION_PARAM,
    construction,
    ddp_aliases,
    handler_arguments,
    in_function,
    swap_function,
    training_function,
    with_imports,
)
from .guard import THRESHOLDS, NumericsResult
from .rewrite import code, find_nodes

#: dtype → (torch's hook, accelerate's DDPCommunicationHookType member, the guard's kind)
DTYPES = {"bfloat16": ("bf16_compress_hook", "BF16", "comm_bf16"),
          "float16": ("fp16_compress_hook", "FP16", "comm_fp16")}
HOOKS = "from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook"
#: PowerSGD's exact iterations before compressing (its paper's warm-up; torch's example uses 10).
START_ITER = 10


class CommHook(Optimization):
    entry = CATALOG["distributed.comm_hook"]
    params: ClassVar[dict[str, str]] = {
        "function": FUNCTION_PARAM,
        "dtype": "'bfloat16' or 'float16' (default: bfloat16 over NCCL, float16 elsewhere: torch refuses bfloat16 "
                 "compression outside CUDA with NCCL >= 2.10)",
        "powersgd_rank": "PowerSGD's matrix approximation rank instead of a 16-bit cast (default: none)",
        "start_iter": f"PowerSGD's exact iterations before it compresses (default {START_ITER})",
    }

    def plan(self, ctx: Context) -> Change:
        name, fn = training_function(ctx)
        facts = (ctx.report.signals.get("distributed") or {}) if ctx.report else {}
        dtype = ctx.param("dtype", lambda: "bfloat16" if facts.get("backend") == "nccl" else "float16")
        if dtype not in DTYPES:
            raise NotApplicable(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        rank = ctx.param("powersgd_rank", lambda: None)
        start = ctx.param("start_iter", lambda: START_ITER) if rank is not None else None
        if rank is not None and (not isinstance(rank, int) or rank < 1):
            raise NotApplicable(f"powersgd_rank must be a positive integer, not {rank!r}")
        state, hook, kind = _hook_code(dtype, rank, start)
        aliases = ddp_aliases(ctx.namespace)

        def transform(function: Any) -> Any:
            found = construction(function, aliases)
            if found is None:
                return handler_arguments(function, _handler_values(dtype, rank, start),
                                         ["from accelerate.utils import DDPCommunicationHookType"])
            return _register_after(function, found[0], state, hook)

        rewrite = in_function(name, transform)
        target = ctx.rewrite(ctx.targets(name), rewrite)
        described = f"PowerSGD rank {rank} (after {start} exact steps)" if rank else f"{dtype} compression"
        if target is None:
            return ctx.change(f"{described} of {name}'s gradient all-reduce: its DistributedDataParallel(...) call (or "
                              "accelerate's Accelerator(...)) was not found once in its cell",
                              snippet=f"{HOOKS}\nddp_model.register_comm_hook({state}, {hook})")
        if not ctx.has_edits():
            return ctx.unchanged(f"{name} already registers {hook}")
        swap = swap_function(ctx, name, fn, target, rewrite)
        warnings = [] if rank is None else [
            "PowerSGD is lossy by design: its error feedback makes up the approximation over steps; compare the loss "
            "curve with the uncompressed run's"]
        if rank is None and facts.get("ddp", {}).get("compression_error") is None:
            warnings.append(f"no gradients were sampled in a profiled run, so the {dtype} error was not checked")

        def live(undo: Undo) -> NumericsResult | None:
            swap(undo)
            return _guard(kind, dtype, facts) if rank is None else None

        return ctx.change(f"{name}'s DDP gradients all-reduced with {described} ({hook}); the next launch runs it",
                          live, warnings, expects={name: fn})


def _hook_code(dtype: str, rank: int | None, start: int | None) -> tuple[str, str, str]:
    """(state, hook, guard kind) as code for ``register_comm_hook``."""
    hook_name, _accelerate, kind = DTYPES[dtype]
    if rank is None:
        return "None", f"default_hooks.{hook_name}", kind
    return (f"powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank={rank}, "
            f"start_powerSGD_iter={start})", "powerSGD_hook.powerSGD_hook", kind)


def _handler_values(dtype: str, rank: int | None, start: int | None) -> dict[str, str]:
    """accelerate's spelling: ``DistributedDataParallelKwargs(comm_hook=DDPCommunicationHookType.FP16)``."""
    if rank is None:
        return {"comm_hook": f"DDPCommunicationHookType.{DTYPES[dtype][1]}"}
    return {"comm_hook": "DDPCommunicationHookType.POWER_SGD",
            "comm_state_option": f"{{'matrix_approximation_rank': {rank}, 'start_powerSGD_iter': {start}}}"}


def _register_after(function: cst.FunctionDef, model: str, state: str, hook: str) -> cst.FunctionDef | None:
    """``model.register_comm_hook(state, hook)`` after the function's statement binding ``model``; unchanged where
    that registration is there; NotApplicable where the function registers another hook (its choice stands)."""
    registrations = find_nodes(function, cst.Call, lambda n: isinstance(n.func, cst.Attribute)
                               and n.func.attr.value == "register_comm_hook")
    wanted = f"{model}.register_comm_hook({state}, {hook})"
    if registrations:
        if [code(r) for r in registrations] == [wanted]:
            return function
        raise NotApplicable(f"the training function registers its own comm hook ({code(registrations[0])[:120]}); "
                            "DDP takes one")
    body = list(function.body.body)
    at = next((i for i, s in enumerate(body) if find_nodes(s, cst.AssignTarget, lambda n:
                                                           code(n.target) == model)), None)
    if at is None:
        return None
    body.insert(at + 1, cst.parse_statement(wanted + "\n"))
    return with_imports(function.with_changes(body=function.body.with_changes(body=body)), [HOOKS])


def _guard(kind: str, dtype: str, facts: dict[str, Any]) -> NumericsResult | None:
    """The 16-bit error measured on the run's own gradients (probes/buckets.py) against the kind's threshold."""
    sample = (facts.get("ddp") or {}).get("compression_error")
    if sample is None:
        return None
    problem = (f"{sample[f'{dtype}_nonfinite']} of {sample['elements']} sampled gradients overflow {dtype}"
               if sample.get(f"{dtype}_nonfinite") else None)
    return NumericsResult(kind, sample.get(dtype) or 0.0, THRESHOLDS.for_kind(kind),
                          sample.get(f"{dtype}_max_abs") or 0.0, problem)
