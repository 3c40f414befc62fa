"""The numerics guard: an optimization that changes numerics keeps the change only if outputs still agree.

The model runs on one held batch before the change and after it; the
relative error is ``‖after − before‖ / ‖before‖`` (Frobenius norm over every
tensor of the output, in float64), which stays meaningful where individual
outputs are near zero. Over the kind's threshold, ``Change.commit()`` reverts
the change and says by how much the outputs differed. Both runs are in eval
mode (dropout off, batch-norm statistics untouched), without grad, from the
same RNG seed, on a fresh copy of the inputs each (a model that changes its
inputs in place changes neither the user's tensors nor the second run's);
the model's own train/eval flags and every RNG (CPU and each CUDA device in
use) are left as they were.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..probes.inputs import RecordedCall

#: Elements compared at a time: the difference of two large outputs (an LM's logits) is computed in float64
#: on their own device a slice at a time, never as a whole float64 copy on the host.
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Thresholds:
    """Largest relative output error each kind of change may cause (fractions, not percent).

    Where the numbers come from: a float format with ``p`` significand bits
    rounds each result by up to ``2**-p``; a forward pass stacks a few dozen
    such roundings, partly cancelling, so a healthy change lands at a small
    multiple of one rounding, and a broken one (overflow, a wrong kernel, a
    layer quantized that should not be) at 10% or more.
    """

    #: bfloat16 keeps 8 bits (one rounding 3.9e-3); deep models land at 1-3%.
    amp_bf16: float = 5e-2
    #: float16 keeps 11 bits (4.9e-4); overflow shows as inf, far above this.
    amp_fp16: float = 2e-2
    #: TF32 rounds matmul inputs to 11 bits and accumulates in float32: ~1e-3 per matmul.
    tf32: float = 1e-2
    #: Same math, other kernels and summation order: float32 roundoff (~1e-6) only.
    channels_last: float = 1e-4
    #: Fusion reorders float32 operations (~1e-6); 1e-3 still catches a miscompile.
    compile: float = 1e-3
    #: Fused attention (scaled_dot_product_attention) for a softmax over q @ kᵀ: the same math reordered, like compile.
    attention: float = 1e-3
    #: Dynamic int8: 256 levels per tensor; Linear outputs typically move 1-5%.
    quantize: float = 1e-1
    #: Magnitude pruning without fine-tuning: small amounts move outputs a few percent.
    prune: float = 1e-1
    #: DDP gradient compression (distributed.comm_hook), measured on the run's own gradients: a 16-bit cast
    #: rounds each by at most 2**-8 (bfloat16) or 2**-11 (float16), ~0.2% / 0.03% in norm; float16's
    #: underflow of tiny gradients or overflow shows far above 1%.
    comm_bf16: float = 1e-2
    comm_fp16: float = 1e-2

    #: Kinds whose threshold assumes float32 roundoff (they reorder, not reround): for a model
    #: that already runs in 16 bits, its own rounding is the floor (see ``for_outputs``).
    reordering = ("channels_last", "compile", "tf32", "attention")

    def for_outputs(self, kind: str, dtype: Any) -> float:
        """The kind's threshold, raised to the 16-bit format's own where the outputs are 16-bit.

        Fusing or reordering bfloat16 work rounds differently at every step, so a
        healthy compiled bfloat16 model moves by what AMP moves a float32 one by
        (measured on an H200: ≈ 0.5% for a 24-layer bf16 MLP), far above 1e-3.
        """
        import torch

        threshold = self.for_kind(kind)
        if kind in self.reordering and dtype in (torch.bfloat16, torch.float16):
            return max(threshold, self.amp_bf16 if dtype == torch.bfloat16 else self.amp_fp16)
        return threshold

    def for_kind(self, kind: str) -> float:
        kinds = [f.name for f in dataclasses.fields(self)]
        if kind not in kinds:
            raise ValueError(f"unknown numerics kind {kind!r}; known: {', '.join(kinds)}")
        return getattr(self, kind)


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class NumericsResult:
    """How far the outputs moved, against the kind's threshold."""

    kind: str
    relative_error: float
    threshold: float
    max_abs_error: float
    #: Why the outputs could not be compared at all (shape or structure changed), if so.
    problem: str | None = None
    #: What the model ran on: "the call recorded in the profiled run", or the name of an input.
    checked_on: str = ""

    @property
    def passed(self) -> bool:
        return self.problem is None and self.relative_error <= self.threshold

    @property
    def summary(self) -> str:
        if self.problem:
            return f"outputs not comparable after the change: {self.problem}"
        verdict = "within" if self.passed else "over"
        on = f" on {self.checked_on}" if self.checked_on else ""
        return (f"outputs differed by {self.relative_error:.2%} relative error (max abs {self.max_abs_error:.3g}){on}, "
                f"{verdict} the {self.threshold:.2%} allowed for {self.kind}")


@dataclass
class HeldBatch:
    """Inputs kept to run the model on before and after a change: ``model(*args, **kwargs)``."""

    args: tuple
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_call(cls, call: RecordedCall) -> HeldBatch:
        """The arguments of a real call the profiler recorded (probes/inputs.py), as the user's code passed them,
        without a KV cache the call carried (it has grown since)."""
        call = call.without_cache()
        return cls(tuple(call.args), dict(call.kwargs))

    @classmethod
    def from_loader(cls, loader: Any) -> HeldBatch:
        """The first input of the loader's first batch, leaving the RNGs as they were.

        A batch that is a tensor is the input; a tuple/list's first element is (the
        ``(x, y)`` convention). Anything else raises ValueError: pass a HeldBatch.
        """
        import torch

        generator = getattr(loader, "generator", None)
        state = generator.get_state() if generator is not None else None
        with torch.random.fork_rng(devices=[]):
            batch = next(iter(loader))
        if generator is not None:
            generator.set_state(state)
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            batch = batch[0]
        if not isinstance(batch, torch.Tensor):
            raise ValueError(f"cannot tell the model's input in a {type(batch).__name__} batch; pass a HeldBatch")
        return cls((batch,))

    def devices(self) -> set[Any]:
        """The devices of the tensors held, however nested (an LSTM's ``(h, c)``, a dict of kwargs)."""
        found: set[Any] = set()
        map_tensors((self.args, self.kwargs), lambda t: found.add(t.device))
        return found

    def to(self, device: Any) -> HeldBatch:
        """A copy with every tensor on ``device`` (for a model moved since its call was recorded)."""
        return HeldBatch(*map_tensors((self.args, self.kwargs), lambda t: t.detach().to(device)))

    def run(self, model: Any, context: AbstractContextManager | None = None) -> Any:
        """The model's output in eval mode, without grad, from a fixed seed, on a copy of the inputs; its modes
        and every RNG restored."""
        import torch

        from ..probes.inputs import restore_training, training_flags

        flags = training_flags(model)
        args, kwargs = map_tensors((self.args, self.kwargs), lambda t: t.detach().clone())
        model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=_cuda_devices()), context or nullcontext():
                torch.manual_seed(0)  # (it seeds every CUDA device too: hence their states forked above)
                return model(*args, **kwargs)
        finally:
            restore_training(flags)


def _cuda_devices() -> list[int]:
    """CUDA devices whose RNG a seed would touch: all of them once the user's code started CUDA, else none
    (asking more would start CUDA in a process that never used it)."""
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


def map_tensors(value: Any, fn: Any) -> Any:
    """``value`` with ``fn`` applied to each tensor inside tuples, lists (types kept) and dicts."""
    import torch

    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_tensors(v, fn) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(map_tensors(v, fn) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(map_tensors(v, fn) for v in value)
    return value


def compare(kind: str, before: Any, after: Any, thresholds: Thresholds = THRESHOLDS) -> NumericsResult:
    """Relative error of ``after`` against ``before``: tensors, or tuples/lists/dicts of them (a Hugging Face
    ``ModelOutput`` is a dict: its tensors are compared, what is not a tensor, like a KV cache object, is not)."""
    threshold = thresholds.for_kind(kind)
    try:
        pairs = list(_pairs(before, after))
    except ValueError as exc:
        return NumericsResult(kind, math.inf, threshold, math.inf, str(exc))
    if pairs:
        threshold = thresholds.for_outputs(kind, pairs[0][0].dtype)
    diff = norm = worst = 0.0
    for b, a in pairs:
        b, a = b.detach().reshape(-1), a.detach().reshape(-1).to(b.device)
        for start in range(0, b.numel(), _CHUNK):
            before_part, delta = b[start:start + _CHUNK].double(), a[start:start + _CHUNK].double()
            delta -= before_part
            diff += float(delta.square().sum())
            norm += float(before_part.square().sum())
            worst = max(worst, float(delta.abs().max()))
    if not math.isfinite(diff):
        return NumericsResult(kind, math.inf, threshold, math.inf)
    relative = math.sqrt(diff / norm) if norm else (0.0 if diff == 0 else math.inf)
    return NumericsResult(kind, relative, threshold, worst)


def _pairs(before: Any, after: Any):
    import torch

    if isinstance(before, torch.Tensor):
        if not isinstance(after, torch.Tensor) or before.shape != after.shape:
            raise ValueError(f"shape {tuple(before.shape)} became {getattr(after, 'shape', type(after).__name__)}")
        yield before, after
    elif isinstance(before, dict):
        if not isinstance(after, dict) or before.keys() != after.keys():
            raise ValueError("the output's keys changed")
        for key in before:
            yield from _pairs(before[key], after[key])
    elif isinstance(before, (tuple, list)):
        if not isinstance(after, (tuple, list)) or len(before) != len(after):
            raise ValueError("the output's structure changed")
        for b, a in zip(before, after, strict=True):
            yield from _pairs(b, a)
