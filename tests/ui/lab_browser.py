"""JupyterLab on localhost and Debian's Chromium, for the browser tests and the dashboard benchmark.

``LabServer`` runs ``jupyter lab`` with a throwaway root, config, settings and
workspace directory, news and update checks off, and ``expose_app_in_browser``
so callers drive Lab through its command registry (``window.jupyterapp``)
rather than through fragile clicks. ``launch_chromium`` starts Debian's
Chromium under Playwright with a fresh profile. ``LabNotebook`` opens, runs and
saves one notebook.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A running ``jupyter lab`` (or, with ``app="notebook"``, Notebook 7's ``jupyter notebook``, built on the
    same application framework): its URL, token and root directory, and a little REST."""

    #: The server application's config class per front end (each exposes ``window.jupyterapp`` on request).
    APPS = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}

    def __init__(self, root: Path, home: Path, app: str = "lab"):
        self.app = app
        self.root = root
        self.home = home
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyter-lab.log"
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        settings = self.home / "settings"
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            IPYTHONDIR=str(self.home / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (self._checkout_extension(), env.get("JUPYTER_PATH")) if p)
        config = self.APPS[self.app]
        cmd = [
            sys.executable, "-m", "jupyter", self.app,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--{config}.expose_app_in_browser=True",
            f"--{config}.user_settings_dir={settings}",
            f"--{config}.workspaces_dir={self.home / 'workspaces'}",
        ]  # fmt: skip
        if self.app == "lab":
            cmd.append("--LabApp.news_url=None")
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes to it until stop()
        self.process = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        atexit.register(self.stop)  # a script that dies on an exception must not leave a server behind
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{self.log()}")

    def _checkout_extension(self) -> str | None:
        """A data directory whose ``labextensions/jupyter-perf`` is the tested checkout's build, if it has one.

        JupyterLab takes the first ``jupyter-perf`` on the Jupyter path: without this, a worktree's tests would
        drive whichever build the shared environment installed.
        """
        import jupyter_perf

        built = Path(jupyter_perf.__file__).parent / "labextension"
        if not (built / "package.json").exists():
            return None
        data = self.home / "data"
        (data / "labextensions").mkdir(parents=True, exist_ok=True)
        link = data / "labextensions" / "jupyter-perf"
        if not link.exists():
            link.symlink_to(built, target_is_directory=True)
        return str(data)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def lab_url(self, notebook: str) -> str:
        if self.app == "notebook":  # Notebook 7: one document per page
            return f"{self.url}/notebooks/{notebook}?token={self.token}"
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut the server (and its kernels) down: politely, then by signal."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.api("POST", "/api/shutdown")
                self.process.wait(timeout=15)
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def launch_chromium(playwright, user_data_dir: Path, **options):
    """A persistent Chromium context on a fresh profile directory."""
    options.setdefault("viewport", {"width": 1280, "height": 1000})
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, **options
    )


class LabNotebook:
    """One notebook open in JupyterLab, driven through ``window.jupyterapp``'s commands."""

    def __init__(self, page, server: LabServer, name: str):
        self.page = page
        self.server = server
        self.name = name

    def open(self, kernel_ready: bool = True) -> LabNotebook:
        self.page.goto(self.server.lab_url(self.name))
        self.page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.content"
            " && window.jupyterapp.shell.currentWidget.content.widgets.length > 0"
        )
        self.page.wait_for_selector(".jp-Notebook .jp-Cell")
        if kernel_ready:
            self.wait_idle()
        return self

    def command(self, name: str, args: dict | None = None) -> Any:
        return self.page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a)", [name, args or {}])

    def kernel_status(self) -> str | None:
        return self.page.evaluate(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k ? k.status : null; }"
        )

    def wait_idle(self, timeout: float = 120.0) -> None:
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k && k.status === 'idle'; }",
            timeout=timeout * 1000,
        )

    def wait_done(self, timeout: float = 300.0) -> None:
        """Wait until no cell is running or queued and the kernel is idle."""
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];"
            " return k && k.status === 'idle' && prompts.every(p => !p.textContent.includes('*')); }",
            timeout=timeout * 1000,
        )

    def run_all(self) -> None:
        """Start running every cell; returns at once (the command's promise settles when all have run)."""
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    def save(self) -> None:
        self.command("docmanager:save")
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget; return w && !w.context.model.dirty; }"
        )

    def prompts(self) -> list[str]:
        return self.page.evaluate(
            "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
            ".map(p => p.textContent.trim())"
        )

    def cell(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)


def write_notebook(path: Path, sources: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, str(path))
    return path
