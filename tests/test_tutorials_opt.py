"""The optimization tutorials run top to bottom in a real kernel and show what they promise.

No timing is asserted here (the acceptance figures are in test_optimizations_e2e.py):
each notebook must run without error, apply its fix, and print the measured gain.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, tmp_path: Path) -> str:
    """Run the notebook in a python3 kernel; all its text outputs, joined."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.timeout(300)
def test_input_pipeline_tutorial(tmp_path):
    text = execute("02_input_pipeline.ipynb", tmp_path)
    assert "bottleneck: input_pipeline" in text and "top fix: dataloader.workers" in text
    assert "dataloader.workers [preview]" in text and "+loader = DataLoader(SlowDataset(), batch_size=16" in text
    assert "dataloader.workers [applied]" in text and "measured ×" in text
    assert "[undone]" in text and "-> num_workers 0" in text
    assert "dataloader.batch_size [applied]" in text


@pytest.mark.timeout(300)
def test_memory_tutorial(tmp_path):
    text = execute("03_memory.ipynb", tmp_path)
    assert "bottleneck: memory_leak" in text and "top fix: memory.release_graph" in text
    assert "memory.release_graph [applied]" in text
    assert "val_losses.append(F.cross_entropy(model(x), y).item())" in text  # the new code, shown to copy
    assert "float values in val_losses: 60" in text
