"""The HTTP handler of the metrics endpoint: authenticated, read access to kernels required."""

from __future__ import annotations

import json

import psutil
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado.ioloop import IOLoop

from .metrics import KernelMetrics


class MetricsHandler(APIHandler):
    """``GET ?kernel=<id>``: that kernel's metrics as JSON; 404 for a kernel that is not here and local."""

    auth_resource = "kernels"

    def initialize(self, metrics: KernelMetrics) -> None:
        self.metrics = metrics

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        kernel_id = self.get_query_argument("kernel")
        manager = self.kernel_manager
        if kernel_id not in manager:
            raise tornado.web.HTTPError(404, f"no kernel {kernel_id}")
        pid = getattr(manager.get_kernel(kernel_id).provisioner, "pid", None)
        if pid is None:  # starting, or run by a provisioner on another machine
            raise tornado.web.HTTPError(404, f"kernel {kernel_id} has no local process")
        try:
            # psutil walks /proc and NVML may take ~20 ms: keep that off the server's event loop.
            body = await IOLoop.current().run_in_executor(
                None, self.metrics.read, kernel_id, pid, manager.list_kernel_ids()
            )
        except psutil.NoSuchProcess:
            raise tornado.web.HTTPError(404, f"kernel {kernel_id}'s process is gone") from None
        self.finish(json.dumps(body))
