"""The static summary of a Report, as plain text and as an HTML fragment: the verdict first, then the details.

This is what a user sees when the run ends (the dashboard settles into it), when there is no widget frontend
(plain IPython, a terminal, nbconvert, an exported file), and what ``display(report)`` shows. It opens with
the verdict box (``verdict.py``: the bottleneck in plain words with its key number, the top fix and its
buttons), then the run's numbers, where a step's time went, the findings with their evidence folded under
each (``evidence.py``), the fixes, the charts over time, the peaks and, folded, the notes. Text and HTML are
built from the same rows so the two never disagree, every number through ``units.py`` (binary sizes, three
significant digits). A value the run did not observe is shown as '—', never as 0.

The fixes are listed here only where no optimization panel follows: under a profiled cell in a widget
frontend the panel's cards are the one list (``Summary(report, panel=True)``), and the text part, for
frontends without HTML, keeps the list.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from typing import Any

from .. import units
from ..report import PHASES, Finding, Report
from . import evidence, verdict
from .svg import PHASE_COLORS, line_chart
from .timeline_panels import CPU_UNIT, machine_share

MISSING = units.MISSING

STEP_ANCHORS = {"data": "DataLoader batches", "optimizer": "optimizer.step() calls", "forward": "model calls"}


TOP_OPS = 10

INTERRUPTED = "interrupted: Ctrl-C stopped the run; the numbers cover the part that ran"

#: The summary's data for the JupyterLab extension's list of profiled runs (labextension/src/runs.ts),
#: which reads this part of the output rather than the HTML (docs/labextension.md).
REPORT_MIME = "application/vnd.jupyter-perf.report+json"

#: Characters kept of a free text (an error message, a recommendation's reason) in that part.
BRIEF = 300


@dataclass(frozen=True)
class Summary:
    """A Report's summary as displayed under a profiled cell: ``panel`` when the optimization panel follows
    (its cards are then the list of fixes, and it fills the verdict's buttons in)."""

    report: Report
    panel: bool = False

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return mimebundle(self.report, panel=self.panel)


# ------------------------------------------------------ rows shared by views
def _headline(report: Report) -> list[tuple[str, str]]:
    anchor = STEP_ANCHORS.get(report.step_anchor or "", report.step_anchor)
    steps = units.count(report.steps) + (f" ({anchor})" if anchor and report.steps else "")
    rows = [
        ("wall time", units.duration(report.wall_time)),
        ("steps", steps),
        ("steps/s", units.number(report.throughput.get("steps_per_s"))),
        ("samples/s", units.number(report.throughput.get("samples_per_s"))),
    ]
    if tokens := report.throughput.get("tokens_per_s"):
        rows.append(("tokens/s", units.number(tokens)))
    if report.ranks:  # a distributed run: the figures above are the ranks' merged view (ui/ranks.py)
        rows.insert(1, ("ranks", f"{len(report.ranks)}"))
    return rows


def _phase_rows(report: Report) -> list[tuple[str, float | None, float | None]]:
    """(phase, mean seconds, share of the step 0..1); the shares of observed phases sum to 1."""
    total = sum(v for v in report.phases.values() if v is not None)
    rows = []
    for p in PHASES:
        s = report.phases.get(p)
        rows.append((p, s, s / total if s is not None and total > 0 else None))
    return rows


def _peak_rows(report: Report) -> list[tuple[str, str]]:
    peaks = report.peaks
    rows = [
        ("kernel RSS", units.size(peaks.get("rss_bytes"))),
        # (a distributed run's ranks are the launching process's children too)
        ("ranks' RSS" if report.ranks else "DataLoader workers RSS", units.size(peaks.get("rss_children_bytes"))),
        ("total RSS", units.size(peaks.get("rss_total_bytes"))),
    ]
    gpus = sorted({int(m.group(1)) for k in peaks if (m := re.match(r"gpu(\d+)_", k))})
    for i in gpus:
        rows.append((f"GPU{i} memory used", units.size(peaks.get(f"gpu{i}_mem_used_bytes"))))
        if f"gpu{i}_proc_mem_bytes" in peaks:
            rows.append((f"GPU{i} this process", units.size(peaks[f"gpu{i}_proc_mem_bytes"])))
    for key, label in (("cuda_allocated_bytes", "torch allocated"), ("cuda_reserved_bytes", "torch reserved")):
        if key in peaks:
            rows.append((label, units.size(peaks[key])))
    if not gpus and "cuda_allocated_bytes" not in peaks:
        rows.append(("GPU memory", MISSING))
    return rows


def _findings(report: Report) -> list[Finding]:
    """The finding that argues for the bottleneck first, then the others in the order diagnosis gave."""
    main = [f for f in report.findings if f.bottleneck == report.bottleneck][:1]
    return main + [f for f in report.findings if f not in main]


def _finding_line(f: Finding) -> str:
    """``[high] input_pipeline: …``, with the finding's share of the step unless its summary says it already."""
    said = f.share is None or units.percent(f.share) in f.summary
    share = "" if said else f" ({units.percent(f.share)} of step time)"
    return f"[{f.severity}] {f.id}: {f.summary}{share}"


def _recommendation_rows(report: Report) -> list[tuple[str, str, str]]:
    """(optimization with its parameters, its expected gain in words, why)."""
    rows = []
    for r in report.recommendations:
        params = f" ({', '.join(f'{k}={v}' for k, v in r.params.items())})" if r.params else ""
        rows.append((r.optimization + params, verdict.gain(r, buttons=False), r.reason))
    return rows


def _top_op_rows(report: Report) -> list[tuple[str, str, str]]:
    """(name, self time, calls); ops are ``{name, self_s, calls}`` or a (name, self_s, calls) sequence."""
    rows = []
    for op in ((report.deep or {}).get("top_ops") or [])[:TOP_OPS]:
        name, self_s, calls = (op.get("name"), op.get("self_s"), op.get("calls")) if isinstance(op, dict) else op
        rows.append((str(name), units.duration(self_s), units.count(calls)))
    return rows


def _error_brief(report: Report) -> dict[str, Any] | None:
    """The error's type, the first line of its message, and whether it was an out-of-memory error."""
    if not report.error:
        return None
    err = report.error
    message = (str(err.get("message") or "").splitlines() or [""])[0][:BRIEF]
    return {"type": str(err.get("type", "Exception")), "message": message, "oom": bool(err.get("oom"))}


def _alerts(report: Report) -> list[str]:
    """What went wrong with the run itself: it raised, or Ctrl-C stopped it."""
    out = []
    if (err := _error_brief(report)) is not None:
        out.append(f"✖ error: {err['type']}: {err['message']}" + (" [out of memory]" if err["oom"] else ""))
    if report.interrupted:
        out.append("⚠ " + INTERRUPTED)
    return out


# ---------------------------------------------------------------- plain text
def _fixes_text(report: Report) -> list[str]:
    rows = _recommendation_rows(report)
    return ["Fixes", *(f"  {i}. {opt} ({gain}): {reason}" for i, (opt, gain, reason) in enumerate(rows, 1))]


def text_summary(report: Report) -> str:
    """The summary for plain IPython and terminals: the verdict, then aligned columns and text bars."""
    first, *why = verdict.text(report)
    out = ["jupyter-perf · " + first, *why, *_alerts(report)]
    out.append("  " + " · ".join(f"{k} {v}" for k, v in _headline(report)))

    out.append(f"\nStep breakdown (mean {units.duration(report.step_time)})")
    if not report.steps:
        out.append("  no steps recognised")
    else:
        for phase, s, share in _phase_rows(report):
            bar = "" if share is None else "█" * round(share * 20)
            out.append(f"  {phase:<15}{units.duration(s):>10}{units.percent(share):>7}  {bar}")

    if findings := _findings(report):
        out.append("\nFindings")
        for f in findings:
            out.append(f"  {_finding_line(f)}")
            out += evidence.text_lines(f.evidence, "      ")
    if report.recommendations:
        out += ["", *_fixes_text(report)]

    if report.ranks:
        from .ranks import text as rank_text

        out += rank_text(report)
    out.append("\nPeaks")
    out += [f"  {label:<24}{value:>12}" for label, value in _peak_rows(report)]
    if ops := _top_op_rows(report):
        out.append("\nTop operators by self time")
        out += [f"  {name[:40]:<40}{self_s:>12}{calls:>10} calls" for name, self_s, calls in ops]
    if report.notes:
        out.append("\nNotes")
        out += [f"  - {n}" for n in report.notes]
    return "\n".join(out)


# ---------------------------------------------------------------------- HTML
#: Scoped to the summary; specific enough to win over JupyterLab's rendered-HTML table styles (right-aligned,
#: striped rows, wide padding), which would make a small table hard to read: its right alignment is (0,2,1)
#: specific (``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td``), hence the doubled class on cells.
CSS = """
.jp-perf-summary{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.45;
  color:var(--jp-ui-font-color1,#222);max-width:900px}
.jp-perf-summary h4{margin:14px 0 4px;font-size:13px;font-weight:600}
.jp-perf-summary table{border-collapse:collapse;margin:0;table-layout:auto}
.jp-perf-summary.jp-perf-summary table th,.jp-perf-summary.jp-perf-summary table td{padding:1px 14px 1px 0;
  text-align:left;vertical-align:top;line-height:1.45;border:none;white-space:normal;font-size:12px}
.jp-perf-summary table tbody tr:nth-child(n){background:transparent}
.jp-perf-summary table td.n,.jp-perf-summary table th.n{text-align:right;font-variant-numeric:tabular-nums;
  white-space:nowrap}
.jp-perf-summary table td.jpp-sub{padding-left:16px}
.jp-perf-summary .muted{color:var(--jp-ui-font-color2,#666)}
.jp-perf-summary code{font-size:12px;overflow-wrap:normal}
.jp-perf-summary .bar{display:flex;height:14px;max-width:640px;border-radius:3px;overflow:hidden;
  background:var(--jp-layout-color3,#ddd);margin:4px 0}
.jp-perf-summary .sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.jp-perf-summary .alert{margin:4px 0;padding:4px 8px;border-left:3px solid var(--jp-error-color1,#e45756);
  background:rgba(228,87,86,.12)}
.jp-perf-summary .charts{display:flex;flex-wrap:wrap;gap:12px;margin-top:8px;color:var(--jp-ui-font-color1,#222)}
.jp-perf-summary ul,.jp-perf-summary ol{margin:2px 0;padding-left:22px}
.jp-perf-summary li{margin:3px 0}
.jp-perf-summary details{margin:2px 0 4px}
.jp-perf-summary summary{cursor:pointer;color:var(--jp-ui-font-color2,#666);font-size:12px}
.jp-perf-summary .jpp-stats{margin:8px 0 0}
.jp-perf-summary .jpp-stat{white-space:nowrap}
.jp-perf-verdict{padding:8px 12px;border:1px solid var(--jp-border-color1,#bbb);
  border-left:4px solid var(--jp-brand-color1,#1976d2);border-radius:4px;background:var(--jp-layout-color1,#fff)}
.jp-perf-verdict[data-bottleneck=compute]{border-left-color:var(--jp-success-color1,#388e3c)}
.jp-perf-verdict[data-bottleneck=none]{border-left-color:var(--jp-border-color1,#bbb)}
.jp-perf-verdict .jpp-verdict-line{font-size:15px;font-weight:600;margin-bottom:2px}
.jp-perf-verdict .jpp-verdict-fix{margin-top:6px}
.jp-perf-verdict .jpp-verdict-actions{margin-top:4px;display:flex;gap:6px;align-items:center;flex-wrap:wrap}
.jp-perf-comparison.jpp-outdated table,.jp-perf-comparison.jpp-outdated .jpp-judged{opacity:.55}
.jp-perf-comparison .jpp-judged{font-weight:600;margin:2px 0}
.jp-perf-comparison .jpp-judged-row td{font-weight:600}
.jp-perf-comparison td.jpp-better{color:var(--jp-success-color1,#2e7d32)}
.jp-perf-comparison td.jpp-worse{color:var(--jp-error-color1,#c62828)}
"""


def _table(rows, numeric=(), header=None) -> str:
    """A table of already-formatted cells; columns in ``numeric`` align right."""
    def cells(row, tag):
        return "".join(
            f'<{tag}{" class=n" if i in numeric else ""}>{escape(str(c))}</{tag}>' for i, c in enumerate(row)
        )

    head = f"<thead><tr>{cells(header, 'th')}</tr></thead>" if header else ""
    return "<table>" + head + "<tbody>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows) + "</tbody></table>"


def _phase_bar(report: Report) -> str:
    segments = "".join(
        f'<div style="width:{100 * share:.2f}%;background:{PHASE_COLORS[p]}" title="{p} {units.percent(share)}">'
        "</div>"
        for p, _, share in _phase_rows(report)
        if share
    )
    return f'<div class="bar">{segments}</div>'


def _phase_table(report: Report) -> str:
    rows = "".join(
        f'<tr><td><span class="sw" style="background:{PHASE_COLORS[p]}"></span>{p}</td>'
        f'<td class="n">{units.duration(s)}</td><td class="n">{units.percent(share)}</td></tr>'
        for p, s, share in _phase_rows(report)
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _findings_html(report: Report) -> str:
    items = "".join(
        f"<li>{verdict.prose_html(_finding_line(f))}"
        + (f"<details><summary>evidence</summary>{evidence.html_table(f.evidence)}</details>" if f.evidence else "")
        + "</li>"
        for f in _findings(report)
    )
    return f"<h4>Findings</h4><ul>{items}</ul>" if items else ""


def _fixes_html(report: Report) -> str:
    """The recommendations as a plain list, for views without the optimization panel."""
    items = "".join(
        f'<li class="jp-perf-rec" data-optimization="{escape(r.optimization)}"><code>{escape(opt)}</code> '
        f"<b>{escape(verdict.title(r.optimization))}</b> · {escape(gain)}<div>{escape(reason)}</div></li>"
        for r, (opt, gain, reason) in zip(report.recommendations, _recommendation_rows(report))
    )
    return f'<h4>Fixes</h4><ol class="jp-perf-recs">{items}</ol>' if items else ""


def fixes_mimebundle(report: Report) -> dict[str, str]:
    """The list of fixes alone: shown where the optimization panel was to follow the summary and could not."""
    return {"text/plain": "\n".join(_fixes_text(report)),
            "text/html": f'<div class="jp-perf-summary"><style>{CSS}</style>{_fixes_html(report)}</div>'}


def _cpu_series(report: Report) -> dict[str, list[float | None]]:
    """The machine's CPU and this kernel's with its workers, both in percent of the machine (as live)."""
    tl, cores = report.timeline, report.environment.get("cpu_count") or 1
    process = tl.get("proc_cpu_percent") or []
    return {"machine": tl.get("cpu_percent") or [],
            "this kernel + workers": [machine_share(v, cores) for v in process]}


def charts_section(report: Report) -> str:
    """CPU, host memory and (when sampled) GPU utilisation and memory against time, as inline SVG charts."""
    tl = report.timeline
    t = tl.get("t") or []
    if len(t) < 2:
        return ""
    gpus = sorted({int(m.group(1)) for k in tl if (m := re.match(r"gpu(\d+)_", k))})
    specs: list[tuple[str, str, dict[str, list[float | None]]]] = [
        ("CPU", CPU_UNIT, _cpu_series(report)),
        ("Host memory", "B", {"kernel": tl.get("rss") or [], "workers": tl.get("rss_children") or []}),
        ("GPU utilisation", "%", {f"GPU{i}": tl.get(f"gpu{i}_util") or [] for i in gpus}),
        ("GPU memory", "B", {**{f"GPU{i}": tl.get(f"gpu{i}_mem_used") or [] for i in gpus},
                             "torch allocated": tl.get("cuda_allocated") or []}),
    ]
    charts = []
    for title, unit, columns in specs:
        series = {name: col for name, col in columns.items() if any(v is not None for v in col)}
        if not series:
            continue
        top = 100.0 if unit.startswith("%") else None
        if unit == "B":
            peak = max(v for col in series.values() for v in col if v is not None)
            scale, unit = units.size_unit(peak)
            series = {k: [None if v is None else v / scale for v in col] for k, col in series.items()}
        charts.append(line_chart(series, t, title, unit, width=340, height=140, y_max=top))
    return f'<h4>Over time</h4><div class="charts">{"".join(charts)}</div>' if charts else ""


def html_summary(report: Report, panel: bool = False) -> str:
    """The same content as ``text_summary`` as a self-contained fragment: scoped CSS, inline SVG, no JS.

    ``panel``: the optimization panel follows, with the fixes as cards and the verdict's buttons.
    """
    h = [f'<div class="jp-perf-summary"><style>{CSS}</style>', verdict.html(report, panel)]
    h += [f'<div class="alert">{escape(a)}</div>' for a in _alerts(report)]
    h.append(
        '<div class="jpp-stats"><b>jupyter-perf</b> · '
        + " · ".join(f'<span class="jpp-stat"><span class="muted">{k}</span> <b>{escape(v)}</b></span>'
                     for k, v in _headline(report))
        + "</div>"
    )
    h.append(f"<h4>Step breakdown (mean {units.duration(report.step_time)})</h4>")
    h.append(_phase_bar(report) + _phase_table(report) if report.steps
             else '<div class="muted">no steps recognised</div>')
    h.append(_findings_html(report))
    if not panel:
        h.append(_fixes_html(report))
    h.append(charts_section(report))
    if report.ranks:
        from .ranks import html as rank_html

        h.append(rank_html(report))
    h.append("<h4>Peaks</h4>" + _table(_peak_rows(report), numeric=(1,)))
    if ops := _top_op_rows(report):
        h.append("<h4>Top operators by self time</h4>")
        h.append(_table(ops, numeric=(1, 2), header=("operator", "self time", "calls")))
    if report.notes:
        h.append(f"<details><summary>Notes ({len(report.notes)}): what this run could not measure, and how it "
                 "sampled</summary><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul></details>")
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


def mimebundle(report: Report, panel: bool = False) -> dict[str, Any]:
    # The interactive timelines (bokeh_timelines.py): a part the JupyterLab extension draws over the HTML's
    # static charts, which stay for every view without it.
    from .bokeh_timelines import interactive_timelines

    return {"text/plain": text_summary(report), "text/html": html_summary(report, panel),
            REPORT_MIME: report_part(report), **interactive_timelines(report)}


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
        "--jp-layout-color0:#111;--jp-layout-color1:#1a1a1a;--jp-layout-color3:#444;--jp-border-color1:#555}}"
        "body{margin:16px;background:var(--jp-layout-color0,#fff)}</style></head>\n<body>\n"
        f"{html_summary(report)}\n"
        f'<script type="application/json" id="jupyter-perf-report">{_script_json(report.to_json())}</script>\n'
        "</body></html>\n"
    )
