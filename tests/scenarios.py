"""Planted performance problems on the CPU, as cell sources, shared by the profile(), magic and notebook tests.

Each scenario is split like a notebook: ``setup`` builds the data and the model
(a cell of its own), ``cell`` is the profiled code. Sizes are chosen so each
runs in a second or two on two cores while the planted effect stays large.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMON = """
import time, os, torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
import torch.nn.functional as F
torch.manual_seed(0)
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: str
    cell: str
    bottleneck: str


INPUT_PIPELINE = Scenario(
    "input_pipeline",
    COMMON
    + """
class SlowDataset(Dataset):
    '''Each sample costs 3 ms of "decoding".'''
    def __len__(self): return 160
    def __getitem__(self, i):
        time.sleep(0.003)
        return torch.randn(64), i % 10
loader = DataLoader(SlowDataset(), batch_size=8)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
""",
    """
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
""",
    "input_pipeline",
)

MEMORY_LEAK = Scenario(
    "memory_leak",
    COMMON
    + """
model = nn.Sequential(nn.Linear(256, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
# 60 steps of ≈ 17 ms: ≈ 10 samples past the warm-up at 10 Hz (30 steps left exactly the rule's minimum of 5,
# and one late sample then hid the leak)
data = TensorDataset(torch.randn(256 * 60, 256), torch.randint(0, 10, (256 * 60,)))
loader = DataLoader(data, batch_size=256)
val_losses = []
""",
    """
for x, y in loader:
    val_losses.append(F.cross_entropy(model(x), y))   # each loss keeps its graph and activations alive
""",
    "memory_leak",
)

LAUNCH_OVERHEAD = Scenario(
    "launch_overhead",
    COMMON
    + """
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
loader = DataLoader(TensorDataset(torch.randn(3000, 16)), batch_size=1)
""",
    """
with torch.no_grad():
    preds = [model(x) for (x,) in loader]
""",
    "launch_overhead",
)

COMPUTE = Scenario(
    "compute",
    COMMON
    + """
model = nn.Sequential(nn.Linear(1024, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 1024))
opt = torch.optim.SGD(model.parameters(), lr=0.001)
loader = DataLoader(TensorDataset(torch.randn(256 * 16, 1024), torch.randn(256 * 16, 1024)), batch_size=256)
""",
    # Three epochs (48 steps): in 16, host RSS swings ±20 MB with the big activations and a fresh
    # model's first allocations, and once (a long-lived CI process) ten samples of that lined up into a
    # 43 MB "leak" with R² ≥ 0.8; over 48 steps it is the plateau it is.
    """
for epoch in range(3):
    for x, y in loader:
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
""",
    "compute",
)

INFERENCE_WITH_GRAD = Scenario(
    "inference_with_grad",
    COMMON
    + """
model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
model.eval()
batches = [torch.randn(128, 512) for _ in range(30)]
""",
    """
correct = 0
for x in batches:
    out = model(x)           # evaluation, but autograd still records a graph
    correct += int((out.argmax(1) == 0).sum())
""",
    "compute",
)

TWO_STEPS = Scenario(
    "two_steps",
    INPUT_PIPELINE.setup,
    """
for i, (x, y) in enumerate(loader):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    if i == 1:
        break
""",
    "none",
)

DISK_IO = Scenario(
    "disk_io",
    COMMON
    + """
import tempfile
import numpy as np
shard_dir = tempfile.mkdtemp(prefix="jp-shards-")
for i in range(48):
    np.save(os.path.join(shard_dir, f"{i}.npy"), np.random.rand(512 * 512).astype(np.float64))  # 2 MiB each
os.sync()

class ShardDataset(Dataset):
    '''Reads each sample from storage, dropping it from the page cache first so every read is real.'''
    def __len__(self): return 48
    def __getitem__(self, i):
        path = os.path.join(shard_dir, f"{i}.npy")
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        return torch.from_numpy(np.load(path)[:256]).float()
loader = DataLoader(ShardDataset(), batch_size=4)
model = nn.Linear(256, 8)
""",
    """
with torch.no_grad():
    for x in loader:
        model(x)
""",
    "disk_io",
)

OOM = Scenario(
    "oom",
    COMMON + "model = nn.Linear(8, 8)\n",
    """
x = torch.empty(2**62, dtype=torch.uint8)   # far more than any machine has
""",
    "memory_capacity",
)

ALL = (INPUT_PIPELINE, MEMORY_LEAK, LAUNCH_OVERHEAD, COMPUTE, INFERENCE_WITH_GRAD, TWO_STEPS, DISK_IO, OOM)
