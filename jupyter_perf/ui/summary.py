"""The static summary of a Report, as plain text and as an HTML fragment.

This is what a user sees when there is no widget frontend (plain IPython, a
terminal, nbconvert, an exported file) and what ``Report._repr_mimebundle_``
returns, so it imports only the standard library. Text and HTML are built from
the same rows so the two never disagree. A value the run did not observe is
shown as '—', never as 0.
"""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any

from ..report import BOTTLENECKS, PHASES, Comparison, Finding, Report
from .svg import line_chart

MISSING = "—"


STEP_ANCHORS = {"data": "DataLoader batches", "optimizer": "optimizer.step() calls", "forward": "model calls"}

PHASE_COLORS = {
    "data_wait": "#e45756",
    "host_to_device": "#f58518",
    "forward": "#4c78a8",
    "backward": "#72b7b2",
    "communication": "#b279a2",
    "optimizer": "#54a24b",
    "other": "#9d9d9d",
}

#: Before/after changes smaller than this are run-to-run noise, not a regression.
NOISE = 0.03

TOP_OPS = 10

INTERRUPTED = "interrupted: Ctrl-C stopped the run; the numbers cover the part that ran"

#: The summary's data for the JupyterLab extension's list of profiled runs (labextension/src/runs.ts),
#: which reads this part of the output rather than the HTML (docs/labextension.md).
REPORT_MIME = "application/vnd.jupyter-perf.report+json"

#: Characters kept of a free text (an error message, a recommendation's reason) in that part.
BRIEF = 300


# ---------------------------------------------------------------- formatting
def fmt_seconds(s: float | None) -> str:
    if s is None:
        return MISSING
    if s == 0:
        return "0 s"
    if abs(s) < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if abs(s) < 1:
        return f"{s * 1e3:.1f} ms"
    if abs(s) < 60:
        return f"{s:.2f} s"
    return f"{int(s // 60)} min {s % 60:.0f} s"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return MISSING
    if abs(b) >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    return f"{b / 2**20:.1f} MiB"


def fmt_number(v: float | None) -> str:
    if v is None:
        return MISSING
    if isinstance(v, int) or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def fmt_speedup(x: float | None) -> str:
    return MISSING if x is None else f"×{x:.2f}"


def _fmt_value(key: str, v) -> str:
    """An evidence value, in the unit its key names (``*_bytes``, ``*_s``)."""
    if v is None:
        return MISSING
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)[:80]
    if key.endswith("bytes"):
        return fmt_bytes(v)
    if key.endswith("_s"):
        return fmt_seconds(v)
    return fmt_number(v)


def _evidence(evidence: dict) -> str:
    return ", ".join(f"{k}={_fmt_value(k, v)}" for k, v in evidence.items())


# ------------------------------------------------------ rows shared by views
def _headline(report: Report) -> list[tuple[str, str]]:
    anchor = STEP_ANCHORS.get(report.step_anchor or "", report.step_anchor)
    steps = f"{report.steps:,}" + (f" ({anchor})" if anchor and report.steps else "")
    rows = [
        ("wall time", fmt_seconds(report.wall_time)),
        ("steps", steps),
        ("steps/s", fmt_number(report.throughput.get("steps_per_s"))),
        ("samples/s", fmt_number(report.throughput.get("samples_per_s"))),
    ]
    if report.ranks:  # a distributed run: the figures above are the ranks' merged view (ui/ranks.py)
        rows.insert(1, ("ranks", f"{len(report.ranks)}"))
    return rows


def _phase_rows(report: Report) -> list[tuple[str, float | None, float | None]]:
    """(phase, mean seconds, percent of the step); the percents of observed phases sum to 100."""
    total = sum(v for v in report.phases.values() if v is not None)
    rows = []
    for p in PHASES:
        s = report.phases.get(p)
        rows.append((p, s, 100 * s / total if s is not None and total > 0 else None))
    return rows


def _peak_rows(report: Report) -> list[tuple[str, str]]:
    peaks = report.peaks
    rows = [
        ("kernel RSS", fmt_bytes(peaks.get("rss_bytes"))),
        # (a distributed run's ranks are the launching process's children too)
        ("ranks' RSS" if report.ranks else "DataLoader workers RSS", fmt_bytes(peaks.get("rss_children_bytes"))),
        ("total RSS", fmt_bytes(peaks.get("rss_total_bytes"))),
    ]
    gpus = sorted({int(m.group(1)) for k in peaks if (m := re.match(r"gpu(\d+)_", k))})
    for i in gpus:
        rows.append((f"GPU{i} memory used", fmt_bytes(peaks.get(f"gpu{i}_mem_used_bytes"))))
        if f"gpu{i}_proc_mem_bytes" in peaks:
            rows.append((f"GPU{i} this process", fmt_bytes(peaks[f"gpu{i}_proc_mem_bytes"])))
    for key, label in (("cuda_allocated_bytes", "cuda allocated"), ("cuda_reserved_bytes", "cuda reserved")):
        if key in peaks:
            rows.append((label, fmt_bytes(peaks[key])))
    if not gpus and "cuda_allocated_bytes" not in peaks:
        rows.append(("GPU memory", MISSING))
    return rows


def _split_findings(report: Report) -> tuple[Finding | None, list[Finding]]:
    """The first finding that argues for the bottleneck, and all the others."""
    main = next((f for f in report.findings if f.bottleneck == report.bottleneck), None)
    return main, [f for f in report.findings if f is not main]


def _finding_line(f: Finding) -> str:
    share = f" ({f.share:.0%} of step time)" if f.share is not None else ""
    return f"[{f.severity}] {f.id}: {f.summary}{share}"


def _recommendation_rows(report: Report) -> list[tuple[str, str, str]]:
    rows = []
    for r in report.recommendations:
        params = f" ({', '.join(f'{k}={v}' for k, v in r.params.items())})" if r.params else ""
        rows.append((r.optimization + params, fmt_speedup(r.expected_speedup), r.reason))
    return rows


def _top_op_rows(report: Report) -> list[tuple[str, str, str]]:
    """(name, self time, calls); ops are ``{name, self_s, calls}`` or a (name, self_s, calls) sequence."""
    rows = []
    for op in ((report.deep or {}).get("top_ops") or [])[:TOP_OPS]:
        name, self_s, calls = (op.get("name"), op.get("self_s"), op.get("calls")) if isinstance(op, dict) else op
        rows.append((str(name), fmt_seconds(self_s), fmt_number(calls)))
    return rows


def _error_brief(report: Report) -> dict[str, Any] | None:
    """The error's type, the first line of its message, and whether it was an out-of-memory error."""
    if not report.error:
        return None
    err = report.error
    message = (str(err.get("message") or "").splitlines() or [""])[0][:BRIEF]
    return {"type": str(err.get("type", "Exception")), "message": message, "oom": bool(err.get("oom"))}


def _error_line(report: Report) -> str | None:
    if (err := _error_brief(report)) is None:
        return None
    oom = " [out of memory]" if err["oom"] else ""
    return f"error: {err['type']}: {err['message']}{oom}"


# ---------------------------------------------------------------- plain text
def text_summary(report: Report) -> str:
    """The summary for plain IPython and terminals: aligned columns, text bars."""
    out = ["jupyter-perf · " + " · ".join(f"{k} {v}" for k, v in _headline(report))]
    if error := _error_line(report):
        out.append("✖ " + error)
    if report.interrupted:
        out.append("⚠ " + INTERRUPTED)

    out.append(f"\nStep breakdown (mean {fmt_seconds(report.step_time)})")
    if not report.steps:
        out.append("  no steps recognised")
    else:
        for phase, s, pct in _phase_rows(report):
            ms = MISSING if s is None else f"{s * 1e3:.1f} ms"
            bar = "" if pct is None else "█" * round(pct / 5)
            out.append(f"  {phase:<15}{ms:>12}{MISSING if pct is None else f'{pct:.1f}%':>8}  {bar}")

    if report.ranks:
        from .ranks import text as rank_text

        out += rank_text(report)

    out.append("\nPeaks")
    out += [f"  {label:<24}{value:>12}" for label, value in _peak_rows(report)]

    main, others = _split_findings(report)
    out.append(f"\nBottleneck: {report.bottleneck} — {BOTTLENECKS.get(report.bottleneck, '')}")
    if main:
        out.append(f"  {main.summary}")
        if main.evidence:
            out.append(f"  evidence: {_evidence(main.evidence)}")
    if others:
        out.append("\nOther findings")
        for f in others:
            out.append(f"  {_finding_line(f)}")
            if f.evidence:
                out.append(f"    evidence: {_evidence(f.evidence)}")
    if report.recommendations:
        out.append("\nRecommendations")
        for i, (opt, speedup, reason) in enumerate(_recommendation_rows(report), 1):
            out.append(f"  {i}. {opt:<28} {speedup:>6}  {reason}")
    if ops := _top_op_rows(report):
        out.append("\nTop operators by self time")
        out += [f"  {name[:40]:<40}{self_s:>12}{calls:>10} calls" for name, self_s, calls in ops]
    if report.notes:
        out.append("\nNotes")
        out += [f"  - {n}" for n in report.notes]
    return "\n".join(out)


# ---------------------------------------------------------------------- HTML
CSS = """
.jp-perf-summary{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.45;
  color:var(--jp-ui-font-color1,#222)}
.jp-perf-summary h4{margin:12px 0 4px;font-size:13px}
.jp-perf-summary table{border-collapse:collapse}
.jp-perf-summary th,.jp-perf-summary td{padding:1px 12px 1px 0;text-align:left;vertical-align:top}
.jp-perf-summary td.n,.jp-perf-summary th.n{text-align:right;font-variant-numeric:tabular-nums}
.jp-perf-summary .muted{color:var(--jp-ui-font-color2,#666)}
.jp-perf-summary .bar{display:flex;height:14px;max-width:640px;border-radius:3px;overflow:hidden;
  background:var(--jp-layout-color3,#ddd)}
.jp-perf-summary .sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.jp-perf-summary .alert{margin:4px 0;padding:4px 8px;border-left:3px solid #e45756;background:rgba(228,87,86,.12)}
.jp-perf-summary .charts{display:flex;flex-wrap:wrap;gap:12px;margin-top:8px;color:var(--jp-ui-font-color1,#222)}
.jp-perf-summary ul,.jp-perf-summary ol{margin:2px 0;padding-left:22px}
.jp-perf-summary .jp-perf-recs{padding-left:0;list-style-position:inside;max-width:760px}
.jp-perf-summary .jp-perf-rec{margin:4px 0;padding:4px 8px;border:1px solid var(--jp-border-color2,#ddd);
  border-radius:4px;background:var(--jp-layout-color1,transparent)}
"""


def _table(rows, numeric=(), header=None) -> str:
    """A table of already-formatted cells; columns in ``numeric`` align right."""
    def cells(row, tag):
        return "".join(
            f'<{tag}{" class=n" if i in numeric else ""}>{escape(str(c))}</{tag}>' for i, c in enumerate(row)
        )

    head = f"<tr>{cells(header, 'th')}</tr>" if header else ""
    return "<table>" + head + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows) + "</table>"


def _phase_bar(report: Report) -> str:
    segments = "".join(
        f'<div style="width:{pct:.2f}%;background:{PHASE_COLORS[p]}" title="{p} {pct:.1f}%"></div>'
        for p, _, pct in _phase_rows(report)
        if pct
    )
    return f'<div class="bar">{segments}</div>'


def _phase_table(report: Report) -> str:
    rows = "".join(
        f'<tr><td><span class="sw" style="background:{PHASE_COLORS[p]}"></span>{p}</td>'
        f'<td class="n">{MISSING if s is None else f"{s * 1e3:.1f} ms"}</td>'
        f'<td class="n">{MISSING if pct is None else f"{pct:.1f}%"}</td></tr>'
        for p, s, pct in _phase_rows(report)
    )
    return f"<table>{rows}</table>"


def _byte_scale(columns: list[list[float | None]]) -> tuple[float, str]:
    peak = max((v for col in columns for v in col if v is not None), default=0)
    return (2**30, "GiB") if peak >= 2**30 else (2**20, "MiB")


def _charts(report: Report) -> list[str]:
    """CPU, host memory, and (when sampled) GPU util and memory against time."""
    tl = report.timeline
    t = tl.get("t") or []
    if len(t) < 2:
        return []
    gpus = sorted({int(m.group(1)) for k in tl if (m := re.match(r"gpu(\d+)_", k))})
    specs = [
        ("CPU", "%", {"machine": "cpu_percent", "process": "proc_cpu_percent"}),
        ("Host memory", "B", {"kernel": "rss", "workers": "rss_children"}),
        ("GPU utilisation", "%", {f"GPU{i}": f"gpu{i}_util" for i in gpus}),
        ("GPU memory", "B", {**{f"GPU{i}": f"gpu{i}_mem_used" for i in gpus}, "cuda allocated": "cuda_allocated"}),
    ]
    charts = []
    for title, unit, columns in specs:
        series = {name: tl[col] for name, col in columns.items() if any(v is not None for v in tl.get(col) or [])}
        if not series:
            continue
        if unit == "B":
            scale, unit = _byte_scale(list(series.values()))
            series = {k: [None if v is None else v / scale for v in col] for k, col in series.items()}
        charts.append(line_chart(series, t, title, unit, width=320, height=120))
    return charts


def html_summary(report: Report) -> str:
    """The same content as ``text_summary`` as a self-contained fragment: scoped CSS, inline SVG, no JS."""
    h = [f'<div class="jp-perf-summary"><style>{CSS}</style>']
    h.append(
        "<div><b>jupyter-perf</b> · "
        + " · ".join(f'<span class="muted">{k}</span> <b>{escape(v)}</b>' for k, v in _headline(report))
        + "</div>"
    )
    if error := _error_line(report):
        h.append(f'<div class="alert">✖ {escape(error)}</div>')
    if report.interrupted:
        h.append(f'<div class="alert">⚠ {escape(INTERRUPTED)}</div>')

    h.append(f"<h4>Step breakdown (mean {fmt_seconds(report.step_time)})</h4>")
    if report.steps:
        h.append(_phase_bar(report) + _phase_table(report))
    else:
        h.append('<div class="muted">no steps recognised</div>')
    if charts := _charts(report):
        h.append('<div class="charts">' + "".join(charts) + "</div>")
    if report.ranks:
        from .ranks import html as rank_html

        h.append(rank_html(report))

    h.append("<h4>Peaks</h4>" + _table(_peak_rows(report), numeric=(1,)))

    main, others = _split_findings(report)
    meaning = BOTTLENECKS.get(report.bottleneck, "")
    h.append(f"<h4>Bottleneck: {escape(report.bottleneck)}</h4><div>{escape(meaning)}</div>")
    if main:
        h.append(f"<div>{escape(main.summary)}</div>")
        if main.evidence:
            h.append(f'<div class="muted">evidence: {escape(_evidence(main.evidence))}</div>')
    if others:
        items = "".join(
            f"<li>{escape(_finding_line(f))}"
            + (f'<div class="muted">evidence: {escape(_evidence(f.evidence))}</div>' if f.evidence else "")
            + "</li>"
            for f in others
        )
        h.append(f"<h4>Other findings</h4><ul>{items}</ul>")
    if recs := _recommendation_rows(report):
        # One card per recommendation; the class and data-* attributes are what the optimization panel wires.
        items = "".join(
            f'<li class="jp-perf-rec" data-optimization="{escape(r.optimization)}"'
            + (f' data-finding="{escape(r.finding)}"' if r.finding else "")
            + f"><code>{escape(opt)}</code> <b>{escape(speedup)}</b>: {escape(reason)}</li>"
            for r, (opt, speedup, reason) in zip(report.recommendations, recs)
        )
        h.append(f'<h4>Recommendations</h4><ol class="jp-perf-recs">{items}</ol>')
    if ops := _top_op_rows(report):
        h.append("<h4>Top operators by self time</h4>")
        h.append(_table(ops, numeric=(1, 2), header=("operator", "self time", "calls")))
    if report.notes:
        h.append("<h4>Notes</h4><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    h.append("</div>")
    return "".join(h)


def _finite(v: float | None) -> float | None:
    """A number JSON can carry (no NaN or infinity: a notebook's JSON would not read back)."""
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def report_part(report: Report) -> dict[str, Any]:
    """The run in brief, under ``Report.to_dict()``'s field names: what a list of runs shows (< 2 KB).

    The cell's execution count is not here: the Report does not know which cell displays it, the
    notebook does.
    """
    top = report.recommendations[0] if report.recommendations else None
    return {
        "started_at": report.started_at,
        "wall_time": _finite(report.wall_time),
        "steps": report.steps,
        "throughput": {k: _finite(report.throughput.get(k)) for k in ("steps_per_s", "samples_per_s")},
        "bottleneck": report.bottleneck,
        "recommendation": None
        if top is None
        else {
            "optimization": top.optimization,
            "expected_speedup": _finite(top.expected_speedup),
            "reason": top.reason[:BRIEF],
        },
        "error": _error_brief(report),
        "interrupted": report.interrupted,
    }


def mimebundle(report: Report) -> dict[str, Any]:
    # The interactive timelines (bokeh_timelines.py): a part the JupyterLab extension draws over the HTML's
    # static charts, which stay for every view without it.
    from .bokeh_timelines import interactive_timelines

    return {"text/plain": text_summary(report), "text/html": html_summary(report), REPORT_MIME: report_part(report),
            **interactive_timelines(report)}


def _script_json(data: str) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' as \\u escapes, which JSON reads back unchanged."""
    return data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_document(report: Report) -> str:
    """A standalone page for ``--export report.html``, carrying the report's JSON so it can be re-read."""
    title = "jupyter-perf report" + (f" — {report.started_at}" if report.started_at else "")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        "<style>:root{color-scheme:light dark}"
        "@media (prefers-color-scheme:dark){:root{--jp-ui-font-color1:#ddd;--jp-ui-font-color2:#999;"
        "--jp-layout-color0:#111;--jp-layout-color3:#444}}"
        "body{margin:16px;background:var(--jp-layout-color0,#fff)}</style></head>\n<body>\n"
        f"{html_summary(report)}\n"
        f'<script type="application/json" id="jupyter-perf-report">{_script_json(report.to_json())}</script>\n'
        "</body></html>\n"
    )


# ---------------------------------------------------------------- comparison
def _fmt_unit(v: float | None, unit: str) -> str:
    if unit == "B":
        return fmt_bytes(v)
    if unit == "s":
        return fmt_seconds(v)
    return MISSING if v is None else f"{fmt_number(v)} {unit}"


def _comparison_rows(comparison: Comparison) -> list[tuple[str, str, str, str, str]]:
    """(metric, before, after, after/before, verdict); rates are better higher, times and bytes lower."""
    rows = []
    for metric, b, a, unit in comparison.rows():
        ratio = a / b if a is not None and b else None
        verdict = ""
        if ratio is not None:
            gain = ratio if unit == "/s" else (1 / ratio if ratio else float("inf"))
            verdict = "better" if gain > 1 + NOISE else "worse" if gain < 1 - NOISE else "same"
        rows.append((metric, _fmt_unit(b, unit), _fmt_unit(a, unit), fmt_speedup(ratio), verdict))
    return rows


def _comparison_flags(comparison: Comparison) -> tuple[str, str | None]:
    """The headline speedup line, and a regression line when 'after' is slower beyond noise."""
    speedup, basis = comparison.speedup, comparison.basis
    headline = f"speedup {fmt_speedup(speedup)} ({basis}, after vs before)"
    if speedup is not None and speedup < 1 - NOISE:
        return headline, f"⚠ regression: {fmt_speedup(speedup)} {basis}"
    return headline, None


def comparison_text(comparison: Comparison) -> str:
    headline, regression = _comparison_flags(comparison)
    out = ["jupyter-perf before/after · " + headline]
    if regression:
        out.append(regression)
    if error := _error_line(comparison.after):
        out.append("✖ after: " + error)
    out.append(f"  {'metric':<26}{'before':>12}{'after':>12}{'ratio':>9}")
    for metric, b, a, ratio, verdict in _comparison_rows(comparison):
        out.append(f"  {metric:<26}{b:>12}{a:>12}{ratio:>9}  {verdict}")
    return "\n".join(out)


def comparison_html(comparison: Comparison) -> str:
    headline, regression = _comparison_flags(comparison)
    h = [f'<div class="jp-perf-summary"><style>{CSS}</style>']
    h.append(f"<div><b>jupyter-perf</b> before/after · {escape(headline)}</div>")
    if regression:
        h.append(f'<div class="alert">{escape(regression)}</div>')
    if error := _error_line(comparison.after):
        h.append(f'<div class="alert">✖ after: {escape(error)}</div>')
    # phase rows are indented under "step time"; HTML would collapse the leading spaces
    rows = [(re.sub(r"^  ", "\u00a0" * 4, metric), *rest) for metric, *rest in _comparison_rows(comparison)]
    h.append(_table(rows, numeric=(1, 2, 3), header=("metric", "before", "after", "ratio", "")))
    h.append("</div>")
    return "".join(h)


def comparison_mimebundle(comparison: Comparison) -> dict[str, str]:
    return {"text/plain": comparison_text(comparison), "text/html": comparison_html(comparison)}
