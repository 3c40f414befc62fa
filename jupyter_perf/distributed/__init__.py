"""Distributed runs: every rank profiled in its own process, and their Reports merged (docs/distributed.md).

* ``collectives.py`` / ``buckets.py``: in any process, the torch.distributed
  collectives the code calls and DDP's gradient buckets, and the step time
  blocked on them (phase ``communication``);
* ``launch.py``: in the notebook, the ranks a profiled cell launches
  (``mp.start_processes``, ``mp.spawn``, accelerate's ``notebook_launcher``);
* ``rank.py``: in each rank, its Session, and its Report sent back (``channel.py``)
  or written for ``torchrun`` (``jupyter_perf.rank_profile``);
* ``merging.py``: the ranks' Reports as one (``merge``, ``load``).

Importing this package imports nothing heavy; torch comes with the modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..report import Report

__all__ = ["load", "merge"]


def load(directory: Any) -> "Report":
    """The merged, diagnosed Report of a directory of rank Reports (``rank-*.json``, written by ``rank_profile``)."""
    from .merging import load as load_ranks

    return load_ranks(directory)


def merge(ranks: list["Report"]) -> "Report":
    """One diagnosed Report from rank Reports, in any order (rank order in ``report.ranks``)."""
    from ..diagnosis import diagnose
    from .merging import merge as merge_ranks

    report = merge_ranks(ranks)
    diagnose(report)
    return report

