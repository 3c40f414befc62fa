"""Failing cells run plain and under ``%%perfprofile`` in one real IPython shell, their outputs side by side.

Run as a script, it prints one JSON object: the IPython version and, for each
case and traceback mode, the plain cell's output and the profiled cell's,
with their prompt numbers. As a script, the IPython it imports is whichever
comes first on ``sys.path``: the virtual environment's (9), or the one
``scripts/setup.sh`` puts in ``.cache/ipython8`` (tests/test_tracebacks.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys

SETUP = """
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

def f(x):
    return 1 / x

class Refuses(nn.Module):
    def forward(self, x):
        raise ValueError(f"refused a batch of {len(x)}")

class BrokenData(Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        if i == 5:
            raise KeyError(f"sample {i} is missing")
        return torch.full((4,), float(i))

class BackwardFails(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()
    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no gradient for you")

model = nn.Sequential(nn.Linear(4, 4), Refuses())
net = nn.Linear(4, 1)
opt = torch.optim.SGD(net.parameters(), lr=0.0)  # the same weights for every run: Verbose shows the values
loader = DataLoader(BrokenData(), batch_size=2)
steps = DataLoader(TensorDataset(torch.arange(64.0).reshape(16, 4)), batch_size=2)
x3 = torch.arange(12.0).reshape(3, 4)
"""

#: Each a cell body that raises, in a different place relative to the profiler's frames.
CASES = {
    "raise_in_the_cell": "y = 2\nraise ValueError('boom')\n",
    "trailing_expression_into_an_earlier_cell": "y = 2\nf(0)",
    "statement_into_an_earlier_cell": "z = f(0)\nprint(z)\n",
    "inside_a_model_forward": "net(x3)\nout = model(x3)\n",
    "inside_the_first_model_call": "out = model(x3)\n",
    "inside_a_dataset_under_the_dataloader": "for batch in loader:\n    pass\n",
    "inside_backward": "loss = BackwardFails.apply(torch.ones(2, requires_grad=True)).sum()\nloss.backward()\n",
    "in_a_training_loop_after_some_steps": (
        "for i, (x,) in enumerate(steps):\n"
        "    loss = net(x).pow(2).mean()\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n"
        "    if i == 4:\n"
        "        raise ValueError(f'stopped at step {i}')\n"
    ),
    "chained_from_a_model_error": (
        "net(x3)\ntry:\n    model(x3)\nexcept ValueError as exc:\n    raise RuntimeError('wrapped') from exc\n"
    ),
    "syntax_error": "x = (1,\ny = 2\n",
}
MODES = ("Context", "Plain", "Verbose", "Minimal")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def run(shell, cell: str) -> tuple[int, str, bool]:
    """Run ``cell`` as a notebook would: its prompt number, what it printed (colours removed), success."""
    out = io.StringIO()
    number = shell.execution_count
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        result = shell.run_cell(cell, store_history=True)
    return number, _ADDRESS.sub("0x…", _ANSI.sub("", out.getvalue())), result.success


def compare_all() -> dict:
    import IPython
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_perf")
    assert shell.run_cell(SETUP, store_history=True).success
    results = []
    for mode in MODES:
        with contextlib.redirect_stdout(io.StringIO()):  # it says which mode it set
            shell.run_line_magic("xmode", mode)
        for name, cell in CASES.items():
            plain_n, plain, plain_ok = run(shell, cell)
            profiled_n, profiled, profiled_ok = run(shell, "%%perfprofile --no-live\n" + cell)
            results.append({"case": name, "mode": mode, "plain_n": plain_n, "plain": plain, "plain_ok": plain_ok,
                            "profiled_n": profiled_n, "profiled": profiled, "profiled_ok": profiled_ok})
    return {"ipython": IPython.__version__, "results": results}


if __name__ == "__main__":
    json.dump(compare_all(), sys.stdout)
