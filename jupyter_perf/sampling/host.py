"""Host counters from psutil: CPU, memory and storage I/O of the kernel and its children.

Children matter because DataLoader workers are separate processes: their RSS
and their reads are the input pipeline's cost. The child list is refreshed at
most once a second (walking /proc is the expensive part of a sample), and I/O
is accumulated per pid so workers that exit mid-run are still counted.
"""

from __future__ import annotations

import time

import psutil

_CHILD_REFRESH_S = 1.0


class HostProbe:
    def __init__(self) -> None:
        self.process = psutil.Process()
        self.mem_total = psutil.virtual_memory().total
        self._children: dict[int, psutil.Process] = {}
        self._children_at = -_CHILD_REFRESH_S
        self._io_start: dict[int, tuple[int, int, int]] = {}
        self._io_last: dict[int, tuple[int, int, int]] = {}
        self.io_available = _io(self.process) is not None
        psutil.cpu_percent(percpu=True)  # the first call only primes the counters
        self.process.cpu_percent()
        self._refresh_children()
        for process in [self.process, *self._children.values()]:
            counters = _io(process)
            if counters is not None:  # what ran before the profiled code is not its cost
                self._io_start[process.pid] = self._io_last[process.pid] = counters

    def read(self) -> dict[str, float | None]:
        self._refresh_children()
        per_core = psutil.cpu_percent(percpu=True)
        vm = psutil.virtual_memory()
        rss = self.process.memory_info().rss
        rss_children, proc_cpu = 0, self.process.cpu_percent()
        for pid, child in list(self._children.items()):
            try:
                rss_children += child.memory_info().rss
                proc_cpu += child.cpu_percent()
                self._track_io(child)
            except psutil.Error:
                del self._children[pid]
        self._track_io(self.process)
        row: dict[str, float | None] = {
            "cpu_percent": sum(per_core) / len(per_core),
            "proc_cpu_percent": proc_cpu,
            "rss": rss,
            "rss_children": rss_children,
            "rss_total": rss + rss_children,
            "mem_available": vm.available,
            "mem_total": vm.total,
        }
        row.update({f"cpu{i}": pct for i, pct in enumerate(per_core)})
        if self.io_available:
            read, write, _ = self.io_totals()
            row.update(read_bytes=read, write_bytes=write)
        return row

    def io_totals(self) -> tuple[int, int, int]:
        """Storage read bytes, written bytes and read characters since the probe started, all processes."""
        totals = [0, 0, 0]
        for pid, last in self._io_last.items():
            start = self._io_start[pid]
            for i in range(3):
                totals[i] += last[i] - start[i]
        return totals[0], totals[1], totals[2]

    def children_pids(self) -> list[int]:
        return list(self._children)

    def _refresh_children(self) -> None:
        now = time.monotonic()
        if now - self._children_at < _CHILD_REFRESH_S:
            return
        self._children_at = now
        try:
            current = self.process.children(recursive=True)
        except psutil.Error:
            return
        for child in current:
            if child.pid not in self._children:
                self._children[child.pid] = child
                try:
                    child.cpu_percent()
                except psutil.Error:
                    pass

    def _track_io(self, process: psutil.Process) -> None:
        counters = _io(process)
        if counters is None:
            return
        # A child first seen mid-run was started by the profiled code: all its reads count.
        self._io_start.setdefault(process.pid, (0, 0, 0))
        self._io_last[process.pid] = counters


def _io(process: psutil.Process) -> tuple[int, int, int] | None:
    try:
        c = process.io_counters()
    except (psutil.Error, AttributeError, NotImplementedError):
        return None
    return c.read_bytes, c.write_bytes, getattr(c, "read_chars", 0)
