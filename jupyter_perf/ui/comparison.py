"""A before/after Comparison as text and HTML: the metric the fix targets first, judged against the noise.

The headline names the targeted metric (``report.Comparison.judged``) and whether it moved beyond the
noise the two runs' step times show; a regression banner appears only when that metric got worse. Every
other row says better or worse only beyond the same noise. A comparison whose change was undone is marked
out of date. What the optimization panel shows in a card, what ``--compare`` displays.
"""

from __future__ import annotations

from html import escape

from .. import units
from ..report import PEAK_NOISE, Comparison, Metric, samples_per_step
from .summary import CSS
from .verdict import title

#: The words for a row's verdict; a change within the noise reads as "same".
VERDICT_WORDS = {"better": "better", "worse": "worse", "same": "within noise", None: ""}


def value(metric: Metric, v: float | None) -> str:
    if metric.unit == "B/step":
        return units.MISSING if v is None else units.size(v, signed=True) + "/step"
    if metric.unit == "B":
        return units.size(v)
    if metric.unit == "s":
        return units.duration(v)
    return units.number(v)


def change(metric: Metric) -> str:
    """After against before: a ratio, or for a growth per step the difference."""
    if metric.unit == "B/step":
        if metric.before is None or metric.after is None:
            return units.MISSING
        return units.size(metric.after - metric.before, signed=True) + "/step"
    return units.ratio(metric.ratio)


def rows(comparison: Comparison) -> list[tuple[str, str, str, str, str]]:
    """(metric, before, after, change, verdict) for every row; phases indented under the step time."""
    return [
        (("    " if m.indent else "") + m.name, value(m, m.before), value(m, m.after), change(m),
         VERDICT_WORDS[m.verdict])
        for m in comparison.rows()
    ]


def headline(comparison: Comparison) -> str:
    """``dataloader.workers, judged by samples/s: 68.6 → 121 (×1.76), better``."""
    judged = comparison.judged()
    what = comparison.optimization or "after vs before"
    if judged is None:
        return f"{what}: the runs share no metric to judge by"
    moved = VERDICT_WORDS[judged.verdict] or "not measured"
    return (f"{what}, judged by {judged.name}: {value(judged, judged.before)} → {value(judged, judged.after)} "
            f"({change(judged)}), {moved}")


def notes(comparison: Comparison) -> list[str]:
    """How noisy the measurement was, and why per-step rows are per sample, in words."""
    out = []
    judged = comparison.judged()
    if judged is not None and judged.unit == "B/step":
        out.append(f"noise: ±{value(judged, judged.noise).lstrip('+')} (the scatter of both runs' memory about "
                   "their fitted lines)")
    out.append(f"noise: ±{units.percent(comparison.noise)} on rates and times (from the step times of both runs)")
    if any(m.unit == "B" for m in comparison.rows()):
        out.append(f"noise: ±{units.percent(PEAK_NOISE)} on peak memory (the re-run starts from what the first run "
                   "left allocated)")
    if comparison.per_sample:
        b, a = comparison.before, comparison.after
        first = samples_per_step(b)
        held = (f"{units.count(first)} sample{'' if first == 1 else 's'} before and "
                f"{units.count(samples_per_step(a))} after")
        out.append(f"a step held {held}: times are per sample, and steps/s is left out (a step is other work)")
    return out


def alerts(comparison: Comparison) -> list[str]:
    """Out of date, a regression of the targeted metric, a failed re-run: what must not be missed."""
    out = []
    if comparison.outdated:
        out.append(f"out of date: {comparison.outdated}; these numbers describe code that is no longer there")
    judged = comparison.judged()
    if comparison.regression and judged is not None:
        out.append(f"⚠ regression: {judged.name} {change(judged)}, beyond the noise; Undo puts the objects and the "
                   "code back")
    if error := comparison.after.error:
        out.append(f"✖ the re-run raised {error.get('type', 'an error')}: {str(error.get('message', ''))[:200]}")
    return out


def text(comparison: Comparison) -> str:
    out = ["jupyter-perf before/after · " + headline(comparison), *alerts(comparison)]
    out += [f"  {n}" for n in notes(comparison)]
    out.append(f"  {'metric':<30}{'before':>16}{'after':>16}{'change':>16}")
    for metric, b, a, ratio, verdict in rows(comparison):
        out.append(f"  {metric:<30}{b:>16}{a:>16}{ratio:>16}  {verdict}".rstrip())
    return "\n".join(out)


def html(comparison: Comparison, css: str = "") -> str:
    """The comparison as a fragment (``css``: the summary's styles, where not already on the page)."""
    state = " jpp-outdated" if comparison.outdated else ""
    h = [f'<div class="jp-perf-summary jp-perf-comparison{state}">' + (f"<style>{css}</style>" if css else "")]
    name = title(comparison.optimization) if comparison.optimization else "before/after"
    h.append(f"<div><b>jupyter-perf</b> before/after · {escape(name)}</div>")
    h.append(f'<div class="jpp-judged">{escape(headline(comparison))}</div>')
    h += [f'<div class="alert">{escape(a)}</div>' for a in alerts(comparison)]
    h += [f'<div class="muted">{escape(n)}</div>' for n in notes(comparison)]
    body = "".join(
        f"<tr{' class=jpp-judged-row' if i == 0 and comparison.judged() is not None else ''}>"
        f"<td{' class=jpp-sub' if metric.startswith('    ') else ''}>{escape(metric.strip())}</td>"
        f'<td class="n">{escape(b)}</td><td class="n">{escape(a)}</td><td class="n">{escape(ratio)}</td>'
        f'<td class="jpp-{escape(verdict.split()[0]) if verdict else "none"}">{escape(verdict)}</td></tr>'
        for i, (metric, b, a, ratio, verdict) in enumerate(rows(comparison))
    )
    h.append('<table class="jpp-table"><thead><tr><th>metric</th><th class="n">before</th><th class="n">after</th>'
             f'<th class="n">change</th><th></th></tr></thead><tbody>{body}</tbody></table></div>')
    return "".join(h)


def mimebundle(comparison: Comparison) -> dict[str, str]:
    return {"text/plain": text(comparison), "text/html": html(comparison, CSS)}
