"""The wheel ``python -m build`` makes carries the prebuilt extension, and works without node.

Builds the sdist and, from it, the wheel, as a release does; checks what the
wheel holds; installs it with JupyterLab into a fresh venv while PATH holds
nothing but that venv (so no node or npm can be reached); then starts the
venv's JupyterLab (the ``lab_server`` fixture of tests/ui/conftest.py is
overridden here; every other browser fixture is reused) and checks in Chromium
that the extension is active, answers the kernel's hello, and that its
status-bar item reads the kernel's counters through the server extension.

    pytest tests/ui/test_wheel.py     # ≈ 1.5 min: the venv's installs dominate
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lab_browser import CHROMIUM, LabServer

import jupyter_perf

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DATA = f"jupyter_perf-{jupyter_perf.__version__}.data/data/"
LABEXTENSION = DATA + "share/jupyter/labextensions/jupyter-perf/"


def venv_env(venv: Path) -> dict[str, str]:
    """The environment with PATH reduced to the venv's bin: no node, no npm, no system jupyter."""
    env = dict(os.environ, PATH=str(venv / "bin"), VIRTUAL_ENV=str(venv))
    assert shutil.which("node", path=env["PATH"]) is None and shutil.which("npm", path=env["PATH"]) is None
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], check=False,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    path = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    install = subprocess.run(
        [path / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel,
         "jupyterlab>=4,<5"],
        env=venv_env(path), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, venv):
    """The venv's JupyterLab: LabServer launches ``sys.executable -m jupyter lab`` with os.environ."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (scripts/setup.sh installs it)")
    server = LabServer(tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "executable", str(venv / "bin" / "python"))
            patch.setenv("PATH", venv_env(venv)["PATH"])
            server.start()
        yield server
    finally:
        server.stop()


def test_wheel_carries_the_prebuilt_extension(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert LABEXTENSION + "package.json" in names
    assert LABEXTENSION + "install.json" in names
    assert LABEXTENSION + "schemas/jupyter-perf/plugin.json" in names
    assert any(n.startswith(LABEXTENSION + "static/remoteEntry.") for n in names)
    assert DATA + "etc/jupyter/jupyter_server_config.d/jupyter_perf.json" in names
    assert not any(n.startswith("jupyter_perf/labextension/") for n in names)  # shipped once, as data


@pytest.mark.parametrize("view", ["live", "panel"])
def test_wheel_carries_the_built_widget_modules(wheel, view):
    """The live view and the panel's, bundled from labextension/src/ (git-ignored, so named in the wheel's
    artifacts)."""
    with zipfile.ZipFile(wheel) as archive:
        module = archive.read(f"jupyter_perf/ui/static/{view}.js").decode()
        assert f"jupyter_perf/ui/static/{view}.css" in archive.namelist()
    # one self-contained ES module for anywidget: a default export, nothing imported
    assert "export default" in module and not re.search(r"(^|[;}])\s*import[\s{*(]", module), module[:300]


def test_installed_wheel_works_without_node(venv, lab_notebook, notebook_file):
    listing = subprocess.run([venv / "bin" / "jupyter", "labextension", "list"], env=venv_env(venv),
                             capture_output=True, text=True, timeout=60, check=False)
    assert f"jupyter-perf v{jupyter_perf.__version__}" in listing.stdout + listing.stderr
    assert (venv / "share" / "jupyter" / "labextensions" / "jupyter-perf" / "package.json").exists()

    notebook_file("wheel.ipynb", [
        "%load_ext jupyter_perf\nimport jupyter_perf\nprint(jupyter_perf.__file__)",
        "print('ready:', jupyter_perf.state.current().channel.ready)",
    ])  # fmt: skip
    nb = lab_notebook("wheel.ipynb").open()
    page = nb.page
    assert page.evaluate("() => window.jupyterapp.isPluginActivated('jupyter-perf:plugin')")
    for index in (0, 1):
        page.evaluate("i => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
                      " return window.jupyterapp.commands.execute('notebook:run-cell'); }", index)
        nb.wait_idle()
    outputs = page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts()
    assert outputs[0].strip().startswith(str(venv)), outputs  # the kernel runs the wheel's package
    assert "ready: True" in outputs[1]
    page.wait_for_function("() => /^CPU \\d+% · RAM [\\d.,]+ [KMGT]?i?B$/.test("
                           "(document.querySelector('.jp-perf-status') || {}).textContent)", timeout=15_000)
