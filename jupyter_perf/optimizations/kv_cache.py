"""generation.kv_cache: generate with a KV cache, computing each position once instead of once per new token.

Without a cache every decoding step runs the model over the whole sequence so far; with one, the keys and
values of the earlier positions are kept per layer and each step runs on the new token alone: at 128 new tokens
after a short prompt, about 64 times fewer positions.

* Hugging Face ``generate``: ``use_cache=False`` in the cell's ``.generate(...)`` calls becomes
  ``use_cache=True``, and so does a ``<model>.config.use_cache = False`` or ``<model>.generation_config.use_cache
  = False`` statement; the live ``config``/``generation_config`` flags that are off are turned on (undone the
  same way). Greedy decoding gives the same tokens either way; sampling draws from the same distributions.
* A loop that feeds the model its growing sequence by hand: the Change shows the code to write, with
  ``generate()`` or ``past_key_values`` for a Hugging Face model; for a model written by hand, what its
  attention must keep. Nothing is rewritten: a loop's own logic (stopping, sampling) is the user's.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import libcst as cst

from ..catalog import CATALOG
from .base import Change, Context, Optimization, Undo
from .models import MODEL_PARAM, pick_model
from .rewrite import code, find_nodes, parse, replace_nodes

#: The flags a Hugging Face model reads ``use_cache`` from when ``generate()`` is not told.
_CONFIGS = ("config", "generation_config")


class KvCache(Optimization):
    entry = CATALOG["generation.kv_cache"]
    params: ClassVar[dict[str, str]] = {"model": MODEL_PARAM}

    def plan(self, ctx: Context) -> Change:
        name, model = pick_model(ctx)
        off = [c for c in _CONFIGS if getattr(getattr(model, c, None), "use_cache", None) is False]
        found = ctx.rewrite(ctx.targets(name), lambda s: enable_cache(s, name))
        if found and not off and not ctx.has_edits():
            return ctx.unchanged(f"{name} generates with use_cache=True")
        if found or off:
            def live(undo: Undo) -> None:
                for config in (getattr(model, c) for c in off):
                    config.use_cache = True
                    undo.push(functools.partial(setattr, config, "use_cache", False))

            flags = ", ".join(f"{name}.{c}.use_cache" for c in off)
            return ctx.change(f"{name} generates with a KV cache (use_cache=True{'; ' + flags + ' on' if flags else ''}"
                              "): each new token runs the model on one position; re-run the cell to measure",
                              live if off else None, expects={name: model})
        hugging_face = callable(getattr(model, "generate", None))
        return ctx.change(f"{name} is called on its growing sequence by the cell's own loop, which is not rewritten "
                          "here: write it as shown", snippet=_hf_loop(name) if hugging_face else _hand_loop(name))


def enable_cache(source: str, model: str) -> str | None:
    """``use_cache=False`` -> ``True`` in the cell's ``<model>.generate(...)`` calls and ``<model>.config`` /
    ``.generation_config.use_cache = False`` statements; the same text where they say True already; None where
    the cell has neither."""
    module = parse(source)
    if module is None:
        return None
    calls = find_nodes(module, cst.Call, lambda n: isinstance(n.func, cst.Attribute)
                       and n.func.attr.value == "generate" and code(n.func.value) == model)
    flags = [a for c in calls for a in c.args if a.keyword is not None and a.keyword.value == "use_cache"]
    settings = find_nodes(module, cst.Assign, lambda n: len(n.targets) == 1
                          and code(n.targets[0].target) in {f"{model}.{c}.use_cache" for c in _CONFIGS})
    off = [a for a in flags if code(a.value) == "False"] + [s for s in settings if code(s.value) == "False"]
    if not off:
        return source if calls or settings else None
    true = cst.Name("True")
    return replace_nodes(module, dict.fromkeys(off, lambda node: node.with_changes(value=true)))


def _hf_loop(model: str) -> str:
    return (f"# generate() keeps the cache itself (greedy decoding: the same tokens as argmax in a loop):\n"
            f"output_ids = {model}.generate(input_ids, max_new_tokens=128, do_sample=False)\n"
            f"# or, keeping the loop, feed only the new token with the cache of the earlier ones:\n"
            f"out = {model}(input_ids, use_cache=True)\n"
            "for _ in range(128):\n"
            "    next_id = out.logits[:, -1:].argmax(-1)\n"
            "    input_ids = torch.cat([input_ids, next_id], dim=1)\n"
            f"    out = {model}(next_id, past_key_values=out.past_key_values, use_cache=True)\n")


def _hand_loop(model: str) -> str:
    return (f"# {model} recomputes every earlier position at each new token. Incremental decoding needs each\n"
            "# attention layer to keep its keys and values and take them back the next step:\n"
            "def forward(self, x, cache=None):           # x: the new positions only\n"
            "    q, k, v = ...                            # as before, for x\n"
            "    if cache is not None:\n"
            "        k = torch.cat([cache[0], k], dim=2)  # (batch, heads, T, head_dim)\n"
            "        v = torch.cat([cache[1], v], dim=2)\n"
            "    y = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)\n"
            "    return self.c_proj(...), (k, v)\n"
            "# and the position embedding offset by the cached length; then generate: the prompt once, collecting\n"
            f"# each layer's (k, v), and one token a step through {model} with them.\n")
