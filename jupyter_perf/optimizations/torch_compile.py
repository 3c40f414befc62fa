"""compile.torch_compile and compile.cuda_graphs: the model compiled with ``torch.compile``.

``torch.compile(model)`` returns a wrapper (``OptimizedModule``) that holds the
model itself as ``_orig_mod`` and shares its parameters, so optimizers built
on the model keep training the same tensors; the namespace names bound to
the model are pointed at the wrapper, and the undo points them back. The
statement ``model = torch.compile(model)`` goes right after the line that
builds the model, never into the loop cell: compiling a compiled module
again returns a plain function. ``mode="reduce-overhead"`` (compile.cuda_graphs)
also records the step's kernels as CUDA graphs and replays them with one
launch, which removes launch overhead on a GPU.

Compiling changes fusion and summation order; the guard compares the
compiled model's outputs with the eager model's on a held input, which is
also when the first compilation happens (seconds to a minute).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from ..catalog import CATALOG
from .base import Change, Context, NotApplicable, Optimization, Undo, rebind, torch_name
from .model_rewrite import after_binding
from .models import INPUTS_PARAM, MODEL_PARAM, device_of, held_inputs, pick_model, require_cuda_model
from .rewrite import builder_call, parse, set_call_arguments

if TYPE_CHECKING:
    from .guard import NumericsResult

DEFAULT_BACKEND = "inductor"


class TorchCompile(Optimization):
    entry = CATALOG["compile.torch_compile"]
    params: ClassVar[dict[str, str]] = {
        "model": MODEL_PARAM,
        "inputs": INPUTS_PARAM,
        "mode": "torch.compile's mode (default: torch's own, 'default')",
        "backend": f"compiler backend (default: {DEFAULT_BACKEND!r})",
    }
    #: The mode this optimization compiles with unless ``mode=`` is given.
    default_mode: str | None = None

    def requirements(self, name: str, model: Any) -> None:
        """Raise NotApplicable where this kind of compilation cannot run."""

    def compiled_as_wanted(self, model: Any) -> bool:
        """Whether an already compiled module needs no recompiling."""
        return True

    def plan(self, ctx: Context) -> Change:
        """The preview imports nothing of torch.compile's (``torch._dynamo`` alone takes ≈ 1 s to import, which
        a panel card must not cost every first profiled cell): a model compiled already has imported it."""
        import torch

        name, model = pick_model(ctx)
        self.requirements(name, model)
        mode = ctx.param("mode", lambda: self.default_mode)
        backend = ctx.param("backend", lambda: DEFAULT_BACKEND)
        if backend == "inductor":
            _check_inductor(device_of(model))
        eval_frame = sys.modules.get("torch._dynamo.eval_frame")
        eager = model._orig_mod if eval_frame is not None and isinstance(model, eval_frame.OptimizedModule) else model
        live_done = eager is not model and self.compiled_as_wanted(model)
        keywords = {k: repr(v) for k, v in (("mode", mode),
                                            ("backend", backend if backend != DEFAULT_BACKEND else None))
                    if v is not None}
        call = f"{torch_name(ctx.namespace)}.compile({', '.join([name, *(f'{k}={v}' for k, v in keywords.items())])})"

        def rewrite(source: str) -> str | None:
            module = parse(source)
            if module is not None and builder_call(module, name, "compile") is not None:
                return set_call_arguments(source, name, "compile", keywords)
            return after_binding(source, name, f"{name} = {call}")

        found = ctx.rewrite(ctx.targets(name), rewrite)
        if live_done and (found and not ctx.has_edits()):
            return ctx.unchanged(f"{name} is compiled")
        inputs = None if live_done else held_inputs(ctx, name, model)

        def live(undo: Undo) -> NumericsResult:
            if not torch._dynamo.is_dynamo_supported():
                raise NotApplicable("torch.compile is not supported on this Python or platform")

            def compile_it() -> Any:
                compiled = torch.compile(eager, mode=mode, backend=backend)
                rebind(ctx.namespace, model, compiled, undo)
                return compiled

            try:
                assert inputs is not None  # (live runs only where there is something to do)
                return inputs.check("compile", model, compile_it)
            except NotApplicable:
                raise
            except Exception as exc:
                first_line = (str(exc).splitlines() or [""])[0]
                raise NotApplicable(f"torch.compile failed on {name}: {type(exc).__name__}: {first_line}") from exc

        snippet = None if found else f"{name} = {call}  # right after the line that builds {name}"
        return ctx.change(f"{name} = {call}: the first call compiles (seconds to a minute), later calls run the "
                          "compiled code; re-run the cell to measure", None if live_done else live, self.caveats(),
                          snippet, expects={name: model})

    def caveats(self) -> list[str]:
        return ["a new input shape, dtype or train/eval switch recompiles: the first steps after one are slow"]


class CudaGraphs(TorchCompile):
    entry = CATALOG["compile.cuda_graphs"]
    params: ClassVar[dict[str, str]] = {k: v for k, v in TorchCompile.params.items() if k != "mode"}
    default_mode = "reduce-overhead"

    def requirements(self, name: str, model: Any) -> None:
        require_cuda_model(name, model, "CUDA graphs record and replay GPU kernels")

    def compiled_as_wanted(self, model: Any) -> bool:
        config = model.get_compiler_config()
        return bool(config and config.get("triton.cudagraphs"))

    def caveats(self) -> list[str]:
        return [*super().caveats(),
                ("each input shape records a graph of its own: a smaller last batch records another (drop_last=True "
                "avoids it)"),
                "a replay overwrites the previous outputs: clone an output to keep it across steps"]


def _check_inductor(device: Any) -> None:
    """NotApplicable where the inductor backend cannot generate code for ``device``."""
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise NotApplicable("inductor generates Triton kernels on CUDA, and triton is not installed")
    if device.type == "cpu" and not any(shutil.which(cxx) for cxx in ("g++", "clang++", "c++")):
        raise NotApplicable("inductor compiles C++ on the CPU, and no C++ compiler (g++, clang++) is on the PATH")
