"""Real DDP training code for the distributed tests: 2 CPU ranks over gloo, launched from a namespace.

``SETUP`` defines ``train(index, world_size, port, case, steps)`` in the shape of the PyTorch DDP tutorial
(init_process_group, a model wrapped in DistributedDataParallel, a DistributedSampler'd DataLoader, SGD),
with the planted problems as cases:

* ``healthy``: a small convolution net, ~3 GFLOP of math a step for a 12 kB all-reduce: neither rule fires,
  even on a loaded machine;
* ``straggler``: the same net on a third of the batch (~1 GFLOP a step), rank 1's dataset sleeping 60 ms a
  batch (its data path);
* ``communication``: a 4 M-parameter model on a batch of 8: a 16 MiB all-reduce a step for a few ms of math;
* ``crash``: rank 1 raises at its 4th step.

Each rank uses one intra-op thread: two ranks on two cores, as torchrun's OMP_NUM_THREADS=1 would.
"""

import socket

SETUP = '''
import os, time, torch, torch.distributed as dist, torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


class Batches(Dataset):
    """Whole batches, made up front (the DataLoader runs with batch_size=None); rank ``sleepy`` sleeps 60 ms on each."""

    def __init__(self, n, batch, shape, sleepy=None):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(4, batch, *shape, generator=generator)
        self.y = torch.randint(0, 10, (4, batch), generator=generator)
        self.n, self.sleepy = n, sleepy

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if dist.get_rank() == self.sleepy:
            time.sleep(0.06)
        return self.x[i % 4], self.y[i % 4]


def build(case):
    """(model, batch, input shape): a convolution net, ~3 GFLOP a step for a 12 kB all-reduce, or a wide MLP."""
    if case == "communication":
        return nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10)), 8, (2048,)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    return net, 16 if case == "straggler" else 48, (3, 64, 64)


def train(index, world_size, port, case, steps):
    torch.set_num_threads(1)
    init = f"tcp://127.0.0.1:{port}" if port else "env://"  # env://: torchrun's MASTER_ADDR / MASTER_PORT
    dist.init_process_group("gloo", init_method=init, rank=index, world_size=world_size)
    torch.manual_seed(0)
    net, batch, shape = build(case)
    model = DDP(net)
    data = Batches(steps * world_size, batch, shape, sleepy=1 if case == "straggler" else None)
    loader = DataLoader(data, batch_size=None, sampler=DistributedSampler(data, world_size, index))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step, (x, y) in enumerate(loader):
        if case == "crash" and index == 1 and step == 3:
            raise ValueError("planted failure in rank 1")
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dist.destroy_process_group()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(case: str, steps: int = 12, how: str = "fork") -> str:
    """The cell that launches 2 ranks of ``case``."""
    args = f"args=(2, {free_port()}, {case!r}, {steps}), nprocs=2"
    if how == "fork":
        return f'mp.start_processes(train, {args}, start_method="fork")\n'
    return f"mp.spawn(train, {args})\n"
