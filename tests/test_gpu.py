"""The GPU paths on a real GPU (skipped cleanly without one; benchmarks/gpu_check.py prints the same as a table)."""

import sys

import pytest
from conftest import ROOT

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")]


def test_gpu_checks_pass():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    rows = gpu_check.run_checks(quick=True)
    failed = [row for row in rows if row[1] != "ok" and not row[0].startswith("overhead")]  # timings: benchmarks only
    assert not failed, failed
