"""Batches of similar lengths, padded to their own longest: the pieces ``data.length_grouping`` writes into a notebook.

A tokenizer that pads every sample to one length (``padding="max_length"``), or batches of samples of mixed
lengths padded to a common one, make the model compute on padding: at 40% padding, 40% of its matmul rows are
wasted. Two pieces remove most of it, and keep the data, the batch size and the loss the same:

* :class:`LengthGroupedBatchSampler` puts samples of similar length in the same batch. As Hugging Face's
  ``LengthGroupedSampler`` does, it shuffles the indices, sorts them by length within groups of ``group``
  batches (so batches stay random across the epoch), cuts those into batches, and (``shuffle=True``) shuffles
  the order of the batches, so a long batch is not always followed by a shorter one.
* :class:`PadToLongest` collates a batch as the loader did, then cuts the columns that are padding in every
  row of the batch (leading ones for left padding, trailing ones for right padding), so each batch is as
  long as its longest sample.

Both are plain picklable objects, so DataLoader workers can use them. Importing this module imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Callable

import torch
from torch.utils.data import Sampler
from torch.utils.data._utils.collate import default_collate

__all__ = ["LengthGroupedBatchSampler", "PadToLongest", "sample_length"]


def sample_length(sample: Any) -> int:
    """Tokens in one sample: its attention mask's ones, else its ``input_ids``' length (a tokenizer's output)."""
    if isinstance(sample, Mapping):
        if "attention_mask" in sample:
            return int(torch.as_tensor(sample["attention_mask"]).sum())
        if "input_ids" in sample:
            return len(sample["input_ids"])
    raise ValueError(f"cannot tell the length of a {type(sample).__name__} sample: give lengths= (one per sample), "
                     "or samples with an attention_mask or input_ids")


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices of similar length; each epoch a new random grouping (``shuffle``) or a fixed one.

    ``lengths`` (one per sample) are read from the dataset on the first epoch where not given:
    :func:`sample_length` of each sample, once.
    """

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = True, drop_last: bool = False,
                 lengths: list[int] | None = None, group: int = 50, generator: torch.Generator | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.group, self.generator = group, generator
        self._lengths = list(lengths) if lengths is not None else None

    @property
    def lengths(self) -> list[int]:
        if self._lengths is None:
            self._lengths = [sample_length(self.dataset[i]) for i in range(len(self.dataset))]
        return self._lengths

    def __len__(self) -> int:
        n = len(self._lengths) if self._lengths is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        lengths = self.lengths
        generator = self.generator
        if generator is None and self.shuffle:  # as RandomSampler: a new seed from torch's RNG each epoch
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        n = len(lengths)
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        size = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start:start + size], key=lambda i: -lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return iter(batches)


class PadToLongest:
    """A collate_fn: ``collate_fn`` (torch's default where None), then the padding columns no row uses cut off."""

    def __init__(self, collate_fn: Callable[[list], Any] | None = None):
        self.collate_fn = collate_fn

    def __call__(self, samples: list) -> Any:
        return trim_padding((self.collate_fn or default_collate)(samples))

    def __repr__(self) -> str:
        return f"PadToLongest({self.collate_fn!r})" if self.collate_fn else "PadToLongest()"


def trim_padding(batch: Any) -> Any:
    """A batch (a dict, or a BatchEncoding) with its ``attention_mask``'s all-padding columns cut from every
    tensor as wide as the mask; anything else as it is."""
    if not isinstance(batch, MutableMapping) or not isinstance(batch.get("attention_mask"), torch.Tensor):
        return batch
    mask = batch["attention_mask"]
    if mask.dim() != 2 or not mask.numel():
        return batch
    used = mask.any(0).nonzero()
    width = mask.shape[1]
    if not len(used):
        return batch
    start, stop = int(used[0]), int(used[-1]) + 1
    if (start, stop) == (0, width):
        return batch
    for key, value in list(batch.items()):
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[1] == width:
            batch[key] = value[:, start:stop].contiguous()
    return batch
