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


@pytest.mark.timeout(300)
def test_llm_finetune_tutorial(tmp_path):
    text = execute("04_llm_finetune.ipynb", tmp_path)
    assert "- padding_waste: " in text and "- attention_eager: " in text
    assert "recommended: data.length_grouping, attention.sdpa" in text
    assert "FLOPs per step" in text and "(formula: " in text and "MFU" in text
    assert "optimizer_state" in text and "activations" in text and "peak" in text
    assert "data.length_grouping [applied]" in text and "real tokens/s measured ×" in text
    assert "attention.sdpa numerics: outputs differed by" in text and "attention now: sdpa" in text
    assert "precision.amp [applied]" in text and "allowed for amp_bf16" in text


@pytest.mark.timeout(300)
def test_inference_tutorial(tmp_path):
    text = execute("05_inference.ipynb", tmp_path)
    assert "- launch_overhead: " in text and "- inference_with_grad: " in text
    assert "fix: dataloader.batch_size {'batch_size': 256}" in text and "fix: inference.inference_mode" in text
    assert "batch size 256; measured ×" in text and "same predictions: True" in text
    assert "- generation_no_cache: " in text and "top fix: generation.kv_cache" in text
    assert "generation.kv_cache [applied]" in text and "use_cache=True" in text
    assert "per token: without cache" in text and "eight prompts" in text
    assert "compression.quantize_dynamic [applied]" in text and "allowed for quantize" in text
