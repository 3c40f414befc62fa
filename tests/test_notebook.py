"""Real kernels: the planted scenarios through %%perfprofile in a notebook run by nbclient, and a real Ctrl-C."""

import queue

import nbformat
import pytest
import scenarios
from conftest import ROOT
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

CHECK = "assert rep.bottleneck == {expected!r}, (rep.bottleneck, [f.summary for f in rep.findings])"


def scenario_notebook():
    cells = [new_code_cell("%load_ext jupyter_perf")]
    for sc in scenarios.ALL:
        profiled = new_code_cell("%%perfprofile -o rep\n" + sc.cell.strip())
        if sc.name == "oom":  # the cell fails as it would unprofiled; the notebook goes on to check the report
            profiled.metadata["tags"] = ["raises-exception"]
        cells += [new_code_cell(sc.setup), profiled, new_code_cell(CHECK.format(expected=sc.bottleneck))]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})


def test_planted_scenarios_in_a_real_notebook(tmp_path):
    nb = scenario_notebook()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    profiled = [c for c in nb.cells if c.source.startswith("%%perfprofile")]
    for cell in profiled:
        shown = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result", "stream")]
        assert shown, "every profiled cell shows its summary"
    oom_cell = profiled[[s.name for s in scenarios.ALL].index("oom")]
    assert any(o.output_type == "error" for o in oom_cell.outputs)  # the user's error is shown as an error


def test_a_failing_profiled_cell_stops_the_notebook(tmp_path):
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext jupyter_perf"),
            new_code_cell("%%perfprofile -o rep\nraise ValueError('planted')"),
            new_code_cell("after = True"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError, match="planted"):
        client.execute()
    assert nb.cells[2].outputs == [] and nb.cells[2].get("execution_count") is None


def test_quickstart_notebook_runs(tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_ctrl_c_in_a_real_kernel_stops_the_run_and_keeps_the_report():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        setup = scenarios.INPUT_PIPELINE.setup
        for code in ("%load_ext jupyter_perf", setup):
            assert kc.execute_interactive(code, timeout=120)["content"]["status"] == "ok"
        msg_id = kc.execute(
            "%%perfprofile -o rep\nseen = 0\nfor epoch in range(10_000):\n    for x, y in loader:\n"
            "        model(x)\n        seen += 1\n"
            "        if seen == 20:\n            print('twenty steps', flush=True)\n"
        )
        # Interrupted once the loop has run twenty steps, however long a loaded machine took to get there.
        while "twenty steps" not in kc.get_iopub_msg(timeout=120)["content"].get("text", ""):
            pass
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        outputs = []
        while True:
            try:
                outputs.append(kc.get_iopub_msg(timeout=1))
            except queue.Empty:
                break
        assert any("profiling stopped" in str(m["content"]) for m in outputs)
        check = kc.execute_interactive("assert rep.interrupted and rep.steps > 10, rep", timeout=60)
        assert check["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
