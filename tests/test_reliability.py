"""The profiler leaves nothing behind, works without models or torch, and costs nothing at load."""

import gc
import itertools
import subprocess
import sys
import textwrap
import threading

import psutil
from conftest import run_setup
from timing import assert_faster

import jupyter_perf

SETUP = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import torch.nn.functional as F
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loader = DataLoader(TensorDataset(torch.randn(24, 8), torch.randint(0, 2, (24,))), batch_size=8)
"""
TRAIN = """
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""


def process_state(model):
    """Everything a run could leave behind: threads, global and module hooks, patched attributes."""
    import torch
    import torch.nn.modules.module as module_mod
    import torch.optim.optimizer as optimizer_mod
    from torch.utils.data import DataLoader
    from torch.utils.data.dataloader import _BaseDataLoaderIter

    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "global_module_hooks": {
            name: len(hooks) for name, hooks in vars(module_mod).items()
            if name.startswith("_global_") and isinstance(hooks, dict)
        },
        "optimizer_hooks": (len(optimizer_mod._global_optimizer_pre_hooks),
                            len(optimizer_mod._global_optimizer_post_hooks)),
        "model_hooks": [
            (len(m._forward_pre_hooks), len(m._forward_hooks), len(m._forward_hooks_always_called))
            for m in model.modules()
        ],
        "dataloader_iter": DataLoader.__dict__["__iter__"],
        "dataloader_next": _BaseDataLoaderIter.__dict__["__next__"],
        "autograd_backward": torch.autograd.backward,
        "zero_grad": torch.optim.Optimizer.__dict__["zero_grad"],
        "tensor_attributes": sorted(torch.Tensor.__dict__),
    }


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def test_two_hundred_runs_leave_nothing_behind():
    namespace = run_setup(SETUP)
    for _ in range(20):  # warm-up: allocator pools and lazy imports settle first
        jupyter_perf.profile(TRAIN, namespace)
    before, memory_before = process_state(namespace["model"]), rss()
    for _ in range(200):
        report = jupyter_perf.profile(TRAIN, namespace)
        assert report.steps == 3
    assert process_state(namespace["model"]) == before
    grown = rss() - memory_before
    assert grown < 5 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 200 runs"


def test_a_raising_run_also_removes_its_probes():
    namespace = run_setup(SETUP)
    before = process_state(namespace["model"])
    report = jupyter_perf.profile(TRAIN.replace("opt.step()", "opt.step(); 1 / 0"), namespace)
    assert report.error["type"] == "ZeroDivisionError" and report.steps == 1
    assert process_state(namespace["model"]) == before


def test_profiling_nested_in_a_function_with_a_model_only_it_knows():
    namespace = run_setup(SETUP)
    exec(
        textwrap.dedent("""
        def run():
            local_model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
            with torch.no_grad():
                for _ in range(10):
                    local_model(torch.randn(4, 8))
        def profile_inside():
            import jupyter_perf
            return jupyter_perf.profile("run()", {"run": run})
        """),
        namespace,
    )
    report = namespace["profile_inside"]()
    assert report.step_anchor == "forward" and report.steps == 10 and report.samples == 40
    assert report.signals["models"][0]["class"] == "Sequential"


def test_a_cell_with_no_model_still_gets_timelines_and_peaks():
    report = jupyter_perf.profile("import torch\nt = torch.randn(300, 300)\n"
                                  "for _ in range(20):\n    t = t @ t.T / 300\n")
    assert report.steps == 0 and report.bottleneck == "none"
    assert len(report.timeline["t"]) >= 2 and report.peaks["rss_bytes"] > 0
    assert any("no steps recognised" in note for note in report.notes)


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_torch_is_ever_imported_for_code_that_does_not_use_it():
    out = run_python("""
        import sys, jupyter_perf
        report = jupyter_perf.profile("total = sum(i * i for i in range(2_000_000))", interval=0.02)
        assert "torch" not in sys.modules, "profiling plain Python imported torch"
        assert len(report.timeline["t"]) >= 3 and report.peaks["rss_bytes"] > 0
        print(report.bottleneck, "|", "; ".join(report.notes))
    """)
    assert out.startswith("none |") and "torch was not imported" in out


def test_load_ext_imports_nothing_heavy():
    out = run_python("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyter_perf")
        heavy = [m for m in ("torch", "ipywidgets", "anywidget", "libcst", "pynvml", "numpy") if m in sys.modules]
        print("heavy:", heavy)
    """)
    assert out.strip() == "heavy: []"


def test_sampling_interval_is_honoured():
    """Never sampled more often than asked; a shorter interval samples more often, by more than the gaps' scatter.

    How many samples a loaded machine lets the thread take is not asserted: only what load cannot break.
    """
    gaps = {}
    for interval in (0.01, 0.05):
        t = jupyter_perf.profile("import time\ntime.sleep(0.5)", interval=interval).timeline["t"]
        assert len(t) <= 0.5 / interval + 3
        gaps[interval] = [b - a for a, b in itertools.pairwise(t[1:-1])]  # the thread's (the ends are the cell's)
        assert min(gaps[interval]) >= 0.9 * interval, gaps[interval]
    assert_faster(gaps[0.05], gaps[0.01], "sampling every 0.01 s against every 0.05 s")


def test_a_failing_diagnosis_keeps_the_measurements(monkeypatch):
    import jupyter_perf.runs as runs

    def broken(report):
        raise RuntimeError("planted rule bug")

    monkeypatch.setattr(runs, "diagnose", broken)
    namespace = run_setup(SETUP)
    report = jupyter_perf.profile(TRAIN, namespace)
    assert report.steps == 3 and report.bottleneck == "none"
    assert any("diagnosis failed (RuntimeError: planted rule bug)" in note for note in report.notes)
