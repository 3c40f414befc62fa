"""Host counters: the /proc reader agrees with psutil, children are found wherever they are started,
and a process that is gone says so. Both readers run here: psutil's is what macOS and Windows get."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from jupyter_perf.sampling import host as host_module
from jupyter_perf.sampling.host import HostProbe
from jupyter_perf.sampling.procfs import ProcfsReader, PsutilReader

pytestmark = pytest.mark.skipif(not ProcfsReader.available(), reason="needs Linux's /proc to compare against")

BUSY_CHILD = "import time\nend = time.time() + 90\nwhile time.time() < end: pass"
SLEEPING_CHILD = "import time; time.sleep(30)"
#: CPU seconds the busy child must have used before its count is compared.
CHILD_CPU_S = 0.4


@pytest.fixture(params=["procfs", "psutil"])
def probe_factory(request, monkeypatch):
    if request.param == "psutil":
        monkeypatch.setattr(host_module.ProcfsReader, "available", staticmethod(lambda: False))
    return HostProbe


@pytest.fixture
def spawn():
    started: list[subprocess.Popen] = []

    def start(code: str) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", code])
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        child.wait()


def test_procfs_reads_what_psutil_reads():
    procfs, ps = ProcfsReader(), PsutilReader()
    assert len(procfs.core_times()) == len(ps.core_times()) == psutil.cpu_count()
    for (busy, idle), (busy_ps, idle_ps) in zip(procfs.core_times(), ps.core_times()):
        tick = 1 / os.sysconf("SC_CLK_TCK")
        assert abs(busy * tick - busy_ps) < 1.0 and abs(idle * tick - idle_ps) < 1.0  # jiffies vs seconds
    (available, total), (available_ps, total_ps) = procfs.memory(), ps.memory()
    assert total == total_ps and abs(available - available_ps) < 64 * 2**20
    cpu, rss, io = procfs.process(os.getpid())
    cpu_ps, rss_ps, io_ps = ps.process(os.getpid())
    assert abs(cpu - cpu_ps) < 0.1 and abs(rss - rss_ps) < 16 * 2**20
    assert io is not None and io_ps is not None and io[0] <= io_ps[0] and io[2] <= io_ps[2]


def test_a_busy_child_counts_as_about_one_core(probe_factory, spawn):
    """The tree's CPU is this process's plus the child's, as psutil counts them, however little CPU the machine gives.

    Compared in CPU seconds over a window that lasts until the child has used ``CHILD_CPU_S``, so a loaded
    machine lengthens the window rather than shrinking what is compared.
    """
    probe = probe_factory()
    child = spawn(BUSY_CHILD)
    watched = psutil.Process(child.pid)
    deadline = time.monotonic() + 3  # psutil's walk runs once a second
    while child.pid not in probe.children_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
        probe.read()  # the child's first sighting counts no CPU, as psutil's first cpu_percent()
    assert child.pid in probe.children_pids()
    probe.read()
    start, own_start, child_start = time.monotonic(), time.process_time(), cpu_seconds(watched)
    while cpu_seconds(watched) - child_start < CHILD_CPU_S and time.monotonic() - start < 60:
        time.sleep(0.1)
    row = probe.read()
    window = time.monotonic() - start
    child_s, own_s = cpu_seconds(watched) - child_start, time.process_time() - own_start
    assert child_s >= CHILD_CPU_S, f"the child got {child_s:.2f} s of CPU in a minute"
    tree_s = row["proc_cpu_percent"] / 100 * window
    # The probe's reads and psutil's are a few milliseconds apart, against a quarter of the child's CPU.
    assert abs(tree_s - (child_s + own_s)) < 0.25 * child_s, (tree_s, child_s, own_s, window)
    assert row["rss_children"] > 5 * 2**20 and row["rss_total"] == row["rss"] + row["rss_children"]
    assert all(0 <= row[f"cpu{i}"] <= 100 for i in range(psutil.cpu_count()))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_a_child_started_by_another_thread_is_found_within_a_second(probe_factory, spawn):
    probe = probe_factory()
    started: list[subprocess.Popen] = []
    thread = threading.Thread(target=lambda: started.append(spawn(SLEEPING_CHILD)))
    thread.start()
    thread.join()
    grandchild_parent = spawn("import subprocess, sys, time\n"
                              f"subprocess.Popen([sys.executable, '-c', {SLEEPING_CHILD!r}])\ntime.sleep(30)")
    grandchildren: list[int] = []
    try:
        # The clock starts once the grandchild exists: a loaded machine may take seconds to start a Python.
        deadline = time.monotonic() + 60
        while not grandchildren and time.monotonic() < deadline:
            time.sleep(0.05)
            grandchildren = [c.pid for c in psutil.Process(grandchild_parent.pid).children()]
        deadline = time.monotonic() + 3 * host_module._CHILD_REFRESH_S
        while time.monotonic() < deadline:
            probe.read()
            if started[0].pid in probe.children_pids() and grandchildren and grandchildren[0] in probe.children_pids():
                break
            time.sleep(0.1)
        assert started[0].pid in probe.children_pids()
        assert grandchildren and grandchildren[0] in probe.children_pids()
    finally:
        for pid in grandchildren:
            psutil.Process(pid).kill()


def test_a_process_that_is_gone_says_so(probe_factory):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    probe = probe_factory(child.pid)
    child.wait()
    with pytest.raises(psutil.NoSuchProcess):
        probe.read()
    with pytest.raises(psutil.NoSuchProcess):
        probe_factory(child.pid)


def test_reads_of_a_child_count_from_its_start(probe_factory, spawn, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(32 * 2**20))  # more than a Python start-up reads
    probe = probe_factory()
    reader = spawn(f"data = open({str(data)!r}, 'rb').read()\nimport time; time.sleep(90)")
    deadline = time.monotonic() + 60  # the reader's own start and read, however loaded the machine
    while time.monotonic() < deadline and psutil.Process(reader.pid).io_counters().read_chars < 32 * 2**20:
        time.sleep(0.05)
    deadline = time.monotonic() + 3 * host_module._CHILD_REFRESH_S
    while time.monotonic() < deadline and probe.io_totals()[2] < 32 * 2**20:
        probe.read()
        time.sleep(0.1)
    assert reader.pid in probe.children_pids()
    assert probe.io_totals()[2] >= 32 * 2**20  # read characters: the page cache may serve the bytes


def test_a_fragmented_heap_is_read_less_often_and_the_report_says_so():
    """glibc's mallinfo2 walks every free block: with tens of thousands of them one read takes milliseconds,
    holding the arena lock the profiled code allocates under."""
    import random

    import jupyter_perf
    from jupyter_perf.sampling.host import _heap_reader

    if _heap_reader() is None:
        pytest.skip("malloc statistics need glibc ≥ 2.33")
    rng = random.Random(0)
    blocks = [bytearray(rng.randint(1100, 4000)) for _ in range(60_000)]
    del blocks[::2]  # 30 000 free blocks between live ones: nothing coalesces
    try:
        probe = HostProbe()
        heap = [probe.read()["heap_in_use"] for _ in range(40)]
        assert heap[0] is not None and 1 <= sum(h is not None for h in heap) < 20
        assert "malloc" in (probe.heap_note or "")
        report = jupyter_perf.profile("import time\ntime.sleep(0.5)", interval=0.02)
        assert any("heap_in_use was read at one sample in" in note for note in report.notes), report.notes
        column = report.timeline["heap_in_use"]
        assert any(v is None for v in column) and any(v is not None for v in column)
    finally:
        del blocks


def test_a_fresh_heap_is_read_at_every_sample():
    """In a new process (this one's heap is whatever the tests before left)."""
    code = ("from jupyter_perf.sampling.host import HostProbe\n"
            "probe = HostProbe()\n"
            "heap = [probe.read().get('heap_in_use') for _ in range(20)]\n"
            "print(sum(h is not None for h in heap), probe.heap_note)")
    read, note = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split(maxsplit=1)
    if read == "0":
        pytest.skip("malloc statistics need glibc ≥ 2.33")
    assert int(read) >= 18 and note.strip() == "None"
