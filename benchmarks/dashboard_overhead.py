"""Cost of the live dashboard: a training cell with ``%%perfprofile`` (dashboard live) against the same cell plain.

Two set-ups, same notebook, same kernel code:

* ``no browser``: a kernel driven by jupyter_client; the widget messages go out
  on IOPub and are read and dropped, as a frontend that renders nothing would;
* ``browser``: JupyterLab on localhost with Debian's Chromium (headless, under
  Playwright) showing the notebook, so the dashboard is drawn while the cell
  runs. On a 2-core machine the browser's drawing competes with the training
  loop for the same cores, which is part of what this measures.

Plain and profiled cells alternate round by round so machine noise hits both
alike; the ratio of medians is printed. The training loop is timed inside
the cell (the profiled part); the dashboard's fixed cost per cell (drawing it,
replacing it with the summary) is printed separately, and the very first
dashboard of a kernel (importing anywidget) too.
Goal (issue 3): profiled-with-dashboard / plain ≤ 1.03, with and without a browser.

    python benchmarks/dashboard_overhead.py [--rounds 5] [--epochs 1] [--mode both|browser|kernel]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "ui"))

from pairing import bracketed_ratio  # noqa: E402
from workloads import SMALL_CNN_TRAINING  # noqa: E402

NAME, SETUP, BODY = SMALL_CNN_TRAINING
#: Cores other processes may use during a round for it to count as quiet.
QUIET = 0.1

HOOKS = """
import json, os, time, psutil
_bench = {"plain": [], "profiled": [], "cell_plain": [], "cell_profiled": [], "browser_cpu_plain": [],
          "browser_cpu_profiled": [], "other_cpu_plain": [], "other_cpu_profiled": [],
          "first_profiled_cell": None, "first_loop": None}
_watch = {"trees": [], "single": []}  # the browser's process tree; the Jupyter server alone (not its kernels)
_me = psutil.Process()
def _cpu(procs):
    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times(); total += c.user + c.system
        except psutil.Error:
            pass
    return total
def _times():
    # CPU seconds so far: the browser and server, this kernel with its workers, the whole machine
    watched = []
    for pid in _watch["trees"] + _watch["single"]:
        try:
            watched.append(psutil.Process(pid))
            if pid in _watch["trees"]:
                watched += psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            pass
    m = psutil.cpu_times()
    busy = m.user + m.nice + m.system + m.irq + m.softirq + m.steal
    return _cpu(watched), _cpu([_me] + _me.children(recursive=True)), busy
_cell = {}
def _pre(info):
    _cell.update(t=time.perf_counter(), cpu=_times(), kind=(info.raw_cell.split("#kind:")[1].split()[0]
                 if "#kind:" in info.raw_cell else None))
def _post(result):
    kind = _cell.get("kind")
    if kind is None or "t" not in _cell:
        return
    wall = time.perf_counter() - _cell["t"]
    if kind == "first":
        _bench["first_profiled_cell"] = wall
    elif kind in ("plain", "profiled"):
        (b0, k0, m0), (b1, k1, m1) = _cell["cpu"], _times()
        _bench["cell_" + kind].append(wall)
        _bench["browser_cpu_" + kind].append((b1 - b0) / wall)
        # what every other process did meanwhile: someone else's work, noise in these timings
        _bench["other_cpu_" + kind].append(max(0.0, (m1 - m0) - (b1 - b0) - (k1 - k0)) / wall)
get_ipython().events.register("pre_run_cell", _pre)
get_ipython().events.register("post_run_cell", _post)
"""


def cells(rounds: int, epochs: int, watch_file: str | None, interval: float = 0.1) -> list[str]:
    body = textwrap.indent(BODY.strip(), "    ")
    loop = f"_t = time.perf_counter()\nfor _epoch in range({epochs}):\n{body}\n"
    plain = "#kind:plain\n" + loop + '_bench["plain"].append(time.perf_counter() - _t)\n'
    magic = f"%%perfprofile --interval {interval}\n"
    profiled = magic + "#kind:profiled\n" + loop + '_bench["profiled"].append(time.perf_counter() - _t)\n'
    first = magic + "#kind:first\n" + loop + '_bench["first_loop"] = time.perf_counter() - _t\n'
    setup = "%load_ext jupyter_perf\n" + SETUP + HOOKS
    if watch_file:
        setup += f"_watch.update(json.load(open({watch_file!r})))\n"
    out = [setup, "#kind:warmup\n" + loop, first]
    for _ in range(rounds):
        out += [plain, profiled]
    out.append("json.dump(_bench, open('bench.json', 'w'))")
    return out


# ------------------------------------------------------------------ kernel only
def run_kernel(sources: list[str], workdir: Path) -> dict:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    try:
        for source in sources:
            msg_id = kc.execute(source)
            while True:  # read IOPub like a frontend that draws nothing, until the cell is idle
                try:
                    msg = kc.get_iopub_msg(timeout=600)
                except queue.Empty:
                    raise RuntimeError("kernel stopped answering") from None
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "error":
                    raise RuntimeError("\n".join(msg["content"]["traceback"]))
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return json.loads((workdir / "bench.json").read_text())


# ---------------------------------------------------------------- with browser
def run_browser(
    rounds: int, epochs: int, workdir: Path, screenshot: Path | None, interval: float = 0.1
) -> tuple[dict, str]:
    import psutil
    from lab_browser import LabNotebook, LabServer, launch_chromium, write_notebook
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="bench-lab-"))
    server = LabServer(workdir, home)
    server.start()
    try:
        with sync_playwright() as playwright:
            profile = home / "chromium"
            context = launch_chromium(playwright, profile)
            try:
                browser_pids = [
                    p.pid for p in psutil.process_iter(["cmdline"])
                    if p.info["cmdline"] and any(str(profile) in a for a in p.info["cmdline"])
                    and not any(a.startswith("--type=") for a in p.info["cmdline"])
                ]  # fmt: skip
                watch = workdir / "watch.json"
                watch.write_text(json.dumps({"trees": browser_pids, "single": [server.process.pid]}))
                write_notebook(workdir / "bench.ipynb", cells(rounds, epochs, str(watch), interval))
                page = context.new_page()
                page.set_default_timeout(600_000)
                nb = LabNotebook(page, server, "bench.ipynb").open()
                nb.run_all()
                page.wait_for_selector('[data-jpp="dashboard"]')
                if screenshot is not None:
                    page.wait_for_timeout(2000)
                    page.screenshot(path=str(screenshot))
                deadline = time.monotonic() + 120 + rounds * epochs * 2 * 60
                while not (workdir / "bench.json").exists():
                    if time.monotonic() > deadline:
                        raise RuntimeError("the notebook did not finish")
                    if page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count():
                        raise RuntimeError(
                            "a cell failed:\n"
                            + page.locator(
                                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
                            ).first.inner_text()
                        )
                    time.sleep(1)
                time.sleep(0.5)
                version = context.browser.version if context.browser else "chromium"
            finally:
                context.close()
    finally:
        server.stop()
    return json.loads((workdir / "bench.json").read_text()), version


# ------------------------------------------------------------------- reporting
def summarize(label: str, bench: dict) -> dict:
    plain, profiled = statistics.median(bench["plain"]), statistics.median(bench["profiled"])
    cell_plain, cell_profiled = statistics.median(bench["cell_plain"]), statistics.median(bench["cell_profiled"])
    quiet = [op < QUIET and oq < QUIET for op, oq in zip(bench["other_cpu_profiled"], bench["other_cpu_plain"])]
    row = {
        "setup": label,
        "plain_s": plain,
        "profiled_s": profiled,
        "ratio": profiled / plain,
        # each profiled round against the plain rounds on either side: the machine's slow drifts cancel
        "paired_ratio": bracketed_ratio(bench["profiled"], bench["plain"]),
        # the fastest rounds of each (timeit's convention: the least disturbed by anything else), as overhead.py
        "best_ratio": min(bench["profiled"]) / min(bench["plain"]),
        # rounds where no other process took more than QUIET cores during either cell: the clean measurement
        "quiet_rounds": sum(quiet),
        "quiet_ratio": bracketed_ratio(bench["profiled"], bench["plain"], quiet) if any(quiet) else None,
        "fixed_cost_per_cell_s": (cell_profiled - profiled) - (cell_plain - plain),
        # what the first profiled cell of a kernel spent outside its loop, beyond what later ones do
        "first_dashboard_extra_s": (bench["first_profiled_cell"] - bench["first_loop"]) - (cell_profiled - profiled),
        "browser_cpu_plain": statistics.median(bench["browser_cpu_plain"]),
        "browser_cpu_profiled": statistics.median(bench["browser_cpu_profiled"]),
        "other_cpu": statistics.median(bench["other_cpu_plain"] + bench["other_cpu_profiled"]),
        "runs": {"plain": bench["plain"], "profiled": bench["profiled"]},
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the workload per cell (128 steps)")
    parser.add_argument("--mode", choices=("both", "kernel", "browser"), default="both")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.1,
        help="%%%%perfprofile --interval: sampling period, and so the redraw rate",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the dashboard (browser mode)")
    args = parser.parse_args()

    import psutil

    results = []
    if args.mode in ("both", "kernel"):
        workdir = Path(tempfile.mkdtemp(prefix="bench-kernel-"))
        results.append(
            summarize("no browser", run_kernel(cells(args.rounds, args.epochs, None, args.interval), workdir))
        )
        print("no browser:", {k: v for k, v in results[-1].items() if k != "runs"}, flush=True)
    browser = None
    if args.mode in ("both", "browser"):
        workdir = Path(tempfile.mkdtemp(prefix="bench-browser-"))
        shot = Path(args.screenshot) if args.screenshot else None
        bench, browser = run_browser(args.rounds, args.epochs, workdir, shot, args.interval)
        results.append(summarize("browser attached", bench))

    cpu = platform.processor() or platform.machine()
    print(
        f"dashboard overhead · workload: {NAME}, {args.epochs} epochs a cell, {args.rounds} rounds, "
        f"%%perfprofile --interval {args.interval} "
        f"(the dashboard redraws at most {min(1 / 0.15, 1 / args.interval):.1f}/s)"
    )
    print(
        f"machine: {psutil.cpu_count()} logical CPUs ({cpu}), Python {platform.python_version()}"
        + (f", {browser}" if browser else "")
    )
    other = max(r["other_cpu"] for r in results)
    print(
        f"other processes used {other:.2f} cores (median over the cells) while the cells ran"
        + ("" if other < 0.1 else ": the machine is busy, these ratios are noise; run again when it is idle")
    )
    print(
        f"{'setup':<18}{'plain s':>9}{'profiled s':>12}{'ratio':>8}{'paired':>8}{'fastest':>9}{'quiet':>14}"
        f"{'fixed/cell s':>14}{'1st cell +s':>13}{'browser CPU plain/profiled':>29}"
    )
    for r in results:
        first = "—" if r["first_dashboard_extra_s"] is None else f"{r['first_dashboard_extra_s']:.2f}"
        quiet = "—" if r["quiet_ratio"] is None else f"{r['quiet_ratio']:.3f} ({r['quiet_rounds']})"
        cpu_share = (
            f"{r['browser_cpu_plain']:.2f} / {r['browser_cpu_profiled']:.2f}" if r["setup"] != "no browser" else "—"
        )
        print(
            f"{r['setup']:<18}{r['plain_s']:>9.3f}{r['profiled_s']:>12.3f}{r['ratio']:>8.3f}{r['paired_ratio']:>8.3f}"
            f"{r['best_ratio']:>9.3f}"
            f"{quiet:>14}{r['fixed_cost_per_cell_s']:>14.3f}{first:>13}{cpu_share:>29}"
        )
    print(
        "ratio: median profiled / median plain training-loop time (goal ≤ 1.03); paired: median of each "
        "profiled round's ratio to the plain rounds on either side; fastest: fastest profiled round / fastest "
        "plain round; quiet: the same over the rounds (how many) in which other processes used "
        f"< {QUIET} cores; fixed/cell: a profiled cell's time outside its loop beyond a plain one's "
        "(opening the dashboard, the summary); 1st cell +s: what the kernel's first profiled cell adds to that "
        "(importing anywidget, first probes); browser CPU in cores (Chromium + the Jupyter "
        "server) while the cells ran"
    )
    if args.json:
        machine = {"cpus": psutil.cpu_count(), "cpu": cpu, "browser": browser, "other_cpu": other}
        Path(args.json).write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
