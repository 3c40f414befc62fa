"""GPU counters from NVML, and torch.cuda's allocator once the user's code made a context.

NVML is read-only and process-external: safe to poll at any rate (≈ 12 µs a
sample on an H200). ``torch.cuda`` is another matter: asking it anything
before the user's code initialised CUDA would create a context in the kernel,
which breaks multi-process launchers later, so it is only read once
``torch.cuda.is_initialized()`` says the user did it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

#: PCIe throughput takes NVML ~20 ms to measure (both directions, H200): read it every this many samples.
_PCIE_EVERY = 10


@functools.cache
def _nvml() -> tuple[Any, list[Any], list[dict[str, Any]], str | None]:
    """NVML initialised once per process: (pynvml or None, handles, devices, note).

    ``nvmlInit`` and the device queries cost tens of milliseconds, which a
    profiled cell would pay on every run; NVML is reference-counted and
    process-external, so keeping it initialised for the kernel's life is free.
    """
    try:
        import pynvml
    except ImportError:
        return None, [], [], "nvidia-ml-py is not installed: GPU columns are absent (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        return None, [], [], f"no NVIDIA GPU or driver (NVML: {exc}): GPU columns are absent"
    if count == 0:
        pynvml.nvmlShutdown()
        return None, [], [], "NVML found no GPU: GPU columns are absent"
    handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
    devices = [
        {"index": index, "name": _text(pynvml.nvmlDeviceGetName(h)),
         "mem_total": pynvml.nvmlDeviceGetMemoryInfo(h).total}
        for index, h in enumerate(handles)
    ]
    return pynvml, handles, devices, None


def forget_nvml() -> None:
    """Drop this process's NVML handles, so the next GpuProbe initialises NVML anew (a forked process must not
    reuse its parent's)."""
    _nvml.cache_clear()


class GpuProbe:
    """Per-device NVML reads. ``note`` says plainly why there are no GPU columns, if there are none."""

    def __init__(self) -> None:
        nvml, handles, devices, self.note = _nvml()
        self._nvml: Any = nvml
        self._handles: list[Any] = handles
        self.devices: list[dict[str, Any]] = [dict(d) for d in devices]
        self._reads = 0

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def read(self, pids: set[int], slow: bool = True) -> dict[str, float | None]:
        """One row of per-GPU columns; ``pids`` is the kernel's process tree for per-process memory.

        PCIe throughput (≈ 11 ms per counter per GPU on an H200) is read on every
        ``_PCIE_EVERY``-th slow read only; ``slow=False`` never reads it, for rows the
        profiled cell's own thread waits for.
        """
        if not self.available:
            return {}
        nvml, row = self._nvml, {}
        pcie = slow and self._reads % _PCIE_EVERY == 0
        self._reads += slow
        for i, handle in enumerate(self._handles):
            p = f"gpu{i}_"
            util = _safe(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            mem = _safe(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
            power = _safe(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
            row[p + "util"] = util
            row[p + "mem_used"] = mem.used if mem else None
            row[p + "mem_total"] = mem.total if mem else None
            row[p + "power_w"] = power / 1000 if power is not None else None
            row[p + "temp_c"] = _safe(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            row[p + "sm_clock_mhz"] = _safe(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
            row[p + "proc_mem"] = self._process_memory(handle, pids)
            if pcie:  # KB/s from NVML
                tx = _safe(lambda: nvml.nvmlDeviceGetPcieThroughput(handle, nvml.NVML_PCIE_UTIL_TX_BYTES))
                rx = _safe(lambda: nvml.nvmlDeviceGetPcieThroughput(handle, nvml.NVML_PCIE_UTIL_RX_BYTES))
                row[p + "pcie_tx"] = tx * 1024 if tx is not None else None
                row[p + "pcie_rx"] = rx * 1024 if rx is not None else None
        return row

    def _process_memory(self, handle: Any, pids: set[int]) -> float | None:
        """Memory this process tree holds on one GPU; None when NVML cannot tell (e.g. PID namespaces)."""
        procs = _safe(lambda: self._nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        if procs is None:
            return None
        if not procs:
            return 0
        ours = [p.usedGpuMemory or 0 for p in procs if p.pid in pids]
        return sum(ours) if ours else None

    def close(self) -> None:
        """Stop reading; NVML itself stays initialised for the next run (see ``_nvml``)."""
        self._nvml = None


def cuda_memory() -> dict[str, float]:
    """torch.cuda allocator totals, only when torch is imported and CUDA already initialised.

    The sampler's thread runs while the cell may be importing torch: a torch still being imported is
    in ``sys.modules`` without ``torch.cuda`` (reading it raised, and stopped the sampling for the
    rest of the run), so it counts as not imported yet.
    """
    torch = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return {}
    is_initialized = getattr(getattr(torch, "cuda", None), "is_initialized", None)
    if is_initialized is None or not is_initialized():
        return {}
    allocated = reserved = 0
    for device in range(torch.cuda.device_count()):
        allocated += torch.cuda.memory_allocated(device)
        reserved += torch.cuda.memory_reserved(device)
    return {"cuda_allocated": allocated, "cuda_reserved": reserved}


def _safe(read):
    """One NVML query; a counter the device does not support is missing, not fatal."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: the column stays empty
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
