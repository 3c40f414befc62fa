"""Browser fixtures: a JupyterLab server on localhost and Debian's Chromium driven by Playwright.

One server and one browser per test module (starting them costs ~10 s on two
cores); the machinery is in ``lab_browser.py``, shared with ``benchmarks/dashboard_overhead.py``.
Screenshots and measurements go to the artifacts folder, printed at the end
of the run (set ``JP_UI_ARTIFACTS`` to choose it).

    pytest tests/ui            # ≈ 1 min on two cores
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lab_browser import CHROMIUM, LabNotebook, LabServer, launch_chromium, write_notebook

_ARTIFACTS: list[Path] = []


@pytest.fixture(scope="session")
def ui_artifacts() -> Path:
    """Where screenshots and measurements of this run go; printed in the terminal summary."""
    base = os.environ.get("JP_UI_ARTIFACTS")
    root = Path(base) if base else Path(__file__).resolve().parents[1] / "artifacts" / "ui"  # git-ignored
    path = root / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    _ARTIFACTS.append(path)
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for path in _ARTIFACTS:
        terminalreporter.write_line(f"UI test artifacts (screenshots, measurements): {path}")


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with a fresh root directory, stopped after the module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (scripts/setup.sh installs it)")
    server = LabServer(tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser_context(lab_server, tmp_path_factory):
    """Chromium (headless, fresh profile) under Playwright, closed after the module."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = launch_chromium(playwright, profile)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    page.set_default_timeout(60_000)
    yield page
    page.close()


@pytest.fixture
def notebook_file(lab_server):
    """``notebook_file(name, [cell sources])``: write a notebook into the server's root, return its path."""
    return lambda name, sources: write_notebook(lab_server.root / name, sources)


@pytest.fixture
def lab_notebook(page, lab_server):
    """``lab_notebook(name)``: a :class:`lab_browser.LabNotebook` for ``name`` in the server's root, not yet opened."""
    return lambda name: LabNotebook(page, lab_server, name)
