"""Language models: padding the model computes on, attention on the slow path, generation without a cache.

None of these is a bottleneck of its own: each is math the step does for nothing, whatever the bottleneck.

* ``padding_waste``: the token positions of the steps' model that its attention mask marks as padding
  (``signals['tokens']``). The model computes on them like on real tokens; batches of similar lengths, padded
  to their longest, skip most of them.
* ``attention_eager``: a model whose attention is a matmul, a softmax and a matmul written out (Hugging Face's
  ``attn_implementation="eager"``, or a hand-written module: ``signals['models'][i]['attention']``, read by
  probes/attention.py) while torch's fused ``scaled_dot_product_attention`` exists.
* ``generation_no_cache``: a model called on a growing sequence, each call one token longer than the last and
  beginning with it (``signals['models'][i]['decoding']``, probes/decoding.py): every call recomputes all
  earlier positions, which a KV cache keeps.
* ``generation_batch_one``: decoding one sequence at a time, with the measured cost of a token; a decoding step
  reads every weight for however few sequences it runs, so batching prompts shares that cost.
"""

from __future__ import annotations

from typing import Any, Sequence

from .. import units
from ..report import Finding, Report
from .common import items, named, phase_share
from .thresholds import LANGUAGE


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    out = _padding(report)
    for model in items(report, "models"):
        out += _attention(model) + _generation(model)
    return out


# ------------------------------------------------------------------ padding
def _padding(report: Report) -> list[Finding]:
    tokens = report.signals.get("tokens") or {}
    share = tokens.get("padding_share")
    if share is None or share < LANGUAGE.padding_share or report.steps < LANGUAGE.min_steps:
        return []
    model_share = phase_share(report, "forward", "backward")
    loaders = [{k: d.get(k) for k in ("name", "batch_size", "dataset", "num_workers")}
               for d in items(report, "dataloaders") if d.get("batches")]
    summary = (f"{units.percent(share)} of the token positions the model took were padding "
               f"({units.count(tokens['real_tokens'])} real tokens of {units.count(tokens['tokens'])}): its math on "
               "them is wasted. Batches of similar lengths, padded to their own longest, skip most of it.")
    if not any(d["name"] for d in loaders):
        summary += (" With the Hugging Face Trainer: TrainingArguments(train_sampling_strategy=\"group_by_length\") "
                    "and a collator that pads to the longest (DataCollatorWithPadding).")
    return [Finding(
        id="padding_waste",
        severity="high" if share >= LANGUAGE.padding_share_high else "medium",
        summary=summary,
        evidence={"padding_share": share, "tokens": tokens["tokens"], "real_tokens": tokens["real_tokens"],
                  "model_share": model_share, "steps": report.steps, "dataloaders": loaders,
                  "threshold": LANGUAGE.padding_share},
        share=share * model_share if model_share is not None else None,
    )]


# ---------------------------------------------------------------- attention
def _attention(model: dict[str, Any]) -> list[Finding]:
    attention = model.get("attention") or {}
    implementation = attention.get("implementation")
    if implementation not in ("eager", "hand-written") or not attention.get("fused_available") \
            or not attention.get("sdpa_supported"):
        return []
    who = named(model, "model")
    if implementation == "eager":
        how = f"{who} ({model.get('class')}) computes attention with attn_implementation=\"eager\""
    else:
        modules = ", ".join(attention.get("modules") or [])
        where = f" ({attention['where']})" if attention.get("where") else ""
        how = f"{who}'s {modules}{where} computes attention by hand, a softmax over q @ kᵀ"
    length = (model.get("decoding") or {}).get("max_length")
    scores = f" ({length}×{length} per head here)" if length else ""
    return [Finding(
        id="attention_eager",
        severity="medium",
        summary=(f"{how}: the score matrix{scores} is written to memory and read back by several kernels, where "
                 "torch.nn.functional.scaled_dot_product_attention computes the same in one fused kernel."),
        evidence={"model": model.get("name"), "class": model.get("class"), "implementation": implementation,
                  "modules": attention.get("modules") or [], "where": attention.get("where"),
                  "sequence_length": length},
    )]


# --------------------------------------------------------------- generation
def _generation(model: dict[str, Any]) -> list[Finding]:
    decoding = model.get("decoding") or {}
    calls, regrown = decoding.get("calls") or 0, decoding.get("regrown_calls") or 0
    decode_calls = regrown + (decoding.get("incremental_calls") or 0)
    if not decode_calls:
        return []
    per_token = decoding["decode_s"] / (decode_calls * max(1, decoding.get("batch") or 1))
    found = []
    if (regrown >= LANGUAGE.min_regrown_calls and regrown >= LANGUAGE.regrown_share * calls
            and decoding.get("same_prefix")):
        length = decoding["regrown_length"]
        found.append(Finding(
            id="generation_no_cache",
            severity="high",
            summary=(f"{named(model, 'model')} was called on a growing sequence: {regrown} of its {calls} calls took "
                     f"the previous call's tokens plus one (up to {decoding['max_length']}), so each new token "
                     f"recomputed {length:.0f} positions on average and cost {units.duration(per_token)} of forward "
                     "time. A KV cache keeps the earlier positions' keys and values: one position per new token."),
            evidence={"model": model.get("name"), "class": model.get("class"), "calls": calls,
                      "regrown_calls": regrown, "mean_length": length, "max_length": decoding["max_length"],
                      "per_token_s": per_token, "thresholds": {"min_regrown_calls": LANGUAGE.min_regrown_calls,
                                                               "regrown_share": LANGUAGE.regrown_share}},
        ))
    if decoding.get("batch") == 1 and decode_calls >= LANGUAGE.min_decode_calls:
        found.append(Finding(
            id="generation_batch_one",
            severity="low",
            summary=(f"{named(model, 'model')} generates one sequence at a time: each new token costs "
                     f"{units.duration(per_token)} of forward time ({decode_calls} decoding calls). A decoding step "
                     "reads every weight however few sequences it runs, so generating several prompts in one call "
                     "(a tokenizer with padding_side=\"left\" and padding=True, then one generate()) costs little "
                     "more per step and divides the cost per token."),
            evidence={"model": model.get("name"), "decode_calls": decode_calls, "batch": 1, "per_token_s": per_token,
                      "threshold": LANGUAGE.min_decode_calls},
        ))
    return found
