"""The Jupyter server extension: a metrics endpoint for the JupyterLab status-bar item.

``GET {base_url}jupyter-perf/metrics?kernel=<kernel id>`` answers with the
kernel's process tree's CPU and memory and the GPUs' utilization and memory
(fields in ``metrics.py``). The server reads them rather than the kernel,
because a kernel busy in a cell cannot answer, and that is when its numbers
matter. Enabled by ``jupyter-config/server-config/jupyter_perf.json``, which
the package installs; ``jupyter server extension list`` shows it.
"""

from __future__ import annotations

from typing import Any

ROUTE = ("jupyter-perf", "metrics")


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join

    from .handlers import MetricsHandler
    from .metrics import KernelMetrics

    route = url_path_join(serverapp.web_app.settings["base_url"], *ROUTE)
    serverapp.web_app.add_handlers(".*$", [(route, MetricsHandler, {"metrics": KernelMetrics()})])
    serverapp.log.info("jupyter-perf: kernel metrics at %s", route)
