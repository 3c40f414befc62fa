"""How ranks hand their summaries and Reports to the process that launched them: a torch.distributed store.

The profiled parent hosts a ``TCPStore`` (torch.distributed's own key-value
store, the one process groups rendezvous through) on the loopback interface,
on a port the system picks, from its first launch until its run ends. Each
rank connects as a client with the address its ``RankSpec`` carries and sets
two kinds of key under its launch's prefix:

* ``live/<index>``: a small JSON summary, replaced about twice a second (the
  parent's dashboard reads them);
* ``report/<index>``: the rank's whole Report as JSON, once, when it ends.

Nothing else travels: no files, no pipes of our own. A rank that cannot reach
the store (the parent is gone) keeps running and says so once on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

HOST = "127.0.0.1"
#: How long a rank waits to connect, and a read or write may take, before giving up on the parent.
TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class RankSpec:
    """What a launched rank needs to profile itself and hand its Report back (picklable for ``spawn``)."""

    #: The parent's store, ``(host, port)``; None: write the Report to ``out_dir`` instead (torchrun).
    address: tuple[str, int] | None
    #: Keys of this launch start with this.
    prefix: str
    interval: float = 0.1
    out_dir: str | None = None
    #: How the rank was started: ``fork``, ``spawn``, ``forkserver``, ``torchrun``, ``script``.
    launcher: str = "fork"


class Store:
    """The parent's side: hosts the store, reads what ranks sent."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._store = dist.TCPStore(HOST, 0, is_master=True, wait_for_workers=False, timeout=TIMEOUT)
        self.address = (HOST, self._store.port)

    def get(self, prefix: str, kind: str, indices: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The ``kind`` (``live`` or ``report``) values the ranks of ``indices`` have set so far, decoded."""
        keys = {i: f"{prefix}/{kind}/{i}" for i in indices}
        present = [i for i, key in keys.items() if self._store.check([key])]
        if not present:
            return {}
        values = self._store.multi_get([keys[i] for i in present])
        return {i: json.loads(bytes(value)) for i, value in zip(present, values)}

    def close(self) -> None:
        """Stop serving: the store's server thread ends with the object."""
        del self._store


class Link:
    """A rank's side: a client of the parent's store."""

    def __init__(self, spec: RankSpec, index: int) -> None:
        import torch.distributed as dist

        self._prefix = spec.prefix
        self._index = index
        self._failed = False
        assert spec.address is not None  # rank_session links only the ranks a notebook launched
        host, port = spec.address
        try:
            self._store = dist.TCPStore(host, port, is_master=False, wait_for_workers=False, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - as in send(): the rank's work goes on without its report
            self._lost(exc)

    def send(self, kind: str, value: dict[str, Any]) -> bool:
        """Set this rank's ``kind`` key; False (said once) where the parent cannot be reached."""
        if self._failed:
            return False
        try:
            self._store.set(f"{self._prefix}/{kind}/{self._index}", json.dumps(value))
        except Exception as exc:  # noqa: BLE001 - the parent went away; the rank's own work goes on
            self._lost(exc)
            return False
        return True

    def _lost(self, exc: Exception) -> None:
        self._failed = True
        print(f"jupyter-perf: rank {self._index} could not reach the profiling notebook ({exc}); "
              "its report is lost", file=sys.stderr)
