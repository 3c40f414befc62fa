"""One rank of a distributed run, profiled in its own process, its Report handed back when it ends.

A rank runs the same Session as a notebook cell (sampler thread, step probes,
collectives), started inside the rank and removed when it ends, whatever
launched it:

* ``RankEntry`` is what a launcher the notebook called runs in each rank
  instead of the user's function (launch.py puts it there); it is picklable, so
  ``mp.spawn`` can send it to a fresh interpreter. A *forked* rank inherits
  the parent's probes as they were at the fork, with their patches in place
  but their sampler thread gone (only the forking thread survives a fork):
  it takes them out first, then starts its own;
* ``rank_profile()`` is the same as a context manager, for a script started by
  ``torchrun`` (``python -m jupyter_perf.run`` uses it): the Report is written
  to ``<out>/rank-<rank>.json`` instead.

While it runs, a rank sends a small summary about twice a second (steps,
step rate, the last step's phases, CPU, memory) for the parent's dashboard.
When it ends, however it ends, it builds its Report and sends it: on an
exception (the Report says which), on Ctrl-C (``interrupted``), on SIGTERM
(a launcher stopping the survivors of a failed rank: error ``Terminated``),
then lets the rank end as it would have. Further Ctrl-C's are ignored while
the Report is being built and sent, so a second interrupt cannot lose it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

from .channel import Link, RankSpec

#: Seconds between two live summaries.
LIVE_PERIOD = 0.5
#: After SIGTERM, how long a rank may take to send its Report before it ends without it (``_Sigterm``).
GRACE_S = 5.0
#: A rank's Report travels with at most this many timeline rows and step rows, their values to 6 significant
#: digits (its peaks and totals are exact): a thousand ranks' Reports must load in about a second, and a per-rank
#: view needs no more.
TIMELINE_ROWS = 128
SERIES_ROWS = 256


class Terminated(BaseException):
    """The launcher stopped this rank (SIGTERM), typically because another rank failed."""


class RankEntry:
    """Runs ``fn(index, *args)`` under a rank Session, as the launcher's target in each rank."""

    def __init__(self, fn: Callable, spec: RankSpec, parent_ledger: Any = None):
        self.fn = fn
        self.spec = spec
        #: The parent's probes, inherited by a forked rank: restored (taken out) in the rank before its own start.
        self.parent_ledger = parent_ledger

    def __getstate__(self) -> dict[str, Any]:
        return {"fn": self.fn, "spec": self.spec}  # a spawned rank starts clean: nothing to take out

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.fn, self.spec, self.parent_ledger = state["fn"], state["spec"], None

    def __call__(self, index: int, *args: Any) -> Any:
        if self.parent_ledger is not None:
            self.parent_ledger.restore()
            _fresh_nvml()
        with _ends_by_sigterm(), rank_session(self.spec, index, user_function(self.fn, args)):
            return self.fn(index, *args)


@contextlib.contextmanager
def rank_profile(out: str | os.PathLike = "perfprofile-ranks", interval: float = 0.1) -> Iterator[Any]:
    """Profile this rank of a script (``torchrun ... train.py``) and write its Report to ``out/rank-<rank>.json``.

    ``%perfprofile --load out`` (or ``jupyter_perf.distributed.load(out)``)
    then shows every rank's Report, merged, in a notebook. Public as ``jupyter_perf.rank_profile``.
    """
    with _ends_by_sigterm(), rank_session(script_spec(out, interval), _env_int("LOCAL_RANK", 0)) as session:
        yield session


def run_as_rank(work: Callable[[], Any], spec: RankSpec, namespace: dict[str, Any], source: str) -> None:
    """``work()`` (a script's code, run in ``namespace``) as this process's rank (``python -m jupyter_perf.run``)."""
    with _ends_by_sigterm(), rank_session(spec, _env_int("LOCAL_RANK", 0), namespace=namespace, source=source):
        work()


def script_spec(out: str | os.PathLike, interval: float) -> RankSpec:
    """A rank started outside the notebook: its Report goes to ``out``."""
    return RankSpec(None, "", interval, str(out), "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else "script")


@contextlib.contextmanager
def _ends_by_sigterm() -> Iterator[None]:
    """A rank stopped by SIGTERM ends by it, once its Report is out (``rank_session``)."""
    try:
        yield
    except Terminated:
        _die_by(signal.SIGTERM)


@contextlib.contextmanager
def rank_session(spec: RankSpec, index: int, fn: Callable | None = None,
                 namespace: dict[str, Any] | None = None, source: str | None = None) -> Iterator[Any]:
    """A Session around this rank's work; its Report sent to the parent (or written to ``spec.out_dir``) at the end.

    ``fn`` is the user's training function where known: its module's namespace
    and its code tell the probes which names are models and data functions.
    """
    from ..session import Session

    if fn is not None and namespace is None:
        namespace, source = _code_of(fn)
    session = Session(namespace if namespace is not None else {}, source=source or "", interval=spec.interval)
    link = Link(spec, index) if spec.address else None
    session.start()
    on_main = threading.current_thread() is threading.main_thread()  # (signal handlers live there only)
    sigterm = _Sigterm() if on_main else None
    live = _LiveSummaries(session, link, index) if link else None
    error: BaseException | None = None
    try:
        yield session
    except BaseException as exc:
        error = exc
        raise
    finally:
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN) if on_main else None
        try:
            if live is not None:
                live.stop()
            report = session.stop(error)
            identify(report, spec, index, fn)
            deliver(report, spec, link)
        finally:
            if on_main:
                signal.signal(signal.SIGINT, interrupt)
            if sigterm is not None:
                sigterm.close()


class _Sigterm:
    """SIGTERM while a rank is profiled: its Report first, then the death it asked for.

    The handler raises ``Terminated`` in the main thread at its next bytecode, and the rank's Report is built on
    the way out. But a main thread stuck in a C++ call (a collective waiting for a dead peer, a rendezvous) runs
    no handler; the C-level handler still writes the signal's number to the wakeup fd at once, so a thread
    watching it kills the process if the Report is not out ``GRACE_S`` later.
    (The process's wakeup fd, asyncio's if it set one, is put back when the rank ends.)
    """

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        self._write = write
        self._wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._previous = signal.signal(signal.SIGTERM, _terminate)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="jupyter-perf-rank-sigterm", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while data := os.read(self._read, 64):
            if signal.SIGTERM in data and not self._done.wait(GRACE_S):
                os.kill(os.getpid(), signal.SIGKILL)  # (only the main thread may restore SIGTERM's default)

    def close(self) -> None:
        self._done.set()
        signal.set_wakeup_fd(self._wakeup)
        signal.signal(signal.SIGTERM, self._previous)
        os.close(self._write)  # the watcher reads the end of the pipe and returns
        self._thread.join()
        os.close(self._read)


def identify(report: Any, spec: RankSpec, index: int, fn: Callable | None) -> None:
    """Who this rank is, in ``report.signals['distributed']``: rank, world size, host, pid, launcher."""
    facts = report.signals.get("distributed") or {}
    facts.setdefault("rank", _env_int("RANK", index))
    facts.setdefault("world_size", _env_int("WORLD_SIZE", None))
    facts.update(index=index, local_rank=_env_int("LOCAL_RANK", index), host=socket.gethostname(), pid=os.getpid(),
                 launcher=spec.launcher, function=getattr(fn, "__name__", None))
    report.signals["distributed"] = facts


def deliver(report: Any, spec: RankSpec, link: Link | None) -> None:
    """Send the Report to the parent, or write it to ``spec.out_dir/rank-<rank>.json`` (atomically)."""
    data = thin(report.to_dict())
    if link is not None:
        link.send("report", data)
        return
    out = Path(spec.out_dir or ".")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"rank-{report.signals['distributed']['rank']:05d}.json"
    partial = path.with_suffix(f".json.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data), encoding="utf-8")
    partial.replace(path)


def thin(data: dict[str, Any]) -> dict[str, Any]:
    """The rank Report as it travels: per-core CPU columns dropped (the parent samples the machine), timeline
    and step rows thinned to ``TIMELINE_ROWS`` / ``SERIES_ROWS``, their floats to 6 significant digits."""
    timeline = {k: v for k, v in data.get("timeline", {}).items() if not (k.startswith("cpu") and k[3:].isdigit())}
    data["timeline"] = _every_nth(timeline, TIMELINE_ROWS)
    data["step_series"] = _every_nth(data.get("step_series", {}), SERIES_ROWS)
    return data


def _every_nth(columns: dict[str, list], rows: int) -> dict[str, list]:
    length = max((len(v) for v in columns.values()), default=0)
    step = max(1, -(-length // rows))
    return {k: [float(f"{x:.6g}") if isinstance(x, float) else x for x in v[::step]] for k, v in columns.items()}


class _LiveSummaries:
    """A daemon thread that sends the rank's live summary to the parent every ``LIVE_PERIOD`` seconds."""

    def __init__(self, session: Any, link: Link, index: int):
        self.session, self.link, self.index = session, link, index
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jupyter-perf-rank-live", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(LIVE_PERIOD):
            if not self.link.send("live", live_summary(self.session, self.index)):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def live_summary(session: Any, index: int) -> dict[str, Any]:
    """Steps so far, the latest step's wall time and phases, CPU and memory: one dashboard row."""
    trace, latest = session.trace, session.timeline.latest() or {}
    last = trace.series.latest() or {}
    gpus = [latest.get(f"gpu{d['index']}_util") for d in session.sampler.gpu.devices]
    return {
        "index": index,
        "t": latest.get("t"),
        "steps": trace.steps_closed,
        "step_s": last.get("wall"),
        "phases": {k: v for k, v in last.items() if k not in ("start", "wall", "samples", "tokens")},
        "cpu": latest.get("proc_cpu_percent"),
        "rss": latest.get("rss_total"),
        "gpu_util": max((g for g in gpus if g is not None), default=None),
        "cuda_allocated": latest.get("cuda_allocated"),
    }


def user_function(fn: Callable, args: tuple) -> Callable:
    """The user's training function behind a launcher's own: torchelastic's ``_wrap`` (what accelerate's
    ``notebook_launcher`` starts) gets it as its first argument, accelerate's ``PrepareForLaunch`` holds it."""
    if getattr(fn, "__module__", "").startswith("torch.distributed.elastic") and args:
        fn = args[0]
    return getattr(fn, "launcher", fn)


def _code_of(fn: Callable) -> tuple[dict[str, Any] | None, str]:
    """The function's module namespace and its source, where Python can tell."""
    namespace = getattr(inspect.unwrap(fn), "__globals__", None)
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    return namespace, source


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated("SIGTERM: the launcher stopped this rank")


def _die_by(signum: int) -> None:
    """End the rank by ``signum`` with its default action, as it would have ended unprofiled."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _fresh_nvml() -> None:
    """A forked rank initialises NVML for itself rather than reuse the parent's handles."""
    from ..sampling.gpu import forget_nvml

    forget_nvml()


_Default = TypeVar("_Default", int, None)


def _env_int(name: str, default: _Default) -> int | _Default:
    value = os.environ.get(name)
    return int(value) if value is not None and value.strip().lstrip("-").isdigit() else default

