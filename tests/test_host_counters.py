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

BUSY_CHILD = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
SLEEPING_CHILD = "import time; time.sleep(30)"


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
    probe = probe_factory()
    child = spawn(BUSY_CHILD)
    watched = psutil.Process(child.pid)
    deadline = time.monotonic() + 3  # psutil's walk runs once a second
    while child.pid not in probe.children_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
        probe.read()  # the child's first sighting counts no CPU, as psutil's first cpu_percent()
    watched.cpu_percent()
    own_before = time.process_time()
    time.sleep(0.8)
    row = probe.read()
    child_percent = watched.cpu_percent()
    own_percent = (time.process_time() - own_before) / 0.8 * 100
    assert child.pid in probe.children_pids()
    assert child_percent > 20, "the machine gave the child too little CPU to tell anything"
    # The tree's CPU is this process's plus the child's, read at slightly different moments.
    assert abs(row["proc_cpu_percent"] - (child_percent + own_percent)) < 25
    assert row["rss_children"] > 5 * 2**20 and row["rss_total"] == row["rss"] + row["rss_children"]
    assert all(0 <= row[f"cpu{i}"] <= 100 for i in range(psutil.cpu_count()))


def test_a_child_of_the_starting_thread_is_seen_at_the_next_sample(spawn):
    """DataLoader workers of a short epoch live for less than the once-a-second full scan."""
    probe = HostProbe()
    probe.read()
    child = spawn(SLEEPING_CHILD)
    probe.read()
    assert child.pid in probe.children_pids()
    child.kill()
    child.wait()
    probe.read()
    assert child.pid not in probe.children_pids()


def test_a_child_started_by_another_thread_is_found_within_a_second(probe_factory, spawn):
    probe = probe_factory()
    started: list[subprocess.Popen] = []
    thread = threading.Thread(target=lambda: started.append(spawn(SLEEPING_CHILD)))
    thread.start()
    thread.join()
    grandchild_parent = spawn(f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {SLEEPING_CHILD!r}])\n"
                              "time.sleep(30)")
    deadline = time.monotonic() + 3
    grandchildren: list[int] = []
    try:
        while time.monotonic() < deadline:
            probe.read()
            grandchildren = [c.pid for c in psutil.Process(grandchild_parent.pid).children()]
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
    reader = spawn(f"data = open({str(data)!r}, 'rb').read()\nimport time; time.sleep(30)")
    deadline = time.monotonic() + 5
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
