"""Ranks the profiled cell launches: each runs its own Session; their Reports come back to this one.

torch's launchers all start ranks through ``torch.multiprocessing.start_processes``:
``mp.spawn`` calls it by its module's global name, ``mp.start_processes(...,
start_method="fork")`` is it, and accelerate's ``notebook_launcher`` (through
torchelastic) looks it up on ``torch.multiprocessing`` when it launches. So
for the run both names (and any name the notebook bound to it before) point at
a wrapper that puts a ``RankEntry`` (rank.py) in front of the function each
rank runs, hosts the store ranks report to (channel.py), and joins the ranks
itself so that a failure or a Ctrl-C leaves the others' Reports:

* a rank that fails: the others get ``GRACE_S`` to end (a peer's death breaks
  their next collective) and send their Reports before they are stopped with
  SIGTERM, then SIGKILL; torch would SIGTERM them at once. The launcher's own
  exception (``ProcessRaisedException``, naming the rank) reaches the cell
  unchanged, and torch's error files are removed;
* Ctrl-C: a terminal's or Jupyter's interrupt reaches every rank (they share
  the kernel's process group); ranks still running a moment later get a
  SIGINT of their own, then SIGTERM and SIGKILL, a grace period apart. Then
  the KeyboardInterrupt goes on to the cell.

When the run ends, the last launch's Reports are read (a rank still running
gets ``REPORT_WAIT_S`` to send its own) and merged into the cell's Report
(merging.py); the store closes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

from .channel import RankSpec, Store
from .rank import RankEntry, user_function

#: After a rank fails (or Ctrl-C), how long the others get to end on their own before the next, harder stop.
GRACE_S = 5.0
#: When the run ends, how long a rank still alive gets to send its Report.
REPORT_WAIT_S = 10.0
#: After Ctrl-C, how long ranks get to stop on the interrupt they shared before they get one of their own.
INTERRUPT_WAIT_S = 1.0


class LaunchProbe:
    """Patches the launchers for the run and gathers what the ranks it launched reported."""

    def __init__(self, session: Any):
        self.session = session
        self.launches: list[Launch] = []
        self._store: Store | None = None
        self._ledger: Any = None

    def install(self, ledger: Any) -> None:
        import torch.multiprocessing as tmp

        spawn = sys.modules["torch.multiprocessing.spawn"]
        original = spawn.start_processes
        self._ledger = ledger

        def start_processes(fn: Callable, args: tuple = (), nprocs: int = 1, join: bool = True,
                            daemon: bool = False, start_method: str = "spawn") -> Any:
            return self._start(original, fn, args, nprocs, join, daemon, start_method)

        functools.update_wrapper(start_processes, original, assigned=("__doc__",), updated=())
        ledger.patch(spawn, "start_processes", lambda _original: start_processes)
        if tmp.start_processes is original:
            ledger.patch(tmp, "start_processes", lambda _original: start_processes)
        namespace = self.session.namespace
        bound = [k for k, v in namespace.items() if v is original]  # ``from torch.multiprocessing import ...``
        namespace.update(dict.fromkeys(bound, start_processes))
        ledger.call(lambda: namespace.update({k: original for k in bound if namespace.get(k) is start_processes}))
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        ledger.call(lambda: _restore_signal_handlers(saved))

    def _start(self, original: Callable, fn: Callable, args: tuple, nprocs: int, join: bool, daemon: bool,
               start_method: str) -> Any:
        if self._store is None:
            self._store = Store()
        launch = Launch(len(self.launches), nprocs, start_method, user_function(fn, args))
        self.launches.append(launch)
        elastic = getattr(fn, "__module__", "").startswith("torch.distributed.elastic")
        spec = RankSpec(self._store.address, f"jupyter_perf/{os.getpid()}/{launch.index}", self.session.interval,
                        launcher=f"torchelastic ({start_method})" if elastic else start_method)
        launch.prefix = spec.prefix
        entry = RankEntry(fn, spec, self._ledger if start_method == "fork" else None)
        launch.context = original(entry, args, nprocs, join=False, daemon=daemon, start_method=start_method)
        if not join:
            return launch.context
        launch.join()
        return None

    # ---------------------------------------------------------------- results
    def launched(self) -> bool:
        """Whether the run launched ranks (then they bring the steps)."""
        return bool(self.launches)

    def live(self) -> list[dict[str, Any]]:
        """The latest summary of each rank of the current launch, rank order. Called from the dashboard's thread:
        the store may close meanwhile, and then there is nothing to show."""
        store, launches = self._store, self.launches
        if not launches or store is None:
            return []
        launch = launches[-1]
        try:
            return [v for _i, v in sorted(store.get(launch.prefix, "live", range(launch.nprocs)).items())]
        except Exception:  # noqa: BLE001 - closed under us at the run's end
            return []

    def finish(self, report: Any) -> None:
        """The last launch's rank Reports, merged into ``report`` (the cell's); then the store closes."""
        if not self.launches:
            return
        from ..report import Report
        from .merging import merge

        launch, store = self.launches[-1], self._store
        if store is None:
            return
        try:
            received = launch.collect(store)
        finally:
            store.close()
            self._store = None
        ranks = [Report.from_dict(data) for _index, data in sorted(received.items())]
        merge(ranks, into=report, missing=launch.missing(received), failed_first=launch.failed_index)
        report.signals["distributed"].update(launches=len(self.launches), function=launch.function)
        if len(self.launches) > 1:
            report.notes.append(f"the cell launched ranks {len(self.launches)} times: these are the last launch's")


class Launch:
    """One call of ``start_processes``: its ranks, and how it ended."""

    def __init__(self, index: int, nprocs: int, start_method: str, fn: Callable):
        self.index, self.nprocs, self.start_method = index, nprocs, start_method
        self.function = getattr(fn, "__name__", None)
        self.prefix = ""
        self.context: Any = None
        #: The rank index whose failure the launcher raised, if one did.
        self.failed_index: int | None = None

    def join(self) -> None:
        """torch's join, with a grace period for the others after a failure, and Ctrl-C handled (module docstring)."""
        from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

        context = self.context
        try:
            while not context.join(grace_period=GRACE_S):
                pass
        except (ProcessRaisedException, ProcessExitedException) as exc:
            self.failed_index = exc.error_index
            raise
        except KeyboardInterrupt:
            stop(context.processes)
            raise
        finally:
            for path in context.error_files:  # torch reads them and leaves them behind
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def collect(self, store: Store) -> dict[int, dict[str, Any]]:
        """Every rank's Report sent so far; ranks still running get ``REPORT_WAIT_S`` to send theirs."""
        indices = range(self.nprocs)
        received = store.get(self.prefix, "report", indices)
        deadline = time.monotonic() + REPORT_WAIT_S
        while len(received) < self.nprocs and time.monotonic() < deadline:
            waiting = [i for i in indices if i not in received and self._alive(i)]
            if not waiting:
                break
            time.sleep(0.05)
            received.update(store.get(self.prefix, "report", waiting))
        return received

    def missing(self, received: dict[int, Any]) -> list[dict[str, Any]]:
        """Ranks that sent no Report, with how their process ended (``exitcode`` < 0: killed by that signal)."""
        missing = []
        for index in range(self.nprocs):
            if index not in received:
                process = self.context.processes[index] if self.context is not None else None
                missing.append({"index": index, "exitcode": process.exitcode if process is not None else None,
                                "alive": bool(process is not None and process.is_alive())})
        return missing

    def _alive(self, index: int) -> bool:
        return self.context is not None and self.context.processes[index].is_alive()


def stop(processes: list[Any]) -> None:
    """Ranks stopped after Ctrl-C: each gets time on the interrupt it shared, then SIGINT, SIGTERM, SIGKILL."""
    for action, wait in ((None, INTERRUPT_WAIT_S), (signal.SIGINT, GRACE_S), (signal.SIGTERM, GRACE_S),
                         (signal.SIGKILL, None)):
        alive = [p for p in processes if p.is_alive()]
        if not alive:
            return
        if action is not None:
            for process in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, action)
        deadline = time.monotonic() + (wait or GRACE_S)
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))


def _restore_signal_handlers(saved: Mapping[signal.Signals, Any]) -> None:
    """Put back SIGINT and SIGTERM where torchelastic left its own handlers installed: accelerate's
    notebook_launcher runs through it, and afterwards Ctrl-C in any cell raised torchelastic's
    ``SignalException`` instead of KeyboardInterrupt (torch 2.13; with or without the profiler). A handler the
    cell installed itself stays."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in saved.items():
        current = signal.getsignal(sig)
        if handler is not None and getattr(current, "__module__", "").startswith("torch.distributed.elastic"):
            signal.signal(sig, handler)
