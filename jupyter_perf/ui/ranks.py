"""The per-rank part of a distributed run's summary: every rank side by side, or, for many, how they spread.

Up to ``ALL_RANKS`` ranks get a row each; beyond, the table shows each
figure's distribution over the ranks (min, median, p90, max) and then the
``WORST`` slowest ranks by their own work per step (the straggler rule's
measure), plus every rank that failed. The rows are
``signals['distributed']['ranks']`` (distributed/merging.py), so the table costs
nothing per rank Report. Text and HTML are built from the same rows.

While ranks run, ``live_rows`` turns their live summaries (distributed/rank.py)
into the dashboard's compact rows: step rate, the last step's phases, CPU,
memory, GPU; for many ranks only the median, the slowest and the fastest.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..report import Report
from ..units import count, duration, size
from .timeline_panels import machine_share

#: What a table shows where a rank did not measure a figure.
MISSING = "—"

ALL_RANKS = 16
WORST = 5
#: Live, the dashboard shows up to this many ranks a row each; beyond, the median, the slowest and the fastest.
LIVE_RANKS = 8

#: (header, row key, format): seconds are per step.
COLUMNS = (
    ("step", "step_s", duration),
    ("own work", "busy_s", duration),
    ("data wait", "data_wait_s", duration),
    ("compute", "compute_s", duration),
    ("communication", "communication_s", duration),
    ("samples/s", "samples_per_s", count),
    ("peak RSS", "peak_rss_bytes", size),
    ("CPU % of the machine's cores", "cpu_util", count),
    ("GPU %", "gpu_util", count),
)


def rank_rows(report: Report) -> list[dict[str, Any]]:
    """Each rank's row, its CPU on the summary's scale: percent of the machine (the sampler's 100 is one core)."""
    cores = report.environment.get("cpu_count") or 1
    return [{**row, "cpu_util": row["cpu_util"] / cores} if row.get("cpu_util") is not None else row
            for row in (report.signals.get("distributed") or {}).get("ranks") or []]


def tables(report: Report) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    """(title, header, formatted rows) for each table the ranks need; empty for a single process."""
    rows = rank_rows(report)
    if not rows:
        return []
    used = [c for c in COLUMNS if any(r.get(c[1]) is not None for r in rows)]
    header = ("rank", "host", "steps", *(c[0] for c in used), "status")

    def line(row: dict[str, Any]) -> tuple[str, ...]:
        return (str(row.get("rank")), str(row.get("host") or MISSING), count(row.get("steps")),
                *(fmt(row.get(key)) if row.get(key) is not None else MISSING for _h, key, fmt in used), _status(row))

    if len(rows) <= ALL_RANKS:
        return [(f"Ranks ({len(rows)})", header, [line(r) for r in rows])]
    spread = [(label, "", "", *(fmt(v) if v is not None else MISSING for (_h, _key, fmt), v in
                                zip(used, _quantile_row(rows, used, q))), "")
              for q, label in ((0.0, "min"), (0.5, "median"), (0.9, "p90"), (1.0, "max"))]
    worst = sorted((r for r in rows if r.get("busy_s") is not None), key=lambda r: -r["busy_s"])[:WORST]
    failed = [r for r in rows if r.get("error") and r not in worst]
    return [(f"Ranks ({len(rows)}): spread", header, spread),
            (f"Slowest {len(worst)} ranks by own work per step" + (" and failed ranks" if failed else ""),
             header, [line(r) for r in worst + failed])]


def _quantile_row(rows: list[dict[str, Any]], used: list[tuple], q: float) -> list[float | None]:
    out = []
    for _h, key, _fmt in used:
        values = sorted(r[key] for r in rows if r.get(key) is not None)
        out.append(values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else None)
    return out


def _status(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"✖ {row['error']['type']}"
    return "interrupted" if row.get("interrupted") else "ok"


def text(report: Report) -> list[str]:
    out = []
    for title, header, rows in tables(report):
        widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
        out.append(f"\n{title}")
        for row in (header, *rows):
            out.append("  " + "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)
                                        for i, (c, w) in enumerate(zip(row, widths))))
    return out


def html(report: Report) -> str:
    parts = []
    for title, header, rows in tables(report):
        head = "".join(f"<th{' class=n' if i > 1 else ''}>{escape(h)}</th>" for i, h in enumerate(header))
        body = "".join("<tr>" + "".join(f"<td{' class=n' if i > 1 else ''}>{escape(c)}</td>" for i, c in enumerate(r))
                       + "</tr>" for r in rows)
        parts.append(f"<h4>{escape(title)}</h4><table><tr>{head}</tr>{body}</table>")
    return "".join(parts)



def live_rows(summaries: list[dict[str, Any]], cores: int) -> list[dict[str, Any]]:
    """The dashboard's per-rank rows: one per rank up to ``LIVE_RANKS``, else the median, slowest and fastest
    rank by their last step's time (ranks without a step yet are left out of the three). A rank's CPU is a
    percent of the machine's ``cores``, the dashboard's one CPU scale."""
    rows = [_live_row(f"rank {s.get('index')}", s, cores) for s in summaries]
    if len(rows) <= LIVE_RANKS:
        return rows
    timed = sorted((r for r in rows if r["step_s"]), key=lambda r: r["step_s"])
    if not timed:
        return []
    picks = (("slowest", timed[-1]), ("median", timed[(len(timed) - 1) // 2]), ("fastest", timed[0]))
    return [{**row, "label": f"{label} · {row['label']} of {len(rows)}"} for label, row in picks]


def _live_row(label: str, summary: dict[str, Any], cores: int) -> dict[str, Any]:
    step = summary.get("step_s")
    return {"label": label, "steps": summary.get("steps"), "step_s": step,
            "steps_per_s": 1 / step if step else None, "phases": summary.get("phases") or {},
            "cpu": machine_share(summary.get("cpu"), cores), "rss": summary.get("rss"), "gpu": summary.get("gpu_util")}
