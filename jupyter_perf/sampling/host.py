"""Host counters of a process tree: CPU, memory and storage I/O of the kernel and its children.

Children matter because DataLoader workers are separate processes: their RSS
and their reads are the input pipeline's cost. On Linux the child lists are
Linux's per-thread ``/proc/PID/task/TID/children``: at every sample those of the
threads seen forking (the main thread and the one that started the probe, to
begin with), so workers of a short epoch are seen, and once a second every
thread's and every descendant's. Elsewhere psutil walks every process (≈ 2 ms),
at most once a second. I/O is accumulated per pid so workers that exit mid-run
still count. The counters themselves come from ``procfs`` (cheap, Linux) or psutil.

RSS alone hides a leak that refills memory freed earlier (the allocator reuses
it without the process growing), so where glibc is the allocator the bytes
malloc has handed out and not taken back are sampled too (``heap_in_use``,
``mallinfo2``). glibc counts them by walking every free block of every arena
under that arena's lock: ≈ 1 µs on a fresh heap, ≈ 0.3 ms cache-cold in a
kernel, 28 ms with 100 000 free blocks (a fragmented heap), while the profiled
code's own allocations wait on the lock. So it is read at every sample only
while it is cheap, and every Nth when not (``_HeapSampler``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import os
import threading
import time

import psutil

from .procfs import ProcfsReader, PsutilReader

_CHILD_REFRESH_S = 1.0
#: What reading malloc's statistics may cost per sample, on average (module docstring).
_HEAP_BUDGET_S = 0.0005
#: Said in the report once the heap was read this rarely: its series is then thin.
_HEAP_NOTE_EVERY = 3


class HostProbe:
    """Counters of one process tree: this process by default, another one's (a kernel's) by ``pid``.

    Raises ``psutil.NoSuchProcess`` when that process is gone."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self._reader: ProcfsReader | PsutilReader = ProcfsReader() if ProcfsReader.available() else PsutilReader()
        self._procfs = isinstance(self._reader, ProcfsReader)
        self.mem_total = self._reader.memory()[1]
        # Threads whose child list is read at every sample; a full scan adds any other thread seen forking.
        self._forkers = {self.pid} if pid is not None else {self.pid, threading.get_native_id()}
        self._children: set[int] = set()
        self._scanned_at = float("-inf")
        self._cpu_seconds: dict[int, float] = {}
        self._io_start: dict[int, tuple[int, int, int]] = {}
        self._io_last: dict[int, tuple[int, int, int]] = {}
        in_use = _heap_reader() if pid is None else None  # malloc statistics exist for this process only
        self._heap = _HeapSampler(in_use) if in_use is not None else None
        self._cores = self._reader.core_times()
        self._read_at = time.monotonic()
        self._refresh_children(self._read_at)
        root_io = None
        for member in [self.pid, *self._children]:
            try:
                self._cpu_seconds[member], _, io = self._reader.process(member)
            except ProcessLookupError:
                if member == self.pid:
                    raise psutil.NoSuchProcess(member) from None
                continue
            if io is not None:  # what ran before the profiled code is not its cost
                self._io_start[member] = self._io_last[member] = io
            root_io = io if member == self.pid else root_io
        self.io_available = root_io is not None

    def read(self) -> dict[str, float | None]:
        now = time.monotonic()
        elapsed, self._read_at = now - self._read_at, now
        self._refresh_children(now)
        cores = self._reader.core_times()
        per_core = [_busy_percent(busy - busy0, idle - idle0)
                    for (busy, idle), (busy0, idle0) in zip(cores, self._cores)]
        self._cores = cores
        available, total = self._reader.memory()
        try:
            cpu, rss = self._process(self.pid, elapsed)
        except ProcessLookupError:
            raise psutil.NoSuchProcess(self.pid) from None
        rss_children = 0
        for child in list(self._children):
            try:
                child_cpu, child_rss = self._process(child, elapsed)
            except ProcessLookupError:
                self._children.discard(child)
                self._cpu_seconds.pop(child, None)
                continue
            cpu += child_cpu
            rss_children += child_rss
        row: dict[str, float | None] = {
            "cpu_percent": sum(per_core) / len(per_core),
            "proc_cpu_percent": cpu,
            "rss": rss,
            "rss_children": rss_children,
            "rss_total": rss + rss_children,
            "mem_available": available,
            "mem_total": total,
        }
        row.update({f"cpu{i}": pct for i, pct in enumerate(per_core)})
        if self._heap is not None:
            row["heap_in_use"] = self._heap.read()
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

    def own_read_bytes(self) -> int | None:
        """Storage bytes this process (not its children) read since the probe started; None where unreadable.

        Stateless (one read of this process's counters), so any thread may call it while the sampler runs."""
        io = self._reader.process(self.pid)[2]
        start = self._io_start.get(self.pid)
        return io[0] - start[0] if io is not None and start is not None else None

    def children_pids(self) -> list[int]:
        return list(self._children)

    @property
    def heap_note(self) -> str | None:
        return self._heap.note if self._heap is not None else None

    def _process(self, pid: int, elapsed: float) -> tuple[float, int]:
        """CPU % (100 = one core) since the last read and RSS of one process; its I/O is accumulated.

        A process seen for the first time counts no CPU yet, like psutil's first ``cpu_percent()``."""
        cpu_seconds, rss, io = self._reader.process(pid)
        before = self._cpu_seconds.get(pid, cpu_seconds)
        self._cpu_seconds[pid] = cpu_seconds
        if io is not None:
            # A child first seen mid-run was started by the profiled code: all its reads count.
            self._io_start.setdefault(pid, (0, 0, 0))
            self._io_last[pid] = io
        return _percent(max(cpu_seconds - before, 0.0), elapsed), rss  # < 0 only for a pid reused meanwhile

    def _refresh_children(self, now: float) -> None:
        full = now - self._scanned_at >= _CHILD_REFRESH_S
        if not self._procfs:
            if full:
                self._scanned_at = now
                with contextlib.suppress(psutil.Error):
                    self._children.update(c.pid for c in psutil.Process(self.pid).children(recursive=True))
            return
        if full:
            self._scanned_at = now
            self._children.update(self._scan_tree())
        else:
            for tid in self._forkers:
                self._children.update(ProcfsReader.thread_children(self.pid, tid))

    def _scan_tree(self) -> list[int]:
        """Every descendant, from every thread's child list; threads of ours found forking are watched from now."""
        found, queue = [], [self.pid]
        while queue:
            parent = queue.pop()
            try:
                tasks = os.listdir(f"/proc/{parent}/task")
            except OSError:
                continue  # a child that exited meanwhile
            for tid in tasks:
                kids = ProcfsReader.thread_children(parent, int(tid))
                if kids and parent == self.pid:
                    self._forkers.add(int(tid))
                found += kids
                queue += kids
        return found


class FirstStepReads:
    """Storage bytes this process read from the run's start to the end of its first step, and when.

    Bytes read then are mostly not the data: a fresh process faults in the pages
    of shared libraries and reads the modules it imports on first use (measured
    here: a sleep-bound dataset's first run in a test process read 40 MB, 2 MB
    per step, and was named disk_io). ``tick()`` is called when steps are
    accounted, on the profiled thread; only its first call reads a counter.
    """

    def __init__(self, host: HostProbe):
        self._host = host
        self._t0 = time.perf_counter()
        self.read_bytes: int | None = None
        self.seconds: float | None = None

    def tick(self) -> None:
        if self.seconds is None:
            self.seconds = time.perf_counter() - self._t0
            self.read_bytes = self._host.own_read_bytes()


class RunDelay:
    """Share of the time the profiled thread was runnable that it spent waiting for a CPU.

    On a machine whose cores other processes also want, the thread's wall-clock
    timings stretch by the time it waited in the run queue (measured here: a
    batch-1 BERT forward took 3.5 ms with the CPU to itself, and its main thread
    waited 58% of its runnable time with the load average at 4-7 on two cores).
    Linux's ``/proc/.../schedstat`` counts both, per thread, at the cost of one
    read at the start and one at the end; elsewhere the share is None.
    """

    def __init__(self) -> None:
        self._path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self._start = self._read()

    def share(self) -> float | None:
        end = self._read()
        if self._start is None or end is None:
            return None
        on_cpu, waited = end[0] - self._start[0], end[1] - self._start[1]
        return waited / (on_cpu + waited) if on_cpu + waited > 0 else None

    def _read(self) -> tuple[int, int] | None:
        try:
            with open(self._path, "rb") as f:
                on_cpu, waited, _ = f.read().split()
        except (OSError, ValueError):
            return None
        return int(on_cpu), int(waited)


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def _busy_percent(busy: float, idle: float) -> float:
    """A core's busy share; Linux's per-core iowait can step backwards, so a negative delta counts as none."""
    busy, idle = max(busy, 0.0), max(idle, 0.0)
    return _percent(busy, busy + idle)


class _HeapSampler:
    """``heap_in_use`` at every sample while reading it is cheap; every Nth, N = its last cost over the budget,
    when it is not (None in between, which the leak fit skips)."""

    def __init__(self, in_use):
        self._in_use = in_use
        self._due = 0
        self.rarest = 1
        self.slowest_s = 0.0

    def read(self) -> int | None:
        self._due -= 1
        if self._due > 0:
            return None
        start = time.perf_counter()
        value = self._in_use()
        cost = time.perf_counter() - start
        self._due = max(1, math.ceil(cost / _HEAP_BUDGET_S))
        self.rarest = max(self.rarest, self._due)
        self.slowest_s = max(self.slowest_s, cost)
        return value

    @property
    def note(self) -> str | None:
        if self.rarest < _HEAP_NOTE_EVERY:
            return None
        return (f"malloc's statistics took up to {self.slowest_s * 1e3:.1f} ms to read (glibc walks every free "
                f"block of a fragmented heap): heap_in_use was read at one sample in {self.rarest} at the rarest")


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
