"""compute: the device is busy with the model's math, the healthy case.

Named by elimination, so it needs the phases that would have shown another
bottleneck, enough steps, and no time-based finding. Its fixes lower the math's
cost; which ones apply is read off the Report (dtype, autocast, TF32, layout,
optimizer, threads) and listed as ``levers`` in the evidence, each with the fact
that makes it apply. Below the minimum of steps this module says so instead,
which is what leaves the bottleneck at ``none``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..report import Finding, Report
from .common import (
    TIME_BASED,
    backward_calls,
    duration,
    items,
    named,
    not_measured,
    pct,
    phase_share,
    step_time,
    uses_cuda,
)
from .thresholds import COMPUTE

#: Optimizers with a ``fused=True`` CUDA implementation in torch 2.x.
_FUSABLE = ("Adam", "AdamW", "SGD", "Adagrad")

_MODEL_PHASES = ("forward", "backward", "optimizer")


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    if report.steps < COMPUTE.min_steps:
        return [_too_few_steps(report)]
    if any(f.bottleneck in TIME_BASED for f in found):
        return []
    required = ("data_wait", *_MODEL_PHASES) + (("host_to_device",) if uses_cuda(report) else ())
    missing = [f"phases['{p}']" for p in required if report.phases.get(p) is None]
    if missing:
        return [not_measured("compute", "Where the step's time goes", missing)]
    shares = {p: share for p in report.phases if (share := phase_share(report, p)) is not None}
    math, total = phase_share(report, *_MODEL_PHASES), step_time(report)
    assert math is not None and total is not None  # steps were counted and their phases measured
    summary = (
        f"The model's own work takes {pct(math)} of each {duration(total)} step ("
        + ", ".join(f"{p} {pct(shares[p])}" for p in _MODEL_PHASES)
        + "); no data, copy, sync or launch problem stands out, so lowering the math's cost is what is left."
    )
    if shares.get("other", 0.0) >= COMPUTE.other_share_note:
        summary += f" {pct(shares['other'])} of the step is outside the model's phases (code between them)."
    levers = levers_for(report)
    return [
        Finding(
            id="compute",
            severity="info",
            summary=summary,
            evidence={
                "compute_share": math,
                "phase_shares": shares,
                "step_time_s": total,
                "steps": report.steps,
                "device": "GPU" if uses_cuda(report) else "CPU",
                "levers": levers,
                "not_measured": [f.evidence["rule"] for f in found if f.id.endswith(".not_measured")],
            },
            bottleneck="compute",
            share=math,
        )
    ]


def _too_few_steps(report: Report) -> Finding:
    return Finding(
        id="too_few_steps",
        severity="info",
        summary=(f"Only {report.steps} step{'s' if report.steps != 1 else ''} ran; at least {COMPUTE.min_steps} "
                 "are needed to name a time bottleneck."),
        evidence={"steps": report.steps, "min_steps": COMPUTE.min_steps, "step_anchor": report.step_anchor},
    )


# ------------------------------------------------------------------- levers
def levers_for(report: Report) -> dict[str, str]:
    """Optimization id -> the fact that makes it apply, in the order worth trying."""
    facts = _GPU_LEVERS if uses_cuda(report) else _CPU_LEVERS
    found = {opt: fact(report) for opt, fact in facts}
    return {opt: fact for opt, fact in found.items() if fact}


def _fp32_models(report: Report) -> list[dict]:
    return [m for m in items(report, "models") if str(m.get("dtype") or "").endswith("float32")]


def amp_fact(report: Report) -> str | None:
    """float32 model and autocast measured as never on."""
    fp32 = _fp32_models(report)
    autocast = (report.signals.get("forward") or {}).get("autocast_calls")
    if not fp32 or autocast != 0:
        return None
    return f"{named(fp32[0], 'model')} runs in float32 without autocast"


def _tf32_fact(report: Report) -> str | None:
    cuda = report.signals.get("cuda") or {}
    capability = _capability(cuda.get("capability"))
    if not _fp32_models(report) or cuda.get("tf32_matmul") is not False or capability is None:
        return None
    if capability < COMPUTE.tf32_min_capability:
        return None
    return f"TF32 matmul is off on a compute capability {capability:.1f} GPU"


def _channels_last_fact(report: Report) -> str | None:
    convs = [m for m in items(report, "models") if m.get("has_conv2d") and m.get("channels_last") is False]
    return f"{named(convs[0], 'model')} runs Conv2d layers in the default NCHW layout" if convs else None


def _fused_fact(report: Report) -> str | None:
    share = phase_share(report, "optimizer")
    loops = [o for o in items(report, "optimizers")
             if o.get("class") in _FUSABLE and not o.get("fused") and not o.get("foreach")]
    if not loops or share is None or share < COMPUTE.optimizer_share:
        return None
    return f"{loops[0]['class']} steps take {pct(share)} of the step, neither fused nor foreach"


def _compile_fact(report: Report) -> str | None:
    eager = [m for m in items(report, "models") if m.get("class") != "OptimizedModule"]
    return f"{named(eager[0], 'model')} runs eagerly, one op at a time" if eager else None


def _threads_fact(report: Report) -> str | None:
    cpu = report.signals.get("cpu") or {}
    threads, cores = cpu.get("torch_threads"), cpu.get("available")
    if threads is None or not cores:
        return None
    if threads > cores:
        return f"torch runs {threads} threads on {cores} available cores (oversubscribed)"
    if threads < cores * COMPUTE.min_thread_fraction:
        return f"torch uses {threads} threads of {cores} available cores"
    return None


def _quantize_fact(report: Report) -> str | None:
    if backward_calls(report) != 0:
        return None
    dense = [m for m in items(report, "models") if m.get("has_linear") or m.get("has_lstm")]
    return f"{named(dense[0], 'model')} runs inference with Linear/LSTM layers on the CPU" if dense else None


def _capability(value: Any) -> float | None:
    """Compute capability as a number from (8, 0), [8, 0], '8.0' or 8.0."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0] + value[1] / 10
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_Fact = Callable[[Report], "str | None"]
_GPU_LEVERS: tuple[tuple[str, _Fact], ...] = (
    ("precision.amp", amp_fact),
    ("precision.tf32", _tf32_fact),
    ("layout.channels_last", _channels_last_fact),
    ("optimizer.fused", _fused_fact),
    ("compile.torch_compile", _compile_fact),
)
_CPU_LEVERS: tuple[tuple[str, _Fact], ...] = (
    ("cpu.threads", _threads_fact),
    ("compression.quantize_dynamic", _quantize_fact),
    ("compile.torch_compile", _compile_fact),
)
