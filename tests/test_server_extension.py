"""The server extension's metrics endpoint, through a real Jupyter server (pytest-jupyter) and a real kernel.

It must refuse a request without a token, answer for a kernel it runs with
the fields the status bar reads (and, without a GPU, say why there are no GPU
numbers), and 404 for a kernel it does not know. The installation checks at
the end are what ``pip install`` must leave behind: the extension listed and
enabled, by JupyterLab and by the server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import psutil
import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (see below)
from tornado.httpclient import HTTPClientError

import jupyter_perf

# pytest-jupyter's fixtures are imported into this module rather than registered with
# ``pytest_plugins``: registered, its autouse event-loop fixtures would run around every test of
# the session and close the loop Playwright's browser tests run on. Unregistered, its hook that
# runs ``async def`` tests is absent too, so these tests drive the server's loop themselves.

ROUTE = ("jupyter-perf", "metrics")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_perf": True}}}


@pytest.fixture
def fetch(jp_fetch, jp_asyncio_loop):
    """``jp_fetch``, waited for on the server's loop."""
    return lambda *parts, **kwargs: jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))


def start_kernel(fetch) -> str:
    """A real python3 kernel; the server shuts it down with itself at the end of the test."""
    response = fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    return json.loads(response.body)["id"]


def fetch_metrics(fetch, kid):
    response = fetch(*ROUTE, params={"kernel": kid})
    assert response.code == 200
    return json.loads(response.body)


def test_request_without_token_is_refused(fetch):
    kernel_id = start_kernel(fetch)
    with pytest.raises(HTTPClientError) as refused:
        fetch(*ROUTE, params={"kernel": kernel_id}, headers={"Authorization": ""})
    assert refused.value.code == 403


def test_metrics_of_a_kernel_without_gpu(fetch, jp_serverapp):
    kernel_id = start_kernel(fetch)
    first = fetch_metrics(fetch, kernel_id)
    second = fetch_metrics(fetch, kernel_id)

    pid = jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner.pid
    assert first["kernel"] == kernel_id and first["pid"] == pid
    assert second["time"] > first["time"]
    for body in (first, second):
        assert set(body) >= {"cpu_percent", "cpu_count", "rss", "mem_total", "mem_available", "gpus", "gpu_note"}
        assert body["cpu_percent"] >= 0
        assert body["cpu_count"] == psutil.cpu_count()
        assert 0 < body["rss"] < body["mem_total"]
    # the kernel's own resident memory is in the tree's total
    assert second["rss"] >= psutil.Process(pid).memory_info().rss * 0.5
    if not second["gpus"]:  # this machine: no GPU, and the answer says why instead of failing
        assert isinstance(second["gpu_note"], str) and second["gpu_note"]
    else:
        assert {"index", "name", "util", "mem_used", "mem_total", "proc_mem"} <= set(second["gpus"][0])


def test_unknown_kernel_is_404(fetch):
    with pytest.raises(HTTPClientError) as missing:
        fetch(*ROUTE, params={"kernel": "no-such-kernel"})
    assert missing.value.code == 404


def test_gpu_fields_per_device(monkeypatch):
    """No GPU here: a stand-in for GpuProbe checks how its columns become the answer's ``gpus``."""
    from jupyter_perf.server import metrics

    class FakeGpu:
        def __init__(self):
            self.devices = [{"index": 0, "name": "H200", "mem_total": 150e9}]
            self.note = None

        def read(self, pids):
            self.pids = pids
            return {"gpu0_util": 87, "gpu0_mem_used": 5e9, "gpu0_mem_total": 150e9, "gpu0_proc_mem": 4e9,
                    "gpu0_power_w": 300.0}

    monkeypatch.setattr(metrics, "GpuProbe", FakeGpu)
    reader = metrics.KernelMetrics()
    body = reader.read("k", os.getpid(), ["k"])
    assert body["gpus"] == [{"index": 0, "name": "H200", "util": 87, "mem_used": 5e9, "mem_total": 150e9,
                             "proc_mem": 4e9}]
    assert body["gpu_note"] is None
    assert os.getpid() in reader._gpu.pids  # memory is attributed to the kernel's process tree


def test_hooks_point_at_the_extensions():
    assert jupyter_perf._jupyter_server_extension_points() == [{"module": "jupyter_perf.server"}]
    assert jupyter_perf._jupyter_labextension_paths() == [{"src": "labextension", "dest": "jupyter-perf"}]


@pytest.mark.parametrize(
    "command, expected",
    [
        (["labextension", "list"], f"jupyter-perf v{jupyter_perf.__version__} enabled OK"),
        (["server", "extension", "list"], "jupyter_perf enabled"),
    ],
)
def test_installed_and_enabled(command, expected):
    """What ``pip install`` (editable or not) must leave: no ``jupyter labextension develop`` needed."""
    result = subprocess.run([sys.executable, "-m", "jupyter", *command], capture_output=True, text=True, timeout=60,
                            check=False)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # the listings color "enabled"
    assert expected in " ".join(listing.split()), listing
