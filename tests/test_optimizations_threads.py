"""cpu.threads: torch's thread count to the cores available, workers counted; code and undo exact."""

import torch
from optimization_fixtures import assert_parses, notebook_fixture, release_namespaces  # noqa: F401
from torch.utils.data import DataLoader

from jupyter_perf.optimizations import get
from jupyter_perf.optimizations.dataloader import available_cpus

CELL = "import torch\nimport time\nx = torch.ones(64, 64) @ torch.ones(64, 64)\n"


def test_threads_live_code_undo(notebook):
    before = torch.get_num_threads()
    target = notebook.add("c", CELL)
    ns = {"torch": torch}
    change = get("cpu.threads").apply(ns, cell=target, threads=before + 1)
    try:
        assert torch.get_num_threads() == before + 1
        assert change.new_source == CELL.replace("import time\n", f"import time\ntorch.set_num_threads({before + 1})\n")
        assert_parses(change.new_source)
        assert notebook.cells["c"] == change.new_source
        again = get("cpu.threads").apply(ns, cell=change.new_source, threads=before + 1)
        assert again.status == "already applied"
    finally:
        change.undo()
    assert torch.get_num_threads() == before and notebook.cells["c"] == CELL


def test_default_counts_the_dataloader_workers():
    ns = {"torch": torch, "loader": DataLoader([1, 2], num_workers=1)}
    assert get("cpu.threads").preview(ns).params["threads"] == max(1, available_cpus() - 1)
    assert "positive integer" in get("cpu.threads").applicable(None, ns, threads=0)
    change = get("cpu.threads").preview({"T": torch}, threads=torch.get_num_threads() + 1)
    assert change.snippet == f"T.set_num_threads({torch.get_num_threads() + 1})"  # no cell: by hand, with the alias
