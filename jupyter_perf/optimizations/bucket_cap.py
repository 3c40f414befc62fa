"""distributed.bucket_cap: DDP's gradient buckets sized so all-reduce overlaps backward, chosen from the run's buckets.

DDP all-reduces a bucket as soon as all its gradients are computed, while
backward goes on with the earlier layers. With one bucket (any model under the
default 25 MiB cap) the first all-reduce starts only when the last gradient
is done, so nothing overlaps; a cap that splits the gradients into a few
buckets lets the first go while backward still runs (the measured
``buckets_per_backward`` and ``gradient_bytes`` choose it:
``diagnosis.distributed.bucket_plan``). ``gradient_as_bucket_view=True`` makes
the gradients views into the buckets (one copy per step and its memory less);
``static_graph=True`` stops DDP searching the graph for unused parameters every
step where ``find_unused_parameters=True``.

The change is the arguments of the ``DistributedDataParallel(...)`` call in the
training function (or accelerate's ``DistributedDataParallelKwargs`` handler),
and, live, the training function rebound to the rewritten one (ddp_code.py).
Numerics do not change: the same sums, in other groupings (float32 roundoff).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization
from .ddp_code import (
    FUNCTION_PARAM,
    construction,
    ddp_aliases,
    handler_arguments,
    in_function,
    set_keywords,
    swap_function,
    swapped,
    training_function,
)

ARGUMENTS = ("bucket_cap_mb", "gradient_as_bucket_view", "static_graph")
#: Without a recommendation from a run: gradient views on; the cap and the static graph left as they are.
DEFAULTS = {"gradient_as_bucket_view": True}


class BucketCap(Optimization):
    entry = CATALOG["distributed.bucket_cap"]
    params: ClassVar[dict[str, str]] = {
        "function": FUNCTION_PARAM,
        "bucket_cap_mb": "bucket size in MiB (default: the measured gradients split into 4 buckets, where the run "
                         "handed over fewer; else unchanged)",
        "gradient_as_bucket_view": "gradients as views into the buckets (default: True where the run copied them)",
        "static_graph": "tell DDP the graph is the same every step (default: True where find_unused_parameters=True)",
    }

    def plan(self, ctx: Context) -> Change:
        name, fn = training_function(ctx)
        values = {key: repr(value) for key in ARGUMENTS
                  if (value := ctx.param(key, functools.partial(DEFAULTS.get, key))) is not None}
        if not values:
            raise NotApplicable("the measured buckets need no change (pass bucket_cap_mb=, "
                                "gradient_as_bucket_view= or static_graph= to set one)")
        aliases = ddp_aliases(ctx.namespace)

        def transform(function: Any) -> Any:
            found = construction(function, aliases)
            if found is None:
                return handler_arguments(function, values)
            call = set_keywords(found[1], values)
            return None if call is None else swapped(function, found[1], call)

        rewrite = in_function(name, transform)
        target = ctx.rewrite(ctx.targets(name), rewrite)
        what = ", ".join(f"{k}={v}" for k, v in values.items())
        if target is None:
            return ctx.change(f"{what} for DDP in {name}: its DistributedDataParallel(...) call (or accelerate's "
                              "Accelerator(...)) was not found once in its cell", snippet=f"DDP(model, {what})")
        if not ctx.has_edits():
            return ctx.unchanged(f"{name} already builds DDP with {what}")
        return ctx.change(f"{name} builds DDP with {what}; the next launch runs it", swap_function(
            ctx, name, fn, target, rewrite), expects={name: fn})

