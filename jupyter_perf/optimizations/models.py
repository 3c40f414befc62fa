"""What the model-level optimizations share: the model, its device, and the input its outputs are checked on.

An optimization that changes numerics keeps its change only if the model's
outputs still agree (guard.py), which needs a real call of the model. The
call is replayed, never guessed. Tried in order, the first the model actually
runs on is used:

1. what ``inputs=`` names, where the caller gives it (a value passed wins);
2. the call the profiler recorded in the latest profiled run that called the
   model (probes/inputs.py): positional and keyword arguments as the user's
   code passed them, so ``model(data, hidden)`` or a Hugging Face
   ``model(input_ids=..., attention_mask=..., labels=...)`` replay as they ran;
   again on the model's device if it moved since;
3. single inputs found in the namespace: the tensors the cell passes to the
   model by name (``model(x)``), the batches the cell's loops over the model
   iterate (a DataLoader or a list of batches), the namespace's only DataLoader.

Where none is found, or none fits, the optimization says so and what to do:
profile a cell that calls the model, or pass ``inputs=``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from typing import TYPE_CHECKING, Any

from .. import state
from .base import Context, NotApplicable, find_object, report_names
from .guard import HeldBatch, NumericsResult, compare
from .rewrite import calls_method, calls_name, find_nodes, mentions, parse

if TYPE_CHECKING:
    import torch
    from torch import nn

MODEL_PARAM = ("the namespace variable holding the model (default: the model the report saw called most, else the "
               "only outermost nn.Module with layers)")
INPUTS_PARAM = ("the namespace variable holding an input to check outputs on: a tensor, a list of batches or a "
                "DataLoader, or a list of such names tried in order; or a guard.HeldBatch(args, kwargs) for a model "
                "taking several (default: the model's call recorded in the profiled run, then what the cell passes "
                "to the model, what its loops iterate, the only DataLoader)")
#: What the guard says it ran the model on, for the recorded call.
RECORDED = "the call recorded in the profiled run"
#: What to do where the model cannot be run, said with each refusal.
HOW_TO_GIVE_INPUTS = ("run a cell that calls {model} under %%perfprofile (its first call is recorded and replayed), "
                      "or pass inputs=<name of a tensor {model} takes alone, a list of batches or a DataLoader> "
                      "or inputs=HeldBatch(args, kwargs) (jupyter_perf.optimizations.guard)")


def pick_model(ctx: Context) -> tuple[str, nn.Module]:
    """The model to act on, its name recorded in ``ctx.params["model"]``.

    Only outermost modules with parameters or layers of their own are
    candidates (an int8 quantized model holds no Parameter): a loss
    (``nn.CrossEntropyLoss()``) or a submodule bound to a name of its own is
    not what the user means by "the model".
    """
    from torch import nn

    given = ctx.param("model", lambda: None)
    modules = {k: v for k, v in ctx.namespace.items() if isinstance(v, nn.Module) and not k.startswith("_")}
    inner = {id(m) for v in modules.values() for m in v.modules() if m is not v}
    outermost = {k: v for k, v in modules.items() if id(v) not in inner
                 and (next(v.parameters(), None) is not None or next(v.children(), None) is not None)}
    name, model = find_object(ctx.namespace if given else outermost, nn.Module, "model", given,
                              report_names(ctx.report, "models", order="calls"))
    ctx.params["model"] = name
    return name, model


def backward_calls(ctx: Context) -> int | None:
    """Backward calls the report counted; else whether the cell's code calls ``.backward()`` (1/0); else None."""
    backward = (ctx.report.signals.get("backward") or {}).get("calls") if ctx.report else None
    if backward is None and ctx.cell is not None:
        backward = int(calls_method(ctx.cell.source, "backward"))
    return backward


def optimizer_names(namespace: dict[str, Any]) -> list[str]:
    """Names bound to torch optimizers, for the rewrites that must recognise ``<optimizer>.step()``."""
    from torch.optim import Optimizer

    return [k for k, v in namespace.items() if isinstance(v, Optimizer) and not k.startswith("_")]


def device_of(model: nn.Module) -> torch.device:
    import torch

    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def require_cuda_model(name: str, model: nn.Module, why: str) -> None:
    """NotApplicable unless a CUDA device exists and ``model`` is on it; ``why`` says what needs CUDA."""
    import torch

    if not torch.cuda.is_available():
        raise NotApplicable(f"no CUDA device: {why}")
    if device_of(model).type != "cuda":
        raise NotApplicable(f"{name} is on {device_of(model)}, not a CUDA device: {why}")


class HeldInputs:
    """Where the guard's input may come from, tried in order when the change commits (module docstring).

    The first the model runs on is the guard's input: a name's value can be
    stale (the cell has not run since it was bound; ``--apply`` plans before
    the cell runs), and running the model is the only proof that it fits.
    Nothing is fetched before then, so planning (and ``applicable``) never
    starts a DataLoader's workers; the recorded call is looked up then too,
    so it is the latest run's.
    """

    def __init__(self, namespace: dict[str, Any], model_name: str, given: list[str | HeldBatch], found: list[str]):
        self.namespace, self.model_name, self.given, self.found = namespace, model_name, given, found

    def check(self, kind: str, model: nn.Module, change: Callable[[], nn.Module],
              context: AbstractContextManager | None = None) -> NumericsResult:
        """The model's outputs on the first input that fits, then ``change()``, then the outputs of the model it
        returns (under ``context``: autocast), compared. None fits: NotApplicable, before anything changed."""
        failed = []
        for label, make in self._candidates(model):
            try:
                batch = make()
                before = batch.run(model)
            except Exception as exc:  # noqa: BLE001 - any failure means this input does not fit this model
                failed.append(f"{label} ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})")
                continue
            return dataclasses.replace(compare(kind, before, batch.run(change(), context)), checked_on=label)
        tried = "; ".join(failed) if failed else "nothing was recorded or found"
        raise NotApplicable(f"{self.model_name} could not run on any input to check its outputs ({tried}): "
                            + HOW_TO_GIVE_INPUTS.format(model=self.model_name))

    def _candidates(self, model: nn.Module) -> Iterator[tuple[str, Callable[[], HeldBatch]]]:
        device = device_of(model)
        for given in self.given:
            if isinstance(given, HeldBatch):
                yield "the inputs given", _constant(given)
            else:
                yield given, functools.partial(self._batch, given, device)
        call = state.current().recorded(model)
        if call is not None:
            batch = HeldBatch.from_call(call)
            yield RECORDED, lambda: batch
            if batch.devices() - {device}:
                yield f"{RECORDED}, moved to {device}", lambda: batch.to(device)
        for name in self.found:
            yield name, functools.partial(self._batch, name, device)

    def _batch(self, name: str, device: Any) -> HeldBatch:
        value = self.namespace.get(name)
        batch = HeldBatch.from_loader(value) if _is_loader(value) else HeldBatch((_first_tensor(value),))
        return batch.to(device)


def _constant(batch: HeldBatch) -> Callable[[], HeldBatch]:
    """A function that returns ``batch``."""
    return lambda: batch


def held_inputs(ctx: Context, model_name: str, model: nn.Module) -> HeldInputs:
    """The inputs the guard may check outputs on (module docstring: where they come from, in which order)."""
    given = ctx.given("inputs") is not None
    names = ctx.param("inputs", lambda: _input_names(ctx, model_name))
    listed: list[Any] = [names] if isinstance(names, (str, HeldBatch)) else list(names)
    if given:
        return HeldInputs(ctx.namespace, model_name, given=listed, found=[])
    if not listed and state.current().recorded(model) is None:
        raise NotApplicable(f"no call of {model_name} was recorded and no input of it was found to check its "
                            "outputs on: " + HOW_TO_GIVE_INPUTS.format(model=model_name))
    return HeldInputs(ctx.namespace, model_name, given=[], found=listed)


def _input_names(ctx: Context, model_name: str) -> list[str]:
    """What the cell passes to the model by name, what its loops over the model iterate, the only DataLoader."""
    from torch.utils.data import DataLoader

    module = parse(ctx.cell.source) if ctx.cell is not None else None
    found = [*_call_arguments(module, model_name), *_loop_iterables(module, model_name)] if module else []
    with suppress(NotApplicable):
        found.append(find_object(ctx.namespace, DataLoader, "DataLoader", None,
                                 report_names(ctx.report, "dataloaders", order="data_wait_s"))[0])
    usable = [n for n in found if _is_loader(ctx.namespace.get(n))
              or _first_tensor_or_none(ctx.namespace.get(n)) is not None]
    return list(dict.fromkeys(usable))


def _call_arguments(module: Any, model_name: str) -> list[str]:
    """Names passed first to ``model_name(...)``: ``model(x)`` -> ``x``; not a comprehension's own variables,
    whose namespace namesakes are something else."""
    import libcst as cst

    local = {n.value for comp in find_nodes(module, cst.CompFor)
             for n in find_nodes(comp.target, cst.Name)}
    calls = find_nodes(module, cst.Call, lambda n: isinstance(n.func, cst.Name)
                  and n.func.value == model_name and bool(n.args) and isinstance(n.args[0].value, cst.Name))
    names = [cst.ensure_type(c.args[0].value, cst.Name).value for c in calls]
    return [n for n in names if n not in local]


def _loop_iterables(module: Any, model_name: str) -> list[str]:
    """Names iterated by a loop or comprehension that calls the model: ``for x, y in loader``,
    ``[model(x) for (x,) in loader]``, ``enumerate(loader)``."""
    import libcst as cst

    loops = find_nodes(module, cst.For, lambda n: calls_name(n.body, model_name))
    comprehensions = find_nodes(module, (cst.ListComp, cst.GeneratorExp, cst.SetComp), lambda n:
                           calls_name(n.elt, model_name))
    iterables = [loop.iter for loop in loops] + [c.for_in.iter for c in comprehensions]
    return [n.value for it in iterables for n in find_nodes(it, cst.Name)
            if mentions(it, n.value)]


def _is_loader(value: Any) -> bool:
    from torch.utils.data import DataLoader

    return isinstance(value, DataLoader)


def _first_tensor(value: Any) -> torch.Tensor:
    """A tensor, or the first tensor down first elements: a batch ``(x, y)``, a list of batches."""
    found = _first_tensor_or_none(value)
    if found is None:
        raise ValueError(f"a {type(value).__name__} holds no tensor as its first element")
    return found


def _first_tensor_or_none(value: Any) -> torch.Tensor | None:
    import torch

    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return value if isinstance(value, torch.Tensor) else None
