import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ipython():
    """One real IPython shell with the extension loaded, as a notebook kernel would have it."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("colors", "nocolor")  # tracebacks as plain text, to be read by the tests
    shell.run_line_magic("load_ext", "jupyter_perf")
    return shell


def run_setup(setup: str) -> dict:
    namespace = {"__name__": "__main__"}
    exec(setup, namespace)
    return namespace
