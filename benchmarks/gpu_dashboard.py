"""The live dashboard on a real GPU, headless: a notebook run by nbclient, its comm traffic read back.

Run through ``python benchmarks/gpu_check.py [--quick]`` (issue 3's GPU check).
A kernel started by nbclient loads the extension and trains a conv net on the
GPU under ``%%perfprofile`` for a few seconds. Every frame the dashboard pushed
while the cell ran is kept; the check passes when the dashboard announced the
GPU, its gauges carried real NVML values (utilisation, memory used, power,
temperature) that moved during the run, the timeline rows carried the GPU
columns, and the cell settled into the summary with the widget state stored.

``dashboard_checks(quick)`` returns rows ``(name, status, detail)`` like
``gpu_check.run_checks``.
"""

from __future__ import annotations

import statistics
from typing import Any

from gpu_check import COMMON, CONV_NET, check

LIVE_ID = "jupyter_perf.ui.live_widget.LiveDashboard"

CELL = """%%perfprofile -o rep
batches = [(torch.randn(128, 3, 96, 96, device=device), torch.randint(0, 10, (128,), device=device))
           for _ in range(8)]
start = time.perf_counter()
while time.perf_counter() - start < {seconds}:
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
"""


def run_notebook(seconds: float) -> tuple[Any, list[dict]]:
    """Execute the notebook; return it and every comm message the kernel sent."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    class Recording(NotebookClient):
        comm_msgs: list[dict] = []

        def handle_comm_msg(self, outs, msg, cell_index):
            self.comm_msgs.append(msg)
            return super().handle_comm_msg(outs, msg, cell_index)

    nb = new_notebook(
        cells=[new_code_cell("%load_ext jupyter_perf\n" + COMMON + CONV_NET),
               new_code_cell(CELL.replace("{seconds}", str(seconds)))],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    client = Recording(nb, timeout=600, kernel_name="python3")
    client.execute()
    return nb, client.comm_msgs


def gpu_frames(msgs: list[dict]) -> tuple[list[dict], list[list]]:
    """The dashboard's announced GPUs and, per pushed row, the gauges of GPU 0."""
    opens = [m for m in msgs if m["msg_type"] == "comm_open"
             and m["content"]["data"].get("state", {}).get("_anywidget_id") == LIVE_ID]
    if not opens:
        return [], []
    comm = opens[0]["content"]["comm_id"]
    announced = opens[0]["content"]["data"]["state"]["meta"].get("gpus", [])
    rows = [row for m in msgs if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm
            for row in m["content"]["data"].get("state", {}).get("frame", {}).get("rows", [])]
    return announced, [row["gpus"][0] for row in rows if row.get("gpus")]


def dashboard_checks(quick: bool = False) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    nb, msgs = run_notebook(3.0 if quick else 8.0)
    announced, gauges = gpu_frames(msgs)
    # util, mem_used, mem_total, power_w, temp_c per row (ui/dashboard.py)
    util = [g[0] for g in gauges if g[0] is not None]
    mem = [g[1] for g in gauges if g[1] is not None]
    power = [g[3] for g in gauges if g[3] is not None]
    temp = [g[4] for g in gauges if g[4] is not None]
    real = bool(util) and max(util) > 0 and bool(mem) and min(mem) > 0 and bool(power) and bool(temp)
    check(rows, "dashboard GPU gauges (nbclient)", bool(announced) and real and len(set(util)) > 1,
          f"announced {[g.get('name') for g in announced]}; {len(gauges)} rows; util median "
          f"{statistics.median(util) if util else float('nan'):.0f}% (max {max(util, default=0):.0f}), "
          f"mem {max(mem, default=0) / 2**30:.2f} GiB, power {max(power, default=0):.0f} W, "
          f"temp {max(temp, default=0):.0f} °C")
    outputs = nb.cells[1].outputs
    summaries = [o["data"] for o in outputs if "application/vnd.jupyter-perf.report+json" in o.get("data", {})]
    html = summaries[0].get("text/html", "") if summaries else ""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    check(rows, "dashboard settles into the summary", 'class="jp-perf-summary"' in html and bool(state),
          f"{len(outputs)} outputs, summary {'present' if html else 'missing'}, {len(state)} widget models stored")
    return rows
