"""``--deep``: torch.profiler around the run, its trace kept, top operators by self time.

torch.profiler costs ×2.2 on a launch-bound CPU loop (docs/architecture.md, "What things cost"), so it only
runs when asked. ``key_averages()`` can take 30× the run itself; the top
operators are computed here from the exported Chrome trace instead, in one
linear pass per thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

TOP_OPS = 15
_OP_CATEGORIES = {"cpu_op", "kernel", "gpu_memcpy", "gpu_memset"}


class DeepProbe:
    def __init__(self, trace_dir: str | Path):
        self.trace_dir = Path(trace_dir)
        self._profiler: Any = None

    def start(self) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        self._profiler = profile(activities=activities)
        self._profiler.__enter__()

    def stop(self) -> dict[str, Any]:
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(None, None, None)
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        path = self.trace_dir / f"perfprofile-{time.strftime('%Y%m%d-%H%M%S')}-{id(profiler) % 10000:04d}.trace.json"
        profiler.export_chrome_trace(str(path))
        return {"trace_path": str(path.resolve()), "top_ops": top_ops(json.loads(path.read_text()))}


def top_ops(trace: dict[str, Any], limit: int = TOP_OPS) -> list[dict[str, Any]]:
    """Operators ranked by self time (their duration less their children's), from a Chrome trace."""
    threads: dict[tuple, list[dict]] = {}
    for event in trace.get("traceEvents", []):
        if event.get("ph") == "X" and event.get("cat") in _OP_CATEGORIES and "dur" in event:
            threads.setdefault((event.get("pid"), event.get("tid")), []).append(event)
    totals: dict[str, list[float]] = {}
    for events in threads.values():
        events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[list] = []  # [end_ts, name, self_us]
        for event in events:
            start, dur = event["ts"], event["dur"]
            while stack and stack[-1][0] <= start:
                _account(totals, stack.pop())
            if stack:
                stack[-1][2] -= dur
            stack.append([start + dur, event["name"], dur])
        while stack:
            _account(totals, stack.pop())
    ranked = sorted(totals.items(), key=lambda kv: kv[1][0], reverse=True)[:limit]
    return [{"name": name, "self_s": self_us / 1e6, "calls": int(calls)} for name, (self_us, calls) in ranked]


def _account(totals: dict[str, list[float]], entry: list) -> None:
    slot = totals.setdefault(entry[1], [0.0, 0])
    slot[0] += max(entry[2], 0.0)
    slot[1] += 1
