"""data.length_grouping: batches of similar lengths, padded to their own longest (jupyter_perf/data.py).

The DataLoader is rebuilt, as the ``dataloader.*`` optimizations do, from its own dataset, workers and settings,
with two changes: a ``LengthGroupedBatchSampler`` over the same dataset makes the batches (same batch size,
shuffle and drop_last), and ``PadToLongest`` wraps its collate_fn so each batch is cut to its longest sample.
The call that built it in the notebook gets the same: ``batch_size``, ``shuffle`` and ``drop_last`` move into
the sampler, ``collate_fn`` is wrapped, and a dataset built inside the call is first bound to a name (both the
loader and the sampler need the same one). Nothing about a sample changes; what a batch holds does: samples
of similar lengths, still in a new random grouping every epoch.

The gain is the padding the report measured: the model's work on those positions goes away, less what padding
is left inside each batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import libcst as cst

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, find_object, rebind, report_names
from .dataloader import POSITIONAL, rebuild
from .model_rewrite import free_name
from .rewrite import after_imports, builder_call, code, find_nodes, leading_lines, parse, replace_nodes

#: What the rewritten code imports.
IMPORT = "from jupyter_perf.data import LengthGroupedBatchSampler, PadToLongest"
#: DataLoader arguments a batch_sampler replaces (DataLoader refuses them beside one).
_REPLACED = ("batch_size", "shuffle", "sampler", "drop_last")


class LengthGrouping(Optimization):
    entry = CATALOG["data.length_grouping"]
    params: ClassVar[dict[str, str]] = {
        "name": "the namespace variable holding the DataLoader (default: the one the report saw, else the only one)"}

    def plan(self, ctx: Context) -> Change:
        from torch.utils.data import DataLoader, IterableDataset, RandomSampler, SequentialSampler

        from ..data import LengthGroupedBatchSampler, PadToLongest

        name, loader = find_object(ctx.namespace, DataLoader, "DataLoader", ctx.param("name", lambda: None),
                                   report_names(ctx.report, "dataloaders", order="batches"))
        ctx.params["name"] = name
        grouped = isinstance(loader.batch_sampler, LengthGroupedBatchSampler) and isinstance(loader.collate_fn,
                                                                                             PadToLongest)
        if not grouped:
            _check(name, loader, DataLoader, IterableDataset, (RandomSampler, SequentialSampler))
        found = ctx.rewrite(ctx.targets(name), lambda s: group_call(s, name, ctx.namespace))
        if grouped and not ctx.has_edits():
            return ctx.unchanged(f"{name} groups its batches by length and pads them to their longest")
        shuffle = isinstance(loader.sampler, RandomSampler)

        def live(undo: Undo) -> None:
            sampler = LengthGroupedBatchSampler(loader.dataset, loader.batch_size, shuffle=shuffle,
                                                drop_last=loader.drop_last, generator=loader.generator)
            rebind(ctx.namespace, loader, rebuild(loader, batch_sampler=sampler, batch_size=1, sampler=None,
                                                  drop_last=False, collate_fn=PadToLongest(_own(loader.collate_fn))),
                   undo)

        padding = ((ctx.report.signals.get("tokens") or {}).get("padding_share") if ctx.report else None)
        measured = f"; the run measured {padding:.0%} of the token positions as padding" if padding else ""
        snippet = None if found else (
            f"{IMPORT}\n{name} = DataLoader(dataset, batch_sampler=LengthGroupedBatchSampler(dataset, "
            f"{loader.batch_size}, shuffle={shuffle}), collate_fn=PadToLongest())  # the call that builds {name}")
        return ctx.change(f"{name}: batches of {loader.batch_size} samples of similar length, each padded to its "
                          f"longest{measured}", None if grouped else live, _warnings(name, loader), snippet,
                          expects={name: loader})


def _check(name: str, loader: Any, dataloader: type[Any], iterable: type, samplers: tuple[type, ...]) -> None:
    """Refuse where the batches could not be regrouped without changing what the loader reads."""
    if type(loader) is not dataloader:
        raise NotApplicable(f"{name} is a {type(loader).__name__}, a DataLoader subclass whose constructor may take "
                            "other arguments: change it by hand")
    if isinstance(loader.dataset, iterable):
        raise NotApplicable(f"{name} streams an IterableDataset: its samples cannot be regrouped by index")
    if loader.batch_size is None or not isinstance(loader.sampler, samplers):
        what = "its own batch_sampler" if loader.batch_size is None else f"a {type(loader.sampler).__name__}"
        raise NotApplicable(f"{name}'s batches come from {what}: grouping by length would replace it")
    try:
        sample = loader.dataset[0]
    except Exception as exc:  # noqa: BLE001 - a dataset that cannot serve its first sample cannot be measured
        raise NotApplicable(f"{name}'s dataset could not serve a sample to measure ({type(exc).__name__})") from exc
    if not isinstance(sample, Mapping) or not ({"attention_mask", "input_ids"} & set(sample)):
        raise NotApplicable(f"{name}'s samples are {type(sample).__name__}s without an attention_mask or input_ids: "
                            "their lengths are unknown (give LengthGroupedBatchSampler lengths= by hand)")


def _own(collate_fn: Any) -> Any:
    """The loader's collate_fn where it is the user's, None where it is torch's default (PadToLongest's own)."""
    from torch.utils.data._utils.collate import default_collate

    return None if collate_fn is default_collate else collate_fn


def _warnings(name: str, loader: Any) -> list[str]:
    notes = [f"{name}'s batches now hold samples of similar lengths: still a new random grouping every epoch, "
             "but a batch is less mixed than before"]
    sample = loader.dataset[0]
    mask, labels = sample.get("attention_mask"), sample.get("labels")
    if mask is not None and labels is not None and getattr(labels, "shape", None) == getattr(mask, "shape", None):
        import torch

        padded = torch.as_tensor(labels)[torch.as_tensor(mask) == 0]
        if bool((padded != -100).any()):
            notes.append("the labels at padded positions are not -100: the loss counted them; cut off, they no longer "
                         "count, so the loss's value changes (set them to -100 to keep it comparable)")
    return notes


# ------------------------------------------------------------------- the code
def group_call(source: str, name: str, namespace: dict[str, Any]) -> str | None:
    """``name = DataLoader(ds, batch_size=8, shuffle=True)`` -> ``name = DataLoader(ds, batch_sampler=
    LengthGroupedBatchSampler(ds, 8, shuffle=True), collate_fn=PadToLongest())``, with the import; the same text
    where the call is already so; None where there is no such call, or it passes ``*args``/``**kwargs`` or a
    sampler of its own, or builds its dataset inside a function or block."""
    module = parse(source)
    call = builder_call(module, name, "DataLoader") if module else None
    if module is None or call is None or any(a.star for a in call.args):
        return None
    keys = [a.keyword.value if a.keyword else POSITIONAL[i] if i < len(POSITIONAL) else None
            for i, a in enumerate(call.args)]
    args = {key: a for key, a in zip(keys, call.args, strict=True) if key is not None}
    if None in keys or "sampler" in args or "dataset" not in args:
        return None
    if "batch_sampler" in args:
        done = "LengthGroupedBatchSampler" in code(args["batch_sampler"].value) and "collate_fn" in args \
            and "PadToLongest" in code(args["collate_fn"].value)
        return source if done else None
    body: list[cst.BaseStatement] = list(module.body)
    dataset = args["dataset"].value
    if not isinstance(dataset, (cst.Name, cst.Attribute)):  # built in the call: bound first, so both share it
        at = next(i for i, s in enumerate(body) if find_nodes(s, cst.Call, lambda n: n is call))
        if not isinstance(body[at], cst.SimpleStatementLine):
            return None
        bound = free_name("dataset", source, namespace)
        body[at:at + 1] = [cst.parse_statement(f"{bound} = {code(dataset)}\n").with_changes(
            leading_lines=leading_lines(body[at])), body[at].with_changes(leading_lines=[])]
        dataset = cst.Name(bound)
    sampler = [code(dataset), code(args["batch_size"].value) if "batch_size" in args else "1"]
    sampler += [f"{k}={code(args[k].value)}" for k in ("shuffle", "drop_last") if k in args]
    collate = f"PadToLongest({code(args['collate_fn'].value)})" if "collate_fn" in args else "PadToLongest()"
    new = {"batch_sampler": cst.parse_expression(f"LengthGroupedBatchSampler({', '.join(sampler)})"),
           "collate_fn": cst.parse_expression(collate), "dataset": dataset}
    out: list[cst.Arg] = []
    for key, arg in args.items():
        if key in _REPLACED and "batch_sampler" in new:  # the first of them becomes the batch_sampler, in place
            out.append(_keyword("batch_sampler", arg).with_changes(value=new.pop("batch_sampler")))
        elif key in _REPLACED:  # the others go; a comment after one stays, on the argument before it
            if _commented(arg.comma) and out and not _commented(out[-1].comma):
                out[-1] = out[-1].with_changes(comma=arg.comma)
        elif key in new:
            out.append(arg.with_changes(value=new.pop(key)))
        else:
            out.append(_keyword(key, arg))  # an argument by position may follow one that went
    out += [cst.Arg(value, keyword=cst.Name(key), equal=_EQUAL) for key, value in new.items() if key != "dataset"]
    last = call.args[-1]
    separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    out = [a if isinstance(a.comma, cst.Comma) else a.with_changes(comma=separator) for a in out[:-1]] + [
        out[-1].with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg)]
    at = after_imports(body)
    module = module.with_changes(body=body[:at] + _import(body) + body[at:])
    return replace_nodes(module, {call: lambda updated: updated.with_changes(args=out)})


_EQUAL = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))


def _keyword(key: str, arg: cst.Arg) -> cst.Arg:
    """The argument by keyword (``key``), however it was passed: the ones before it in position may be gone."""
    if arg.keyword is not None and arg.keyword.value == key:
        return arg
    return arg.with_changes(keyword=cst.Name(key), equal=arg.equal if arg.keyword is not None else _EQUAL)


def _commented(comma: object) -> bool:
    return isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace) \
        and comma.whitespace_after.first_line.comment is not None


def _import(body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """The import statement, unless the cell has it."""
    present = any(code(s.with_changes(leading_lines=[])).strip() == IMPORT for s in body)
    return [] if present else [cst.parse_statement(IMPORT + "\n")]
