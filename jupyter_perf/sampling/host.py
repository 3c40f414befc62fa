"""Host counters from psutil: CPU, memory and storage I/O of the kernel and its children.

Children matter because DataLoader workers are separate processes: their RSS
and their reads are the input pipeline's cost. On Linux the child list is read
at every sample from ``/proc/PID/task/TID/children`` (≈ 50 µs, so workers of a
short epoch are seen); elsewhere psutil walks every process (≈ 2 ms), at most
once a second. I/O is accumulated per pid so workers that exit mid-run still count.

RSS alone hides a leak that refills memory freed earlier (the allocator reuses
it without the process growing), so where glibc is the allocator the bytes
malloc has handed out and not taken back are sampled too (``heap_in_use``,
``mallinfo2``: ≈ 0.4 µs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import time

import psutil

_CHILD_REFRESH_S = 1.0


class HostProbe:
    """Counters of one process tree: this process by default, another one's (a kernel's) by ``pid``."""

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid)
        self.mem_total = psutil.virtual_memory().total
        self._children: dict[int, psutil.Process] = {}
        self._children_at = -_CHILD_REFRESH_S
        self._io_start: dict[int, tuple[int, int, int]] = {}
        self._io_last: dict[int, tuple[int, int, int]] = {}
        self.io_available = _io(self.process) is not None
        self._heap = _heap_reader() if pid is None else None  # malloc statistics exist for this process only
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
        if self._heap is not None:
            row["heap_in_use"] = self._heap()
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
        pids = _proc_descendants(self.process.pid)
        if pids is None:  # no /proc children files: the slow walk, rate-limited
            now = time.monotonic()
            if now - self._children_at < _CHILD_REFRESH_S:
                return
            self._children_at = now
            try:
                pids = [child.pid for child in self.process.children(recursive=True)]
            except psutil.Error:
                return
        for pid in pids:
            if pid not in self._children:
                try:
                    child = psutil.Process(pid)
                    child.cpu_percent()
                except psutil.Error:
                    continue
                self._children[pid] = child

    def _track_io(self, process: psutil.Process) -> None:
        counters = _io(process)
        if counters is None:
            return
        # A child first seen mid-run was started by the profiled code: all its reads count.
        self._io_start.setdefault(process.pid, (0, 0, 0))
        self._io_last[process.pid] = counters


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@functools.cache  # find_library runs ldconfig in a subprocess: once per process is enough
def _heap_reader():
    """A function returning the bytes malloc has in use (small chunks + mmapped ones), or None without glibc ≥ 2.33."""
    name = ctypes.util.find_library("c")
    try:
        mallinfo2 = ctypes.CDLL(name).mallinfo2 if name else None
    except (OSError, AttributeError):
        return None
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


def _proc_descendants(pid: int) -> list[int] | None:
    """Every descendant of ``pid`` from Linux's per-thread children lists; None where those don't exist."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            if parent == pid:
                return None
            continue  # a child that exited meanwhile
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except FileNotFoundError:
                if parent == pid and tid == tasks[0]:
                    return None  # kernel without CONFIG_PROC_CHILDREN
                continue
            except OSError:
                continue
            found += kids
            queue += kids
    return found


def _io(process: psutil.Process) -> tuple[int, int, int] | None:
    try:
        c = process.io_counters()
    except (psutil.Error, AttributeError, NotImplementedError):
        return None
    return c.read_bytes, c.write_bytes, getattr(c, "read_chars", 0)
