"""The live dashboard: shown when a profiled cell starts, updated while it runs, settled into the summary.

``open_dashboard(session, live)`` is called by the magic before ``session.start()``:

* it returns None where widgets cannot be shown (plain IPython, a terminal,
  ``--no-live``, anywidget missing, or the dashboard failed to open),
  and the magic displays the Report's text/HTML summary instead;
* otherwise it displays a :class:`~.live_widget.LiveDashboard` and starts one
  daemon thread that, while the session runs, reads what the sampler and the
  probes recorded and pushes it to the browser, one comm message per push: ten
  times a second for the first ``START_SECONDS`` (the first numbers reach the
  page within a fraction of a second), then twice a second. Each push carries
  the samples taken since the last one, which the browser plays back at their
  own cadence, and the run's status now: its elapsed time, the step count the
  probes keep on the hot path (``StepTrace.steps_closed``, right from the
  first step, before the profiler has decided what delimits a step), the
  rates, the last step's phases and the ranks. The thread reads the Timeline,
  the StepTrace, the sampler's clock and device list, nothing else: never
  torch, never the user's objects.

``Dashboard.finish(report)`` stops and joins the thread, then replaces the
dashboard's output in place with the Report's summary (``ui/summary.py``): a
static HTML fragment with its text fallback, so a saved notebook shows it
without a kernel and carries no widget reference.

Widget updates from a thread reach the browser while the cell runs because the
kernel's IOPub socket is served by its own thread; a single long C call that
holds the GIL (a big matmul, a blocking read) pauses them until it returns.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections import deque
from typing import Any

import psutil
from IPython.display import display

from .. import state
from ..report import PHASES
from .frontend_detect import current_shell, widgets_unavailable
from .timeline_panels import MARK_ROLLOVER, ROLLOVER, build_timeline, machine_share, plot_row, step_interval

#: Seconds between two pushes at the least. Each message costs the Jupyter server and the browser a
#: little whatever it carries, and playback hides the push rate, so 2 Hz (≤ 4 Hz, what the browser
#: takes without falling behind) at the price of half a second more delay.
PUSH_PERIOD = 0.5
#: For the first START_SECONDS of a run the updater looks every START_PERIOD and pushes what changed, so
#: the first samples and the first step count reach the page at once: a dozen small messages, once.
START_PERIOD = 0.1
START_SECONDS = 2.0
#: Extra playback delay in the browser on top of one push period, for network and scheduling jitter.
PLAYBACK_MARGIN = 0.15
#: An updater whose session never started (``start()`` raised) gives up after this long.
START_TIMEOUT = 60.0
#: Seconds of history the throughput is measured over, and the least it needs.
RATE_WINDOW = 2.0
MIN_RATE_SPAN = 0.25
#: How long ``finish()`` waits for the updater thread.
JOIN_TIMEOUT = 10.0


def open_dashboard(session: Any, live: bool) -> Dashboard | None:
    """Show the live dashboard for ``session`` (before it starts), or return None for the static summary."""
    if not live:
        return None
    shell = current_shell()
    reason = widgets_unavailable(shell)
    if reason is not None:
        if getattr(shell, "kernel", None) is not None:  # a kernel that could have shown it: say why not
            state.current().say_once(
                "no-widgets", f"live dashboard off: {reason}; the summary is shown when the run ends"
            )
        return None
    dashboard = None
    try:
        dashboard = Dashboard(session, shell)
        dashboard.show()
    except Exception as exc:  # noqa: BLE001 - a broken frontend must never cost the user their run
        if dashboard is not None:
            dashboard.close()
        state.current().say_once(
            "open-failed", f"live dashboard failed to open ({type(exc).__name__}: {exc}); showing the summary only"
        )
        return None
    return dashboard


class Dashboard:
    def __init__(self, session: Any, shell: Any):
        from .live_widget import LiveDashboard
        from .svg import PHASE_COLORS

        kernel = state.current()
        if kernel.dashboard is not None:  # the last dashboard's widget, kept open until now so its messages
            kernel.dashboard.close()  # could still arrive
            kernel.dashboard = None
        self.session = session
        self.shell = shell
        devices = list(session.sampler.gpu.devices)
        self._gpus = [int(d["index"]) for d in devices]
        self._cores = psutil.cpu_count() or 1  # as many as the sampler's cpu{i} columns
        self._period = max(PUSH_PERIOD, session.interval)
        meta = {
            "cores": self._cores,
            "gpus": [{"index": d["index"], "name": d["name"], "mem_total": d["mem_total"]} for d in devices],
            "gpu_note": session.sampler.gpu.note,
            "phase_colors": {p: PHASE_COLORS[p] for p in PHASES},
            "delay": self._period + PLAYBACK_MARGIN,
            "panels": build_timeline(devices),
            "rollover": ROLLOVER,
            "mark_rollover": MARK_ROLLOVER,
        }
        self.widget = LiveDashboard(meta=meta)
        self._handle: Any = None
        self._hooked: Any = None
        self.cleared = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._seen = 0
        self._seq = 0
        self._pushed_steps = 0
        self._window: deque[tuple[float, int]] = deque([(0.0, 0)])  # (run time, steps): none at the start
        self._mark_every = 1
        self._mark_bucket: int | None = None
        # The thread runs in a copy of this context: on ipykernel 7 the parent header (which cell
        # an output or comm message belongs to) lives in context variables; on 6 it is global.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name="jupyter-perf-dashboard", daemon=True
        )

    # ----------------------------------------------------------------- life
    def show(self) -> None:
        self._handle = display(self.widget, display_id=True)
        publisher = getattr(self.shell, "display_pub", None)
        register = getattr(publisher, "register_hook", None)
        if register is not None:
            register(self._watch_output)
            self._hooked = publisher
        self._thread.start()

    def finish(self, report: Any) -> None:
        """Stop the updates and settle into the summary (in place, or anew if the cell cleared its output)."""
        self._stop_updates()
        try:
            self.widget.done = True
            if self.cleared or self._handle is None:
                display(report)
            else:
                self._handle.update(report)
        except Exception as exc:  # noqa: BLE001 - whatever the frontend did, the summary is shown
            state.current().say_once(
                "finish-failed", f"the dashboard could not show the summary ({type(exc).__name__}: {exc})"
            )
            display(report)
        if self.error is not None:
            state.current().say_once(
                "update-failed",
                f"the live dashboard stopped updating ({type(self.error).__name__}: {self.error}); "
                "the summary is complete",
            )
        state.current().dashboard = self  # closed when the next dashboard opens

    def close(self) -> None:
        """Stop the updates and close the widget (the next dashboard does this to the previous one)."""
        self._stop_updates()
        with contextlib.suppress(Exception):  # a comm already gone: nothing left to close
            self.widget.close()

    def _stop_updates(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        if self._hooked is not None:
            self._hooked.unregister_hook(self._watch_output)
            self._hooked = None

    def _watch_output(self, msg: dict) -> dict:
        """Display-publisher hook: notice the cell clearing its output (the dashboard went with it)."""
        if msg.get("msg_type") == "clear_output":
            self.cleared = True
        return msg

    # -------------------------------------------------------------- updates
    def _loop(self) -> None:
        started, ran = time.monotonic(), False
        try:
            while not self._stop.wait(self._wait()):
                if self.session.running:
                    ran = True
                    self.push()
                elif ran or time.monotonic() - started > START_TIMEOUT:
                    return  # the run ended (finish() takes over), or it never started
        except BaseException as exc:  # noqa: BLE001 - never into the user's cell: finish() says so once
            self.error = exc

    def _wait(self) -> float:
        """Seconds until the next look: START_PERIOD until the run is START_SECONDS old, then the push period."""
        if not self.session.running or self._run_time() < START_SECONDS:
            return min(START_PERIOD, self._period)
        return self._period

    def _run_time(self) -> float:
        """Seconds since the run's sampling started: the clock of the rows' ``t``, read now."""
        return time.perf_counter() - self.session.sampler.t0

    def push(self) -> bool:
        """Send what was sampled since the last push and the status now; False when neither changed."""
        rows = self.frame_rows()
        status = self.status()
        if not rows and status["steps"] == self._pushed_steps:
            return False
        self._seq += 1
        self._pushed_steps = status["steps"]
        self.widget.frame = {"seq": self._seq, "rows": rows, "status": status}  # one trait: one comm message
        return True

    def frame_rows(self) -> list[dict[str, Any]]:
        """The Timeline rows sampled since the last call, as the browser wants them."""
        columns, count = self.session.timeline.since(self._seen)
        self._seen = count
        times = columns.get("t") or []
        return [self._row({key: values[i] for key, values in columns.items()}) for i in range(len(times))]

    def status(self) -> dict[str, Any]:
        """The run now: seconds since it started (``t``, the rows' clock), steps, rates, the last step, the ranks.

        The count is ``steps_closed``, kept on the profiled thread as each step closes; samples and tokens
        per step come from the steps accounted so far (at most ``ACCOUNT_EVERY_S`` behind).
        """
        trace = self.session.trace
        t, steps = self._run_time(), trace.steps_closed
        window = self._window
        window.append((t, steps))
        while len(window) > 2 and t - window[1][0] >= RATE_WINDOW:
            window.popleft()
        (t0, s0), (t1, s1) = window[0], window[-1]
        rate = max(0.0, (s1 - s0) / (t1 - t0)) if steps and t1 - t0 >= MIN_RATE_SPAN else None
        accounted = trace.steps

        def per_second(total: float) -> float | None:
            return rate * total / accounted if rate is not None and accounted and total else None

        status: dict[str, Any] = {
            "t": t,
            "steps": steps,
            "steps_per_s": rate,
            "samples_per_s": per_second(trace.samples) if trace.samples_known else None,
            "tokens_per_s": per_second(trace.tokens),
            "step": self._last_step(),
        }
        if ranks := self._ranks():
            status["ranks"] = ranks
        return status

    def _ranks(self) -> list[dict[str, Any]]:
        """A cell that launched ranks: a compact row per rank from their live summaries (ui/ranks.py)."""
        from .ranks import live_rows

        live = getattr(self.session, "ranks_live", None)
        return live_rows(live(), self._cores) if live is not None else []

    def _row(self, raw: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "t": raw.get("t"),
            "cpu": raw.get("cpu_percent"),
            "proc": machine_share(raw.get("proc_cpu_percent"), self._cores),
            "cores": [raw.get(f"cpu{i}") for i in range(self._cores)],
            "rss": raw.get("rss"),
            "rssc": raw.get("rss_children"),
            "avail": raw.get("mem_available"),
            "gpus": [
                [raw.get(f"gpu{i}_{k}") for k in ("util", "mem_used", "mem_total", "power_w", "temp_c")]
                for i in self._gpus
            ],
            "p": plot_row(raw, self._cores, self._gpus),
        }
        steps, t = raw.get("steps"), raw.get("t")
        if steps is not None and t is not None and (marks := self._marks(t, int(steps))):
            row["marks"] = marks
        return row

    def _marks(self, t: float, steps: int) -> list[tuple[float, int]]:
        """A marker each time the step count passes a multiple of N, N rising with the rate (≈ ≤ 1 per second)."""
        if steps <= 0:
            return []
        if t > 0:
            every = max(self._mark_every, step_interval(steps / t))
            if every != self._mark_every:
                self._mark_every, self._mark_bucket = every, steps // every
                return []
        bucket = steps // self._mark_every
        if self._mark_bucket is None:
            self._mark_bucket = 0
        if bucket <= self._mark_bucket:
            return []
        self._mark_bucket = bucket
        return [(t, bucket * self._mark_every)]

    def _last_step(self) -> dict[str, Any] | None:
        trace = self.session.trace
        last = trace.series.latest()
        if not last or last.get("wall") is None:
            return None
        return {"n": trace.steps, "wall": last["wall"], "phases": {p: last.get(p) for p in PHASES}}
