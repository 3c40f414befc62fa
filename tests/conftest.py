import gc
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
# The planted problems and workloads the benchmarks share with the tests (fix_scenarios, lm_scenarios, ...).
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="session")
def ipython():
    """One real IPython shell with the extension loaded, as a notebook kernel would have it."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("colors", "nocolor")  # tracebacks as plain text, to be read by the tests
    shell.run_line_magic("load_ext", "jupyter_perf")
    return shell


@pytest.fixture()
def fresh_kernel_state(ipython):
    """The extension reloaded: a kernel state that has tracked no cell yet (what other tests' cells bound, such
    as a ``model``, is not a cell this test's rewrites would look in)."""
    ipython.run_line_magic("unload_ext", "jupyter_perf")
    ipython.run_line_magic("load_ext", "jupyter_perf")
    return ipython


@pytest.fixture()
def no_accelerator_yet():
    """As in a fresh notebook: no accelerate state from earlier tests (the Hugging Face Trainer makes an
    Accelerator in this process, and notebook_launcher then refuses to launch, as it would in such a notebook)."""
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)


@contextmanager
def settled_heap():
    """What earlier tests left on the heap, collected and frozen for the length of one planted run.

    The test process holds hundreds of thousands of objects by the time a scenario runs (torch,
    IPython, earlier scenarios' models and tensors); a full collection of all that, triggered by the
    planted run's own allocations, took 50-100 ms and landed in whichever phase was allocating (a CI
    run saw a compute-bound loop's data wait go from 1.5 to 21 ms a step). Frozen objects are not
    scanned, so collections during the run see only what the run itself made.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_setup(setup: str) -> dict:
    namespace = {"__name__": "__main__"}
    exec(setup, namespace)
    return namespace
