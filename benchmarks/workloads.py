"""CPU workloads for the overhead benchmark: (name, setup source, measured source).

Each measured source runs about a second on two cores, long enough that the
profiler's fixed start/stop cost does not dominate the ratio.
"""

COMMON = """
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
"""

SMALL_CNN_TRAINING = (
    "small CNN training + DataLoader",
    COMMON
    + """
model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loader = DataLoader(TensorDataset(torch.randn(4096, 3, 32, 32), torch.randint(0, 10, (4096,))), batch_size=32)
""",
    """
for x, y in loader:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
""",
)

SMALL_BATCH_MLP_INFERENCE = (
    "small-batch MLP inference",
    COMMON
    + """
model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
batches = [torch.randn(16, 256) for _ in range(4000)]
""",
    """
with torch.inference_mode():
    for x in batches:
        model(x)
""",
)

TRANSFORMER_LAYER = (
    "transformer layer training",
    COMMON
    + """
layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=256, batch_first=True)
opt = torch.optim.AdamW(layer.parameters(), lr=1e-3)
batches = [torch.randn(16, 64, 128) for _ in range(60)]
""",
    """
for x in batches:
    loss = layer(x).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
""",
)

ALL = (SMALL_CNN_TRAINING, SMALL_BATCH_MLP_INFERENCE, TRANSFORMER_LAYER)
