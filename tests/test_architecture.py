"""The package's layers flow one way and no modules import each other in a cycle (docs/architecture.md)."""

import textwrap

from conftest import ROOT
from layers import check

#: Each layer and the module prefixes in it, lowest first.
LAYERS = {
    "vocabulary": ("jupyter_perf.report", "jupyter_perf.units", "jupyter_perf.hardware", "jupyter_perf.catalog",
                   "jupyter_perf.data", "jupyter_perf.trend"),
    "sampling": ("jupyter_perf.sampling",),
    "probes": ("jupyter_perf.probes",),
    "session": ("jupyter_perf.session", "jupyter_perf.execution", "jupyter_perf.tracebacks"),
    "diagnosis": ("jupyter_perf.diagnosis",),
    "notebook": ("jupyter_perf.cells", "jupyter_perf.frontend", "jupyter_perf.state"),
    "distributed": ("jupyter_perf.distributed",),
    "runs": ("jupyter_perf.runs",),
    "optimizations": ("jupyter_perf.optimizations",),
    "ui": ("jupyter_perf.ui", "jupyter_perf.export"),
    "entry": ("jupyter_perf", "jupyter_perf.magic", "jupyter_perf.server", "jupyter_perf.run"),
}
#: The layers each one may import besides itself. Diagnosis and the optimizations are siblings: a value both
#: need (a threshold, an id) lives in the vocabulary.
USES = {
    "vocabulary": (),
    "sampling": ("vocabulary",),
    "probes": ("vocabulary", "sampling"),
    "session": ("vocabulary", "sampling", "probes"),
    "diagnosis": ("vocabulary",),
    "notebook": ("vocabulary",),
    "distributed": ("vocabulary", "sampling", "probes", "session", "diagnosis", "notebook"),
    "runs": ("vocabulary", "sampling", "probes", "session", "diagnosis", "notebook", "distributed"),
    "optimizations": ("vocabulary", "probes", "notebook"),
    "ui": ("vocabulary", "sampling", "probes", "session", "diagnosis", "notebook", "runs", "optimizations",
           "distributed"),
    "entry": tuple(layer for layer in LAYERS if layer != "entry"),
}


def test_imports_flow_down_the_layers_without_cycles():
    violations = check(ROOT / "jupyter_perf", LAYERS, USES)
    assert not violations, "\n".join(map(str, violations))


def test_the_check_finds_an_upward_import_a_cycle_and_a_module_outside_the_layers(tmp_path):
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/base.py": "def f():\n    from ..high import g  # hidden in a function: still an upward import\n",
        "high.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import stray\n",
        "user.py": "from .low import base  # downward: fine\n",
        "a.py": "from . import b\n",
        "b.py": "def later():\n    from . import a\n",
        "stray.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text))
    layers = {"low": ("pkg.low",), "high": ("pkg", "pkg.high", "pkg.user", "pkg.a", "pkg.b")}
    found = [str(v) for v in check(package, layers, {"high": ("low",)})]
    assert "pkg.low.base:2 imports pkg.high: layer 'low' may not use layer 'high'" in found
    assert any("import cycle: pkg.a -> pkg.b -> pkg.a" in v for v in found)
    assert not any("stray" in v for v in found), "imports for type checking only are not dependencies"
    assert len(found) == 2
