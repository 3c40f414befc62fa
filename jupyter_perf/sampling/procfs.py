"""Raw host counters from Linux's /proc, for the sampler's hot path; psutil where /proc is not there.

A sample is taken every 100 ms by a thread that sleeps in between, so its code
runs cache-cold, and what it costs is roughly how much code it runs. psutil
builds a named tuple for every field of every core, parses all of
``/proc/meminfo`` and opens each file through Python's buffered I/O: ≈ 0.7 ms of
CPU, and of the GIL the profiled loop needs, per sample. Reading the few fields
the sampler uses straight from the files' bytes takes about a quarter of that.

Both readers return raw counters (cumulative CPU seconds, bytes); the deltas
and percentages are computed once, by HostProbe. A counter a process does not
let us read (another user's ``/proc/PID/io``) is None; a process that is gone
raises ``ProcessLookupError``.
"""

from __future__ import annotations

import os

import psutil

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcfsReader:
    """Counters parsed from /proc files opened and read with one system call each."""

    @staticmethod
    def available() -> bool:
        """/proc with the per-thread child lists (CONFIG_PROC_CHILDREN, in every distribution's kernel)."""
        pid = os.getpid()
        return _read("/proc/stat") is not None and _read(f"/proc/{pid}/task/{pid}/children") is not None

    @staticmethod
    def thread_children(pid: int, tid: int) -> list[int]:
        """Processes that thread ``tid`` of ``pid`` started and that still run; [] once the thread is gone."""
        kids = _read(f"/proc/{pid}/task/{tid}/children")
        return [int(k) for k in kids.split()] if kids else []

    @staticmethod
    def core_times() -> list[tuple[float, float]]:
        """(busy, idle) jiffies of each core: idle is idle + iowait, busy the rest but guest time (already in user)."""
        cores: list[tuple[float, float]] = []
        for line in _read_system("/proc/stat").split(b"\n")[1:]:
            if not line.startswith(b"cpu"):
                break
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
            cores.append((user + nice + system + irq + softirq + steal, idle + iowait))
        return cores

    @staticmethod
    def memory() -> tuple[int, int]:
        """(available, total) bytes; psutil's estimate on kernels older than 3.14, which lack MemAvailable."""
        fields = {}
        for line in _read_system("/proc/meminfo").split(b"\n", 3)[:3]:  # MemTotal, MemFree, MemAvailable lead the file
            name, value = line.split(b":")
            fields[name] = int(value.split()[0]) * 1024
        if b"MemAvailable" not in fields:
            vm = psutil.virtual_memory()
            return vm.available, vm.total
        return fields[b"MemAvailable"], fields[b"MemTotal"]

    @staticmethod
    def process(pid: int) -> tuple[float, int, tuple[int, int, int] | None]:
        """(CPU seconds, RSS bytes, (read bytes, written bytes, read chars) or None) of one process."""
        stat, statm = _read(f"/proc/{pid}/stat"), _read(f"/proc/{pid}/statm")
        if stat is None or statm is None:
            raise ProcessLookupError(pid)
        fields = stat[stat.rindex(b")") + 2:].split()  # the command name may hold spaces and parentheses
        cpu_seconds = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        rss = int(statm.split()[1]) * _PAGE
        io = None
        counters = _read(f"/proc/{pid}/io")
        if counters is not None:
            values = {name: int(value) for name, value in (line.split(b": ") for line in counters.splitlines())}
            io = values[b"read_bytes"], values[b"write_bytes"], values[b"rchar"]
        return cpu_seconds, rss, io


class PsutilReader:
    """The same counters through psutil, for systems without Linux's /proc."""

    def __init__(self) -> None:
        self._processes: dict[int, psutil.Process] = {}

    @staticmethod
    def core_times() -> list[tuple[float, float]]:
        cores = []
        for times in psutil.cpu_times(percpu=True):
            idle = times.idle + getattr(times, "iowait", 0)
            guest = getattr(times, "guest", 0) + getattr(times, "guest_nice", 0)
            cores.append((sum(times) - idle - guest, idle))
        return cores

    @staticmethod
    def memory() -> tuple[int, int]:
        vm = psutil.virtual_memory()
        return vm.available, vm.total

    def process(self, pid: int) -> tuple[float, int, tuple[int, int, int] | None]:
        try:
            process = self._processes.get(pid)
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
            with process.oneshot():
                times, rss = process.cpu_times(), process.memory_info().rss
                try:
                    c = process.io_counters()
                    io = c.read_bytes, c.write_bytes, getattr(c, "read_chars", 0)
                except (psutil.AccessDenied, AttributeError, NotImplementedError):
                    io = None
        except psutil.Error as exc:
            self._processes.pop(pid, None)
            raise ProcessLookupError(pid) from exc
        return times.user + times.system, rss, io


def _read_system(path: str) -> bytes:
    """A system-wide file, readable wherever ProcfsReader.available()."""
    data = _read(path)
    if data is None:
        raise OSError(f"cannot read {path}")
    return data


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16)
    except OSError:  # the process exited between open and read, or the file is not ours to read
        return None
    finally:
        os.close(fd)
