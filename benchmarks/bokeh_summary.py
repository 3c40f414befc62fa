"""What the summary's interactive bokeh timelines cost: bokeh's import, the document, a saved notebook's growth.

Three figures, each against the rule in ``jupyter_perf/ui/bokeh_timelines.py`` (figures only where they
cost ≤ 10 % of the run) and issue 13's limit (a saved notebook grows ≤ 300 KB per profiled cell):

* **import**: ``import bokeh.plotting, bokeh.embed, …`` in a fresh interpreter, ``--imports`` times
  (what the first summary with figures pays; ``BOKEH_IMPORT_S`` in the module);
* **document**: building the figures and ``json_item`` for a real Report, the first time in a process
  and again (``DRAW_S``), and the document's size;
* **notebook**: a notebook executed by nbclient (the user imported bokeh, then profiled cells of each
  workload) and saved; the bytes each profiled cell's outputs add, the bokeh part's share, and that
  no BokehJS is in the file.

Workloads: ``short`` (30 steps of 100 ms, ≈ 3 s), ``many steps`` (≈ 12 s of 2-ms steps: the steps
band groups them, the lines keep every sample). ``--quick`` runs the first only.

    python benchmarks/bokeh_summary.py [--imports 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMPORT = "import bokeh.plotting, bokeh.embed, bokeh.layouts, bokeh.models"
LOOP = """
import time, torch
model = torch.nn.Linear(16, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
t0 = time.perf_counter()
while time.perf_counter() - t0 < {seconds}:
    loss = model(torch.randn(8, 16)).sum()
    loss.backward(); opt.step(); opt.zero_grad()
    time.sleep({sleep})
"""
WORKLOADS = {"short": LOOP.format(seconds=3, sleep=0.1), "many steps": LOOP.format(seconds=12, sleep=0.002)}
MAX_CELL_GROWTH = 300 * 1024
BOKEHJS_MARKERS = ("Bokeh.set_log_level", "cdn.bokeh.org", "Bokeh.embed")


def import_seconds(times: int) -> list[float]:
    """bokeh's import in fresh interpreters (the modules the summary uses), seconds each."""
    code = f"import time; t = time.perf_counter(); {IMPORT}; print(time.perf_counter() - t)"
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(times)]


def document_costs(source: str) -> dict[str, float]:
    """Build the document for a real Report twice in this process: seconds first and again, and its KB."""
    import jupyter_perf
    from jupyter_perf.ui.bokeh_timelines import figures

    report = jupyter_perf.profile(source, {})
    from bokeh.embed import json_item

    costs = {"run_s": report.wall_time}
    for key in ("first_s", "again_s"):
        start = time.perf_counter()
        item = json_item(figures(report))
        costs[key] = time.perf_counter() - start
    costs["kb"] = len(json.dumps(item)) / 1024
    return costs


def notebook_growth(sources: list[str]) -> tuple[list[dict[str, float]], bool]:
    """Bytes per profiled cell of a notebook nbclient ran and saved; whether BokehJS stayed out of the file."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell("%load_ext jupyter_perf\nimport bokeh")]
    cells += [new_code_cell("%%perfprofile\n" + s) for s in sources]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    with tempfile.TemporaryDirectory() as tmp:
        env_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        os.environ["PYTHONPATH"] = env_path  # the kernel imports this checkout's jupyter_perf
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        saved = Path(tmp) / "saved.ipynb"
        nbformat.write(nb, str(saved))
        text = saved.read_text()
    rows = []
    for cell in nb.cells[1:]:
        parts = [o["data"].get("application/vnd.jupyter-perf.timelines+json") for o in cell.outputs if "data" in o]
        part = next((p for p in parts if p), None)
        rows.append({"cell_kb": len(json.dumps(cell.outputs)) / 1024,
                     "bokeh_kb": len(json.dumps(part)) / 1024 if part else 0.0})
    widgets = len(json.dumps(nb.metadata.get("widgets", {}))) / 1024
    for row in rows:
        row["widget_state_kb"] = widgets / len(rows)
    return rows, not any(marker in text for marker in BOKEHJS_MARKERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters timing the import")
    parser.add_argument("--quick", action="store_true", help="the short workload only")
    args = parser.parse_args()
    workloads = dict(list(WORKLOADS.items())[:1]) if args.quick else WORKLOADS

    imports = import_seconds(args.imports)
    print(f"bokeh import, fresh interpreter ({args.imports}×): median {statistics.median(imports):.2f} s, "
          f"min {min(imports):.2f} s, max {max(imports):.2f} s")

    print("\ndocument (figures + json_item) for a real Report:")
    print(f"  {'workload':<12} {'run s':>6} {'first s':>8} {'again s':>8} {'KB':>7}")
    for name, source in workloads.items():
        c = document_costs(source)
        print(f"  {name:<12} {c['run_s']:>6.1f} {c['first_s']:>8.2f} {c['again_s']:>8.2f} {c['kb']:>7.1f}")

    rows, clean = notebook_growth(list(workloads.values()))
    print("\nsaved notebook (nbclient), per profiled cell:")
    print(f"  {'workload':<12} {'outputs KB':>10} {'of which bokeh KB':>18} {'widget state KB':>16}")
    for name, row in zip(workloads, rows):
        print(f"  {name:<12} {row['cell_kb']:>10.1f} {row['bokeh_kb']:>18.1f} {row['widget_state_kb']:>16.1f}")
    worst = max(r["cell_kb"] + r["widget_state_kb"] for r in rows)
    print(f"  largest growth {worst:.1f} KB (limit {MAX_CELL_GROWTH // 1024} KB); "
          f"BokehJS in the file: {'no' if clean else 'YES'}")


if __name__ == "__main__":
    main()
