"""The one background thread that samples host and GPU counters into a Timeline.

It never touches the profiled code's objects: it reads psutil, NVML and (once
the user made a CUDA context) torch.cuda's allocator totals, and a step
counter the probes keep. Taken cache-cold by a thread that wakes every
100 ms, a sample costs ≈ 0.35 ms of CPU in a bare Python process on Linux and
≈ 0.7 ms in a Jupyter kernel (more threads and malloc arenas: ``mallinfo2``
alone ≈ 0.3 ms there); psutil's readers took twice that. The default 10 Hz
so costs under 1 % of one core; at 100 Hz the GIL hold starts to show on
launch-bound loops (docs/architecture.md, "What things cost"), hence the 0.01 s floor.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from .gpu import GpuProbe, cuda_memory
from .host import HostProbe
from .timeline import Timeline

MIN_INTERVAL = 0.01


class Sampler:
    def __init__(self, timeline: Timeline, interval: float = 0.1, steps: Callable[[], int] | None = None):
        if not interval >= MIN_INTERVAL:
            raise ValueError(f"--interval must be at least {MIN_INTERVAL} s, got {interval}")
        self.timeline = timeline
        self.interval = interval
        self._steps = steps
        self.host = HostProbe()
        self.gpu = GpuProbe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jupyter-perf-sampler", daemon=True)
        self.t0 = time.perf_counter()
        self.errors: list[str] = []

    @property
    def notes(self) -> list[str]:
        notes = [self.gpu.note] if self.gpu.note else []
        if not self.host.io_available:
            notes.append("storage I/O counters are not readable here: disk_io cannot be diagnosed")
        if self.host.heap_note:
            notes.append(self.host.heap_note)
        return notes + self.errors

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.sample(slow=False)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, take a last sample so short runs still have two, release NVML."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample(slow=False)
        self.gpu.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a broken counter must not kill sampling silently
                self.errors.append(f"sampling stopped early: {type(exc).__name__}: {exc}")
                return

    def sample(self, slow: bool = True) -> None:
        """One row. ``slow=False`` (the first and last rows, taken on the profiled cell's own
        thread) skips the counters that take NVML milliseconds to read (PCIe throughput)."""
        row: dict[str, float | None] = {"t": time.perf_counter() - self.t0}
        if self._steps is not None:
            row["steps"] = self._steps()
        row.update(self.host.read())
        if self.gpu.available:
            pids = {self.host.pid, *self.host.children_pids()}
            row.update(self.gpu.read(pids, slow=slow))
        row.update(cuda_memory())
        self.timeline.append(row)
