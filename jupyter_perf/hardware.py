"""Peak math throughput of known GPUs, per dtype: the denominator of model FLOPs utilization (MFU).

Dense figures (no 2:4 sparsity), tensor-core rates for 16-bit and TF32, FP32 without tensor cores, in
FLOP/s, from NVIDIA's datasheets: H100 / H200 (SXM5: 989 TFLOP/s BF16 and FP16, 494 TF32, 67 FP32; PCIe:
756 / 378 / 51), A100 (312 / 156 / 19.5, SXM and PCIe alike), A10 (125 / 62.5 / 31.2), L4 (121 / 60 / 30.3),
L40S (362 / 183 / 91.6), V100 (SXM2: 125 FP16 / 15.7 FP32; no BF16, no TF32), T4 (65 FP16 / 8.1 FP32), and
the Ada and Ampere whitepapers for the RTX 4090 (165 FP16/BF16 with FP32 accumulation, as PyTorch
accumulates; 82.6 TF32 and FP32) and RTX 3090 (71 / 35.6 / 35.6). A device not listed has no known peak:
MFU is then None and the report says so, rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

T = 1e12


@dataclass(frozen=True)
class Peak:
    """Dense peak FLOP/s of one GPU model by the dtype its matmuls run in."""

    name: str
    bf16: float | None
    fp16: float | None
    tf32: float | None
    fp32: float

    def for_dtype(self, dtype: str) -> float | None:
        return getattr(self, dtype, None)


#: (pattern matched against ``torch.cuda.get_device_name()``, peaks); the first match wins.
_PEAKS: tuple[tuple[str, Peak], ...] = (
    (r"H200", Peak("H200", 989e12, 989e12, 494e12, 67e12)),
    (r"H100.*PCIe", Peak("H100 PCIe", 756e12, 756e12, 378e12, 51e12)),
    (r"H100", Peak("H100 SXM", 989e12, 989e12, 494e12, 67e12)),
    (r"A100", Peak("A100", 312e12, 312e12, 156e12, 19.5e12)),
    (r"L40S", Peak("L40S", 362e12, 362e12, 183e12, 91.6e12)),
    (r"\bL4\b", Peak("L4", 121e12, 121e12, 60e12, 30.3e12)),
    (r"\bA10\b", Peak("A10", 125e12, 125e12, 62.5e12, 31.2e12)),
    (r"V100", Peak("V100", None, 125e12, None, 15.7e12)),
    (r"\bT4\b", Peak("T4", None, 65e12, None, 8.1e12)),
    (r"RTX 4090", Peak("RTX 4090", 165e12, 165e12, 82.6e12, 82.6e12)),
    (r"RTX 3090", Peak("RTX 3090", 71e12, 71e12, 35.6e12, 35.6e12)),
)


def gpu_peak(device_name: str | None) -> Peak | None:
    """The peaks of the GPU called ``device_name`` (as torch names it), or None if it is not a known one."""
    if not device_name:
        return None
    return next((peak for pattern, peak in _PEAKS if re.search(pattern, device_name)), None)
