"""Planted problems with a known best fix, for fix_efficacy.py and the optimization tests.

Each scenario is a notebook in miniature: ``setup`` (a cell that builds data
and model, warming both up so the first measured step is not a cold start),
``cell`` (the profiled code), the optimization expected to fix it, and the
fix written by hand (``hand_setup``/``hand_cell``). Sizes keep each run to a
second or two on two cores while the planted effect stays large.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMON = """
import time, torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
torch.manual_seed(0)
"""


@dataclass(frozen=True)
class FixScenario:
    name: str
    setup: str
    cell: str
    optimization: str
    hand_setup: str
    hand_cell: str
    #: What the fix improves: ``throughput`` (samples/s) or ``memory_growth`` (RSS bytes per step).
    metric: str


_SLOW_DATASET = """
class SlowDataset(Dataset):
    '''Each sample waits 2 ms, like a read from network storage: workers overlap the waits.'''
    def __len__(self): return 480
    def __getitem__(self, i):
        time.sleep(0.002)
        return torch.randn(64), i % 10
# About 12 ms of math per step, against 32 ms of loading per batch: loading dominates, and with
# workers it overlaps the math, as it does in real training.
model = nn.Sequential(nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
F.cross_entropy(model(torch.randn(16, 64)), torch.zeros(16, dtype=torch.long)).backward()  # warm-up
"""
_TRAIN = """
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""

INPUT_PIPELINE = FixScenario(
    "input_pipeline",
    COMMON + _SLOW_DATASET + "loader = DataLoader(SlowDataset(), batch_size=16)\n",
    _TRAIN,
    "dataloader.workers",
    # By hand: four workers, the PyTorch tutorials' usual number, past the core count because the loading waits.
    COMMON + _SLOW_DATASET
    + "loader = DataLoader(SlowDataset(), batch_size=16, num_workers=4, persistent_workers=True)\n",
    _TRAIN,
    "throughput",
)

_LEAK_SETUP = COMMON + """
model = nn.Sequential(nn.Linear(256, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
data = TensorDataset(torch.randn(256 * 30, 256), torch.randint(0, 10, (256 * 30,)))
loader = DataLoader(data, batch_size=256)
val_losses = []
F.cross_entropy(model(data[:256][0]), data[:256][1])  # warm-up
"""

LOSS_LIST_LEAK = FixScenario(
    "loss_list_leak",
    _LEAK_SETUP,
    """
for x, y in loader:
    val_losses.append(F.cross_entropy(model(x), y))   # each loss keeps its graph and activations alive
""",
    "memory.release_graph",
    _LEAK_SETUP,
    """
for x, y in loader:
    val_losses.append(F.cross_entropy(model(x), y).item())
""",
    "memory_growth",
)

_TINY_MODEL = COMMON + """
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
data = TensorDataset(torch.randn(8000, 16))
model(data[:1][0])  # warm-up
"""

BATCH_SIZE_ONE = FixScenario(
    "batch_size_one_inference",
    _TINY_MODEL + "loader = DataLoader(data, batch_size=1)\n",
    """
with torch.no_grad():
    preds = [model(x) for (x,) in loader]
""",
    "dataloader.batch_size",
    # By hand: one batch of 256 amortises the per-call cost; beyond, the math dominates.
    _TINY_MODEL + "loader = DataLoader(data, batch_size=256)\n",
    """
with torch.inference_mode():
    preds = [model(x) for (x,) in loader]
""",
    "throughput",
)

_LARGE_LINEAR = COMMON + """
model = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10)).eval()
data = TensorDataset(torch.randn(64 * 8, 2048))
loader = DataLoader(data, batch_size=64)
"""
_WARM_UP = """
with torch.inference_mode():
    model(data[:64][0])  # warm-up
"""

LARGE_LINEAR_INFERENCE = FixScenario(
    "large_linear_inference",
    _LARGE_LINEAR + _WARM_UP,
    """
with torch.inference_mode():
    preds = [model(x).argmax(1) for (x,) in loader]
""",
    "compression.quantize_dynamic",
    # By hand: the quantize_dynamic call of PyTorch's dynamic quantization tutorial.
    _LARGE_LINEAR + "model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)\n"
    + _WARM_UP,
    """
with torch.inference_mode():
    preds = [model(x).argmax(1) for (x,) in loader]
""",
    "throughput",
)

ALL = (INPUT_PIPELINE, LOSS_LIST_LEAK, BATCH_SIZE_ONE, LARGE_LINEAR_INFERENCE)
