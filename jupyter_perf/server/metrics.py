"""A kernel's process tree's CPU and memory, and the GPUs, for the status-bar item.

The counters are jupyter_perf.sampling's own probes, pointed at the kernel's
pid from the server process. A HostProbe is kept per kernel between requests
because CPU percentages are deltas since the previous read; probes of kernels
that are gone are dropped. Answer fields (the labextension's ``IMetrics``):

``kernel``, ``pid``, ``time`` (epoch s); ``cpu_percent`` of the kernel and
its children (100 = one core) and ``cpu_count``; ``rss`` of the tree,
``mem_total`` and ``mem_available`` (bytes); ``gpus``: one
``{index, name, util, mem_used, mem_total, proc_mem}`` per device (``proc_mem``
is the tree's memory on it; None where NVML cannot tell); ``gpu_note``: why
``gpus`` is empty, else None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import psutil

from ..sampling.gpu import GpuProbe
from ..sampling.host import HostProbe

_GPU_FIELDS = ("util", "mem_used", "mem_total", "proc_mem")


class KernelMetrics:
    def __init__(self) -> None:
        self._hosts: dict[str, tuple[int, HostProbe]] = {}
        self._gpu: GpuProbe | None = None
        self._lock = threading.Lock()  # requests run in executor threads; probes keep state between reads

    def read(self, kernel_id: str, pid: int, live_ids: Iterable[str]) -> dict[str, Any]:
        with self._lock:
            for gone in set(self._hosts) - set(live_ids):
                del self._hosts[gone]
            known = self._hosts.get(kernel_id)
            if known is None or known[0] != pid:  # new, or restarted under the same id
                known = self._hosts[kernel_id] = (pid, HostProbe(pid))
            host = known[1]
            row = host.read()
            if self._gpu is None:
                self._gpu = GpuProbe()
            gpu_row = self._gpu.read({pid, *host.children_pids()})
            devices = self._gpu.devices
            note = self._gpu.note
        gpus = [
            {"index": d["index"], "name": d["name"], **{f: gpu_row.get(f"gpu{d['index']}_{f}") for f in _GPU_FIELDS}}
            for d in devices
        ]
        return {
            "kernel": kernel_id,
            "pid": pid,
            "time": time.time(),
            "cpu_percent": row["proc_cpu_percent"],
            "cpu_count": psutil.cpu_count(),
            "rss": row["rss_total"],
            "mem_total": row["mem_total"],
            "mem_available": row["mem_available"],
            "gpus": gpus,
            "gpu_note": note,
        }
