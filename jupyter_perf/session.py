"""Session: start the sampler and the probes around a run, and build the Report after it.

Everything a session adds to the process goes through one Ledger and is
removed in ``stop()``, whatever happened in between, so a hundred profiled
runs leave nothing behind. Reading the results (signals, peaks, environment)
happens after the probes are gone: the run itself only pays for counting.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from .probes import costs
from .probes.dataloader import DataLoaderProbe
from .probes.namespace import GraphCensus, names_by_id
from .probes.patching import Ledger
from .probes.steps import StepTrace
from .report import Report
from .sampling.host import FirstStepReads, RunDelay
from .sampling.sampler import Sampler
from .sampling.timeline import Timeline

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


class Extension(Protocol):
    """Something a caller adds to a run (``Session(extensions=...)``): installed with the probes, told the Report
    when the run ends. The layer above the session supplies it, so the session imports none of it."""

    def install(self, ledger: Ledger) -> None: ...

    def finish(self, report: Report) -> None: ...

    def live(self) -> list[dict[str, Any]]: ...

    def launched(self) -> bool: ...


class Session:
    """One profiled run. ``start()``, run the code, ``stop(error)`` → Report.

    ``timeline`` and ``trace`` may be read from another thread while the run
    goes on (the live dashboard does): both are append-only and locked where needed.
    """

    def __init__(
        self,
        namespace: dict[str, Any] | None = None,
        source: str = "",
        interval: float = 0.1,
        deep: bool = False,
        trace_dir: str | Path | None = None,
        extensions: Sequence[Callable[[Session], Extension]] = (),
    ):
        self.namespace = namespace if namespace is not None else {}
        self.source = source
        self.interval = interval
        self.deep = deep
        self.trace_dir = Path(trace_dir) if trace_dir else Path.cwd() / "perfprofile-traces"
        self.timeline = Timeline()
        self.trace = StepTrace()
        self.sampler = Sampler(self.timeline, interval, steps=lambda: self.trace.steps_closed)
        self._ledger = Ledger()
        self._torch = False
        self._probes: dict[str, Any] = {}
        self._deep_probe: Any = None
        self._cuda_peak_reset = False
        self.started_at = ""
        self._t0 = 0.0
        self.running = False
        #: What the caller adds to this run beyond the probes (distributed/launch.py: the ranks a launcher starts).
        self._extensions = [make(self) for make in extensions]

    # ------------------------------------------------------------------ run
    def start(self) -> None:
        self.started_at = datetime.datetime.now().isoformat(timespec="seconds")
        self._torch = _torch_wanted(self.source)
        self.sampler.start()
        self._first_reads = FirstStepReads(self.sampler.host)  # reads of the first step are not the data
        self._run_delay = RunDelay()  # time the profiled thread waited for a CPU other processes held
        try:
            if self._torch:
                self._install_probes()
        except BaseException:
            self._ledger.restore()
            self.sampler.stop()
            raise
        # containers' graphs counted at the start, at steps 1, 2, 4, ... and at the end
        self._census = GraphCensus(self.namespace, steps=lambda: self.trace.steps_closed)
        if self.trace.on_account is not None:
            accounted, census, reads = self.trace.on_account, self._census.tick, self._first_reads.tick

            def on_account() -> None:
                accounted()
                census()
                reads()

            self.trace.on_account = on_account
        self.running = True
        self._t0 = time.perf_counter()

    def _install_probes(self) -> None:
        import torch

        from .probes.functions import DataFunctionProbe
        from .probes.modules import ModuleProbe
        from .probes.training import TrainingProbe

        probes: dict[str, Any] = {
            "data": DataLoaderProbe(self.trace),
            "functions": DataFunctionProbe(self.trace, self.namespace, self.source),
            "modules": ModuleProbe(self.trace, self.namespace),
            "training": TrainingProbe(self.trace),
        }
        if torch.cuda.is_available():
            from .probes.transfers import TransferProbe

            self.trace.cuda_possible = True
            probes["transfers"] = TransferProbe(self.trace)
        if torch.distributed.is_available():  # after "training": its backward wraps the training probe's
            from .probes.collectives import CollectiveProbe

            probes["distributed"] = CollectiveProbe(self.trace, self.namespace)
        for probe in [*probes.values(), *self._extensions]:
            probe.install(self._ledger)
        self.trace.on_account = probes["modules"].maybe_rescan
        self._ledger.call(lambda: setattr(self.trace, "on_account", None))
        self._probes = probes
        if torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
            self._cuda_peak_reset = True
        latest = self.timeline.latest() or {}
        self._before = costs.before(self.namespace, latest.get("rss"))
        if self.deep:
            from .probes.deep import DeepProbe

            self._deep_probe = DeepProbe(self.trace_dir)
            self._deep_probe.start()

    def stop(self, error: BaseException | None = None) -> Report:
        """Remove every probe, stop sampling, and build the Report (runs.py diagnoses it)."""
        late = _wait_for_queued_gpu_work()
        error = error or late
        wall = time.perf_counter() - self._t0
        self.running = False
        deep = None
        try:
            if self._deep_probe is not None:
                deep = self._deep_probe.stop()
            self.trace.finish()
        finally:
            self._ledger.restore()
            self.sampler.stop()
        report = self._report(wall, error)
        report.deep = deep
        for extension in self._extensions:  # (ranks this run launched: their Reports, merged into this one)
            extension.finish(report)
        return report

    def recorded_calls(self) -> list[tuple[Any, Any]]:
        """(model, RecordedCall) for the first call of each model in this run (probes/inputs.py): the kernel's
        state keeps them for the numerics guard to replay."""
        modules = self._probes.get("modules")
        return list(modules.recorded.values()) if modules is not None else []

    def ranks_live(self) -> list[dict[str, Any]]:
        """The latest live summary of each rank this run launched (distributed/launch.py), for the dashboard."""
        return [row for extension in self._extensions for row in extension.live()]

    # --------------------------------------------------------------- report
    def _report(self, wall: float, error: BaseException | None) -> Report:
        trace = self.trace
        series = trace.series.columns()
        if "start" in series:  # on the timeline's clock (its t = 0), so steps and samples line up in one chart
            series["start"] = [s - self.sampler.t0 if s is not None else None for s in series["start"]]
        steps = trace.steps
        report = Report(
            source=self.source,
            started_at=self.started_at,
            wall_time=wall,
            steps=steps,
            step_anchor=trace.anchor if steps else None,
            step_time_total=trace.wall_total,
            samples=trace.samples if steps and trace.samples_known and trace.samples else None,
            phases={k: v / steps for k, v in trace.phase_totals.items()} if steps else {},
            phase_totals=dict(trace.phase_totals) if steps else {},
            step_series=series,
            timeline=self._timeline_columns(),
            notes=list(self.sampler.notes),
            interrupted=isinstance(error, KeyboardInterrupt),
        )
        if steps and trace.wall_total > 0:
            report.throughput = {
                "steps_per_s": steps / trace.wall_total,
                "samples_per_s": report.samples / trace.wall_total if report.samples else None,
            }
            if trace.tokens:
                real = trace.real_tokens
                report.throughput.update(tokens_per_s=trace.tokens / trace.wall_total,
                                         real_tokens_per_s=real / trace.wall_total)
        if error is not None and not report.interrupted:
            report.error = {"type": type(error).__name__, "message": str(error)[:2000], "oom": _is_oom(error)}
        report.peaks = self._peaks()
        report.environment = self._environment()
        self._costs(report)
        report.signals = self._signals(report)
        if not self._torch:
            report.notes.append("torch was not imported: no step probes ran, timelines and peaks only")
        elif not steps and not any(extension.launched() for extension in self._extensions):  # (ranks bring theirs)
            report.notes.append(
                "no steps recognised (no DataLoader batch, optimizer step or model call): timelines and peaks only"
            )
        return report

    def _costs(self, report: Report) -> None:
        """``Report.compute`` and ``Report.memory_breakdown`` for the steps' model (probes/costs.py)."""
        modules = self._probes.get("modules")
        if modules is None or not report.steps:
            return
        model = modules.model(self.trace.primary)
        if model is None:
            return
        model = _unwrapped(model)
        optimizers = list(self._probes["training"].objects.values())
        tokens = self.trace.tokens / report.steps if self.trace.tokens else None
        call = modules.recorded.get(self.trace.primary, (None, None))[1]
        report.compute, report.memory_breakdown, notes = costs.measure(
            model, call, modules.batch_dim(self.trace.primary), modules.models(), optimizers, self._before, report,
            tokens, modules.autocast_dtype)
        report.notes.extend(notes)

    def _timeline_columns(self) -> dict[str, list]:
        """The sampled columns, with the live step count of the samples taken before the step's anchor
        was decided replaced by the true count (steps.py), so fits against steps see true step numbers."""
        columns = self.timeline.columns()
        t0 = self.sampler.t0
        counts = columns.get("steps")
        if counts:
            for i, (t, live) in enumerate(zip(columns["t"], counts)):
                true = self.trace.steps_at(t0 + t) if t is not None else None
                if true is not None:
                    counts[i] = true
        return columns

    def _peaks(self) -> dict[str, float]:
        peaks = {f"{key}_bytes": value for key, value in self.timeline.peaks.items() if _is_memory_column(key)}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            # The allocator's own high-water mark sees peaks between samples; valid for this run
            # when reset at the start, or when CUDA was first initialised during the run.
            exact = torch.cuda.max_memory_allocated()
            peaks["cuda_allocated_bytes"] = max(peaks.get("cuda_allocated_bytes", 0), exact)
        return peaks

    def _environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": psutil.cpu_count(),
            "cpu_available": _available_cpus(),
            "mem_total": psutil.virtual_memory().total,
            "nvml": self.sampler.gpu.available,
            "devices": list(self.sampler.gpu.devices),
        }
        torch = sys.modules.get("torch")
        if torch is not None:
            env["torch"] = torch.__version__
            env["cuda"] = torch.version.cuda
        return env

    def _signals(self, report: Report) -> dict[str, Any]:
        timeline = report.timeline
        signals: dict[str, Any] = {"gpu_timing": "cuda_events" if self.trace.device_timed_steps else "host"}
        names = names_by_id(self.namespace)
        probes = self._probes
        if probes:
            signals["dataloaders"] = probes["data"].signals(names)
            signals["data_functions"] = probes["functions"].signals()
            signals["forward"], signals["models"] = probes["modules"].signals(names)
            signals["backward"], signals["optimizers"] = probes["training"].signals()
            if "transfers" in probes:
                signals.update(probes["transfers"].signals())
            if "distributed" in probes and (facts := probes["distributed"].signals(report.steps)):
                signals["distributed"] = facts
            signals["retained_graphs"] = self._census.finish(steps=report.steps)
        if self.trace.tokens:
            real = self.trace.real_tokens
            signals["tokens"] = {"tokens": self.trace.tokens, "real_tokens": real,
                                 "padding_share": 1 - real / self.trace.tokens}
        samples = [s for s in report.step_series.get("samples", []) if s is not None]
        signals["samples_per_step"] = statistics.median(samples) if samples else None
        if self.sampler.host.io_available:
            read, write, chars = self.sampler.host.io_totals()
            signals["io"] = {"read_bytes": read, "write_bytes": write, "read_chars": chars,
                             "first_step_read_bytes": self._first_reads.read_bytes,
                             "first_step_s": self._first_reads.seconds}
        signals["cpu"] = {
            "logical": psutil.cpu_count(),
            "available": _available_cpus(),
            "mean_util": _mean(timeline.get("cpu_percent")),
            "proc_mean_util": _mean(timeline.get("proc_cpu_percent")),
            "run_delay_share": self._run_delay.share(),
        }
        torch = sys.modules.get("torch")
        if torch is not None:
            signals["cpu"].update(torch_threads=torch.get_num_threads(),
                                  interop_threads=torch.get_num_interop_threads())
            signals["cuda"] = _cuda_facts(torch)
        signals["gpu"] = [
            {
                "index": d["index"],
                "name": d["name"],
                "mem_total": d["mem_total"],
                "mean_util": _mean(timeline.get(f"gpu{d['index']}_util")),
                "peak_mem_used": self.timeline.peaks.get(f"gpu{d['index']}_mem_used"),
            }
            for d in self.sampler.gpu.devices
        ]
        return signals


def _wait_for_queued_gpu_work() -> BaseException | None:
    """Let the GPU finish what the cell queued, so the cell's wall time includes it.

    A loop that runs ahead of the device ends on the host long before its last
    kernels do (measured on an H200: 30 conv-net steps queued in 0.14 s, done
    on the GPU after 0.23 s). One synchronize at the end costs the cell
    nothing it would not pay at its next use of a result. A CUDA error raised
    here (an asynchronous one, a device-side assert) is the cell's own: it is
    returned to become the report's error rather than cost the report.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        try:
            torch.cuda.synchronize()
        except RuntimeError as exc:
            return exc
    return None


def _unwrapped(model: Any) -> Any:
    """The module a DistributedDataParallel / DataParallel wrapper holds: its forward replayed for FLOPs must
    not run the wrapper's own collectives (a DDP buffer broadcast in one rank only would wait forever)."""
    import torch

    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrappers) else model


def _torch_wanted(source: str) -> bool:
    """Probe torch if the user already imported it, or if this code will (and it is installed)."""
    if "torch" in sys.modules:
        return True
    return "torch" in source and importlib.util.find_spec("torch") is not None


def _cuda_facts(torch: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"initialized": torch.cuda.is_initialized()}
    if facts["initialized"]:
        device = torch.cuda.current_device()
        facts.update(
            device_name=torch.cuda.get_device_name(device),
            capability=list(torch.cuda.get_device_capability(device)),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32_cudnn=torch.backends.cudnn.allow_tf32,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    return facts


def _is_memory_column(key: str) -> bool:
    return key in ("rss", "rss_children", "rss_total", "cuda_allocated", "cuda_reserved") or key.endswith(
        ("_mem_used", "_proc_mem")
    )


def _is_oom(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if isinstance(error, MemoryError) or (torch is not None and isinstance(error, torch.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _OOM_MARKERS)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return psutil.cpu_count() or 1


def _mean(values: list | None) -> float | None:
    present = [v for v in values or [] if v is not None]
    return sum(present) / len(present) if present else None
