"""How a model's token-id inputs grow from one call to the next: the shape of generation, read from shapes.

Generating text calls the model once per new token. With a KV cache each call after the first takes only the
new token (``input_ids`` of length 1, the keys and values of the earlier ones kept per layer); without one,
each call takes the whole sequence again, one token longer than the last, and recomputes every earlier
position: ``generate(use_cache=False)``, or a loop of ``idx = torch.cat([idx, next_id], 1); model(idx)``.

The module probe calls :meth:`Decoding.see` after each call of a model on token ids, on the hot path, so it
reads the ids' shape only (no values, no sync): a dict lookup, two comparisons and a counter, ≈ 1.4 µs a call
measured here, against the hundreds of µs of a language model's call. It keeps a
reference to the last ids of each model (no copy), and to the latest pair of calls whose length grew by one,
so that after the run one comparison says whether the longer one began with the shorter one (the same
sequence re-fed, not two unrelated batches that happen to differ by one in length).
"""

from __future__ import annotations

from typing import Any


class Decoding:
    def __init__(self) -> None:
        #: Per model key: [calls, regrown calls, incremental calls, their forward seconds, batch, longest,
        #: positions the regrown calls took].
        self._stats: dict[Any, list] = {}
        self._last: dict[Any, Any] = {}  # the latest ids each model took
        self._grown: dict[Any, tuple[Any, Any]] = {}  # (ids, next ids) of the latest call one token longer

    def see(self, key: Any, ids: Any, seconds: float) -> None:
        """One call of model ``key`` on ``ids`` (an integer tensor) whose forward took ``seconds``."""
        shape = ids.shape
        if len(shape) != 2:
            return
        batch, length = shape
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = [0, 0, 0, 0.0, batch, length, 0]
        stats[0] += 1
        last = self._last.get(key)
        if last is not None and last.shape[0] == batch:
            if length == last.shape[1] + 1:
                stats[1] += 1
                stats[3] += seconds
                stats[6] += length
                self._grown[key] = (last, ids)
            elif length == 1:
                stats[2] += 1
                stats[3] += seconds
        stats[4] = batch
        if length > stats[5]:
            stats[5] = length
        self._last[key] = ids

    def facts(self, key: Any) -> dict[str, Any] | None:
        """What model ``key``'s calls on token ids looked like, or None where it took none; forgets its tensors.

        ``regrown_calls``: calls one token longer than the call before (same batch); ``incremental_calls``:
        calls on a single token after an earlier call (a KV cache's decoding steps); ``regrown_length``: the mean
        length of the regrown calls, the positions each computed for one new token; ``decode_s``: their
        forward time; ``same_prefix``: whether the latest regrown call began with the ids of the call before it
        (None where no call regrew).
        """
        self._last.pop(key, None)
        grown = self._grown.pop(key, None)
        stats = self._stats.pop(key, None)
        if stats is None:
            return None
        calls, regrown, incremental, seconds, batch, longest, positions = stats
        return {"calls": calls, "regrown_calls": regrown, "regrown_length": positions / regrown if regrown else None,
                "incremental_calls": incremental, "decode_s": seconds,
                "batch": int(batch), "max_length": int(longest),
                "same_prefix": None if grown is None else _starts_with(grown[1], grown[0])}

    def clear(self) -> None:
        self._stats.clear()
        self._last.clear()
        self._grown.clear()


def _starts_with(longer: Any, shorter: Any) -> bool:
    import torch

    return bool(torch.equal(longer[:, : shorter.shape[1]], shorter))
