"""A profiled cell that raises shows, after its report, exactly the traceback the plain cell shows.

Same frames, same ``Cell In[N], line L`` labels (N the profiled cell's own
prompt number), same lines, in every traceback mode, on IPython 9 (the
virtual environment's) and IPython 8 (``scripts/setup.sh`` installs it beside
it, in ``.cache/ipython8``). Each IPython runs ``traceback_cases.py`` in a
fresh process of its own; a real kernel is checked too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT
from traceback_cases import CASES, MODES

IPYTHON8 = ROOT / ".cache" / "ipython8"
def cell_outputs(first_on_path: list[str]) -> dict:
    """traceback_cases.py's results from a fresh Python whose path starts with ``first_on_path``, then this checkout."""
    path = [*first_on_path, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "traceback_cases.py")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module", params=["9", "8"])
def outputs(request):
    if request.param == "8":
        if not (IPYTHON8 / "IPython").is_dir():
            pytest.skip(f"IPython 8 is not installed in {IPYTHON8} (scripts/setup.sh installs it there)")
        results = cell_outputs([str(IPYTHON8)])
    else:
        results = cell_outputs([])
    assert results["ipython"].split(".")[0] == request.param, results["ipython"]
    return {(r["case"], r["mode"]): r for r in results["results"]}


def numbered(text: str, number: int) -> str:
    """The cell's own label made comparable: its prompt number differs between the plain and the profiled run."""
    return text.replace(f"Cell In[{number}]", "Cell In[N]")


@pytest.mark.parametrize("case", CASES)
def test_the_profiled_traceback_is_the_plain_one(outputs, case):
    for mode in MODES:
        run = outputs[case, mode]
        assert not run["plain_ok"] and not run["profiled_ok"], "both cells count as failed"
        plain = numbered(run["plain"], run["plain_n"])
        profiled = numbered(run["profiled"], run["profiled_n"])
        if mode != "Minimal":
            assert "Cell In[N]" in plain and "Cell In[N]" in profiled, (mode, profiled)
        report, _, traceback = profiled.rpartition(plain)
        assert traceback == "", f"{mode}: the traceback differs\n--- plain\n{plain}\n--- profiled\n{profiled}"
        if case == "syntax_error":  # nothing ran, so there is nothing to report
            assert report == "", profiled
        else:
            assert report.startswith("jupyter-perf · "), f"{mode}: the report comes first\n{profiled}"


def test_a_real_kernel_labels_the_profiled_cell_with_its_own_number(tmp_path):
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    failing = "y = 2\nf(0)"
    nb = new_notebook(
        cells=[new_code_cell(c) for c in ("%load_ext jupyter_perf", "def f(x):\n    return 1 / x",
                                          failing, "%%perfprofile\n" + failing)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )  # fmt: skip
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    plain_cell, profiled_cell = nb.cells[2], nb.cells[3]
    ansi = re.compile(r"\x1b\[[0-9;]*m")

    def traceback(cell) -> str:
        (error,) = [o for o in cell.outputs if o.output_type == "error"]
        assert error.ename == "ZeroDivisionError"
        return ansi.sub("", "\n".join(error.traceback))

    profiled = traceback(profiled_cell)
    assert f"Cell In[{profiled_cell.execution_count}], line 2" in profiled
    assert "jupyter_perf" not in profiled
    assert numbered(profiled, profiled_cell.execution_count) == numbered(
        traceback(plain_cell), plain_cell.execution_count
    )
    kinds = [o.output_type for o in profiled_cell.outputs]
    assert kinds.index("error") == len(kinds) - 1 and len(kinds) > 1, "the report first, then the error"
