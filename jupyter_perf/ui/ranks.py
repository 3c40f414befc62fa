"""The per-rank part of a distributed run's summary: every rank side by side, or, for many, how they spread.

Up to ``ALL_RANKS`` ranks get a row each; beyond, the table shows each
figure's distribution over the ranks (min, median, p90, max) and then the
``WORST`` slowest ranks by their own work per step (the straggler rule's
measure), plus every rank that failed. The rows are
``signals['distributed']['ranks']`` (distributed/merge.py), so the table costs
nothing per rank Report. Text and HTML are built from the same rows.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..report import Report
from .summary import MISSING, fmt_bytes, fmt_number, fmt_seconds

ALL_RANKS = 16
WORST = 5

#: (header, row key, format): seconds are per step.
COLUMNS = (
    ("step", "step_s", fmt_seconds),
    ("own work", "busy_s", fmt_seconds),
    ("data wait", "data_wait_s", fmt_seconds),
    ("compute", "compute_s", fmt_seconds),
    ("communication", "communication_s", fmt_seconds),
    ("samples/s", "samples_per_s", fmt_number),
    ("peak RSS", "peak_rss_bytes", fmt_bytes),
    ("CPU %", "cpu_util", fmt_number),
    ("GPU %", "gpu_util", fmt_number),
)


def rank_rows(report: Report) -> list[dict[str, Any]]:
    return (report.signals.get("distributed") or {}).get("ranks") or []


def tables(report: Report) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    """(title, header, formatted rows) for each table the ranks need; empty for a single process."""
    rows = rank_rows(report)
    if not rows:
        return []
    used = [c for c in COLUMNS if any(r.get(c[1]) is not None for r in rows)]
    header = ("rank", "host", "steps", *(c[0] for c in used), "status")

    def line(row: dict[str, Any]) -> tuple[str, ...]:
        return (str(row.get("rank")), str(row.get("host") or MISSING), fmt_number(row.get("steps")),
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

