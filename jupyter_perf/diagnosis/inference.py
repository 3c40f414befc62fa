"""inference_with_grad: forwards record autograd graphs that no backward ever uses.

Not a bottleneck of its own: recording costs a few µs per op (measured here,
nn.Linear(4, 4) 8.7 µs with grad vs 5.6 µs under inference_mode) and keeps every
activation alive until the output is dropped, so it inflates both the launch
overhead and the memory of an evaluation loop.
"""

from __future__ import annotations

from typing import Sequence

from ..report import Finding, Report
from .common import backward_calls, measured, not_measured
from .thresholds import INFERENCE


def check(report: Report, found: Sequence[Finding]) -> list[Finding]:
    forward = report.signals.get("forward") or {}
    grad_calls = forward.get("grad_enabled_calls")
    if grad_calls is None or grad_calls < INFERENCE.min_forward_calls:
        return []
    backwards = backward_calls(report)
    if backwards is None:
        return [not_measured("inference_with_grad", "Backward calls", ["signals['backward']['calls']"])]
    if backwards:
        return []
    calls = forward.get("calls")
    return [
        Finding(
            id="inference_with_grad",
            severity="medium",
            summary=(
                f"{grad_calls} of {measured(calls)} forward calls ran with gradients enabled but backward never ran: "
                "autograd recorded graphs and kept activations that nothing used."
            ),
            evidence={
                "forward_calls": measured(calls),
                "grad_enabled_calls": grad_calls,
                "inference_calls": measured(forward.get("inference_calls")),
                "backward_calls": 0,
                "threshold": INFERENCE.min_forward_calls,
            },
        )
    ]
