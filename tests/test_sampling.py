"""Sampling: bounded timelines, host columns, and the NVML path (with a stand-in NVML: this machine has no GPU).

The real NVML path runs in benchmarks/gpu_check.py on a lent GPU.
"""

import sys
import types
from collections import namedtuple

import pytest

import jupyter_perf
from jupyter_perf.sampling import gpu as gpu_module
from jupyter_perf.sampling.gpu import GpuProbe
from jupyter_perf.sampling.timeline import Series, Timeline


def test_timeline_stays_bounded_and_covers_the_whole_run():
    timeline = Timeline(capacity=64, tail=16)
    for i in range(10_000):
        timeline.append({"t": float(i), "rss": float(i % 100), "cpu_percent": 50.0})
    columns = timeline.columns()
    assert len(columns["t"]) <= 64
    assert columns["t"][0] < 200 and columns["t"][-1] > 9_000  # start and end both still there
    assert all(v == 50.0 for v in columns["cpu_percent"])  # averaging keeps a constant constant
    assert timeline.peaks["rss"] == 99.0 and timeline.count == 10_000  # peaks are exact, never averaged


def test_timeline_tail_streams_new_rows_only():
    timeline = Timeline(capacity=64, tail=16)
    for i in range(5):
        timeline.append({"t": float(i)})
    rows, seen = timeline.since(0)
    assert rows["t"] == [0.0, 1.0, 2.0, 3.0, 4.0] and seen == 5
    timeline.append({"t": 5.0, "gpu0_util": 80.0})
    rows, seen = timeline.since(seen)
    assert rows == {"t": [5.0], "gpu0_util": [80.0]} and seen == 6
    assert timeline.columns()["gpu0_util"] == [None] * 5 + [80.0]  # absent, not zero


def test_step_series_halves_evenly():
    series = Series(("start", "wall"), capacity=8)
    for i in range(100):
        series.append((float(i), 1.0))
    columns = series.columns()
    assert len(columns["wall"]) <= 8 and all(w == 1.0 for w in columns["wall"])
    assert series.count == 100 and series.latest()["wall"] == 1.0


def test_host_columns_are_sampled():
    report = jupyter_perf.profile("import time\ntime.sleep(0.3)", interval=0.05)
    t = report.timeline
    for column in ("t", "cpu_percent", "proc_cpu_percent", "rss", "rss_children", "rss_total", "mem_available", "cpu0"):
        assert column in t and all(v is not None for v in t[column]), column
    assert t["t"] == sorted(t["t"]) and t["t"][-1] >= 0.3
    assert report.peaks["rss_total_bytes"] >= report.peaks["rss_bytes"] > 10 * 2**20


def test_no_nvml_is_said_once_and_gpu_columns_are_absent():
    report = jupyter_perf.profile("x = 1")
    gpu_notes = [n for n in report.notes if "GPU" in n]
    if GpuProbe().available:
        pytest.skip("this machine has a GPU; the no-NVML path cannot be seen here")
    assert len(gpu_notes) == 1
    assert not [c for c in report.timeline if c.startswith("gpu")]
    assert report.environment["nvml"] is False and report.signals["gpu"] == []


@pytest.fixture(autouse=True)
def fresh_nvml():
    """Each test sees NVML initialised anew (``_nvml`` caches it for the process), and leaves no fake behind."""
    gpu_module._nvml.cache_clear()
    yield
    gpu_module._nvml.cache_clear()


def fake_nvml(util=73, used=30 * 2**30, total=80 * 2**30):
    """A stand-in pynvml with two devices, shaped like nvidia-ml-py's API."""
    Memory = namedtuple("Memory", "total used free")
    Util = namedtuple("Util", "gpu memory")
    Proc = namedtuple("Proc", "pid usedGpuMemory")
    import os

    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = type("NVMLError", (Exception,), {})
    nvml.NVML_TEMPERATURE_GPU, nvml.NVML_CLOCK_SM = 0, 1
    nvml.NVML_PCIE_UTIL_TX_BYTES, nvml.NVML_PCIE_UTIL_RX_BYTES = 0, 1
    nvml.shutdowns = nvml.inits = 0
    nvml.nvmlInit = lambda: setattr(nvml, "inits", nvml.inits + 1)
    nvml.nvmlShutdown = lambda: setattr(nvml, "shutdowns", nvml.shutdowns + 1)
    nvml.nvmlDeviceGetCount = lambda: 2
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda h: b"Fake H200"
    nvml.nvmlDeviceGetMemoryInfo = lambda h: Memory(total, used + h, total - used)
    nvml.nvmlDeviceGetUtilizationRates = lambda h: Util(util - h, 10)
    nvml.nvmlDeviceGetPowerUsage = lambda h: 250_000
    nvml.nvmlDeviceGetTemperature = lambda h, kind: 61
    nvml.nvmlDeviceGetClockInfo = lambda h, kind: 1980
    nvml.nvmlDeviceGetPcieThroughput = lambda h, kind: 1000  # KB/s

    def processes(h):
        if h == 0:
            return [Proc(os.getpid(), 2 * 2**30), Proc(999_999, 5 * 2**30)]
        return []

    nvml.nvmlDeviceGetComputeRunningProcesses = processes

    def unsupported(*args):
        raise nvml.NVMLError("Not Supported")

    return nvml, unsupported


def test_gpu_columns_with_nvml(monkeypatch):
    nvml, _ = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    report = jupyter_perf.profile("import time\ntime.sleep(0.25)", interval=0.05)
    t = report.timeline
    assert t["gpu0_util"][0] == 73 and t["gpu1_util"][0] == 72
    assert t["gpu0_mem_used"][0] == 30 * 2**30 and t["gpu0_mem_total"][0] == 80 * 2**30
    assert t["gpu0_power_w"][0] == 250 and t["gpu0_temp_c"][0] == 61 and t["gpu0_sm_clock_mhz"][0] == 1980
    assert t["gpu0_proc_mem"][0] == 2 * 2**30  # only this process tree's memory, not the other pid's
    assert t["gpu1_proc_mem"][0] == 0
    # PCIe (milliseconds per read) is never read on the cell's own thread (the first and last rows),
    # and on the sampler thread every 10th sample only
    assert t["gpu0_pcie_tx"][0] is None and t["gpu0_pcie_tx"][-1] is None
    assert t["gpu0_pcie_tx"][1] == 1000 * 1024 and t["gpu0_pcie_tx"][2] is None
    assert report.peaks["gpu0_mem_used_bytes"] == 30 * 2**30
    assert report.environment["devices"][0] == {"index": 0, "name": "Fake H200", "mem_total": 80 * 2**30}
    assert report.signals["gpu"][0]["mean_util"] == 73
    assert not [n for n in report.notes if "GPU" in n]
    # NVML is initialised once per process and kept: a second run pays no nvmlInit and no device queries
    jupyter_perf.profile("x = 1")
    assert nvml.inits == 1 and nvml.shutdowns == 0


def test_an_unsupported_nvml_counter_leaves_its_column_empty(monkeypatch):
    nvml, unsupported = fake_nvml()
    nvml.nvmlDeviceGetPowerUsage = unsupported
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    probe = GpuProbe()
    row = probe.read(set())
    assert row["gpu0_power_w"] is None and row["gpu0_util"] == 73
    probe.close()


def test_nvml_without_a_driver_says_so(monkeypatch):
    nvml, unsupported = fake_nvml()
    nvml.nvmlInit = unsupported
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    probe = GpuProbe()
    assert not probe.available and "GPU columns are absent" in probe.note
    assert probe.read(set()) == {}


def test_an_hour_of_samples_stays_within_a_few_megabytes():
    import tracemalloc

    tracemalloc.start()
    try:
        timeline = Timeline()
        columns = {f"col{i}": float(i) for i in range(40)}  # host + per-core + one GPU's columns
        for i in range(3600 * 10):  # 10 Hz for an hour
            timeline.append({**columns, "t": i / 10})
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 5 * 2**20, f"{held / 2**20:.1f} MiB"
    assert timeline.columns()["t"][-1] > 3600 - 60


def test_short_lived_worker_processes_are_counted():
    source = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'x = bytearray(200 * 2**20); import time; time.sleep(0.6)'])\n"
        "time.sleep(0.5)\n"
        "child.wait()\n"
    )
    report = jupyter_perf.profile(source, interval=0.05)
    assert report.peaks["rss_children_bytes"] > 150 * 2**20
    assert report.peaks["rss_total_bytes"] >= report.peaks["rss_bytes"] + 150 * 2**20


def test_a_cell_that_imports_torch_is_sampled_throughout():
    """The sampler reads torch's allocator while the cell may be importing torch: a half-imported torch
    (no ``torch.cuda`` yet) once stopped the sampling for the whole run, leaving two rows."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        """
        import sys, jupyter_perf
        assert "torch" not in sys.modules
        rep = jupyter_perf.profile("import time, torch\\nt0 = time.perf_counter()\\n"
                                   "while time.perf_counter() - t0 < 0.5:\\n    torch.randn(8).sum()", {})
        print(len(rep.timeline["t"]), rep.wall_time, [n for n in rep.notes if "sampling stopped" in n])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    rows, wall, stopped = out.stdout.split(" ", 2)
    assert stopped.strip() == "[]", out.stdout
    assert int(rows) >= float(wall) / 0.1 * 0.5, out.stdout  # at least half the 10 Hz rows
