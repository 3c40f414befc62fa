"""Diagnosis on loops in the shape of real code: no false alarms, no misses.

Each loop is written the way public code writes it (pytorch/examples'
word_language_model, a Hugging Face hand-written loop, an evaluation without
``no_grad``, batch-size-1 BERT inference), with tiny configs and random
weights, and profiled through ``jupyter_perf.profile``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, run_setup, settled_heap

import jupyter_perf

# ------------------------------------------------------------------ disk_io
FRESH_PROCESS = textwrap.dedent('''
    import json, os, sys, tempfile
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    import torch.nn.functional as F
    import jupyter_perf

    # Two modules that read a 24 MiB table when imported (a vocabulary, a lookup table), dropped from the page
    # cache so that importing them reads storage, as a fresh process's first imports do.
    lib = tempfile.mkdtemp(prefix="jp-lazy-imports-")
    for name in ("table_a", "table_b"):
        with open(os.path.join(lib, name + ".bin"), "wb") as f:
            f.write(os.urandom(24 << 20))
        with open(os.path.join(lib, name + ".py"), "w") as f:
            f.write("import os\\nwith open(os.path.join(os.path.dirname(__file__), %r), 'rb') as f:\\n"
                    "    TABLE = f.read()\\n" % (name + ".bin"))
    os.sync()
    for entry in os.listdir(lib):
        fd = os.open(os.path.join(lib, entry), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    sys.path.insert(0, lib)

    class SlowDataset(Dataset):
        """3 ms of "decoding" per sample; imports what it needs on first use, and once more mid-run."""
        def __len__(self): return 160
        def __getitem__(self, i):
            if i == 0:
                import table_a
            if i == 88:
                import table_b
            import time; time.sleep(0.003)
            return torch.randn(64), i % 10

    loader = DataLoader(SlowDataset(), batch_size=8)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    report = jupyter_perf.profile("""
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    """, globals())
    print(json.dumps({"bottleneck": report.bottleneck, "findings": [f.id for f in report.findings],
                      "io": report.signals["io"], "steps": report.steps}))
''')


def test_modules_imported_during_a_fresh_run_are_not_disk_io():
    """A sleep-bound dataset whose imports read 48 MiB from storage, one at its first sample, one mid-run."""
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["io"]["read_bytes"] > 40 * 2**20, result  # the imports really read storage during the run
    assert result["bottleneck"] == "input_pipeline", result
    assert "disk_io" not in result["findings"]
