"""The answer first: the bottleneck in plain words with its one key number, and the top fix with its gain.

The summary opens with this box (``summary.py``). Its fix carries Apply and Apply & re-run where the
optimization panel shows (``panel.py``): the panel's view draws its top card's buttons into the box's
``.jpp-verdict-actions`` slot, found by the run's ``data-started`` time among the outputs of its own cell,
so the buttons are the panel's own, live, in JupyterLab, Notebook 7 and VS Code, with or without the
JupyterLab extension. Until a view fills the slot (a saved notebook reopened without its kernel, nbconvert,
GitHub) it says where the fixes are; without widgets it names the magic option that applies the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from .. import units
from ..catalog import CATALOG
from ..report import PHASES, Finding, Recommendation, Report

#: A name in a finding's sentence, as diagnosis quotes it: `loader`.
_BACKTICKS = re.compile(r"`([^`\n]+)`")
#: What a recommendation reads where the report could not estimate its gain.
NO_ESTIMATE = "gain: measure with Apply & re-run"
#: The same where there are no buttons (a terminal, an exported page).
NO_ESTIMATE_PLAIN = "gain not estimated: measure it after applying"

#: Each bottleneck in plain words; ``{share}`` is its share of the step, where the sentence has one.
SENTENCES = {
    "input_pipeline": "The model waits for data {share} of each step",
    "host_to_device": "Copies from host memory take {share} of each step",
    "launch_overhead": "Launching many small operations costs {share} of each step",
    "host_sync": "Waiting on device-to-host syncs costs {share} of each step",
    "compute": "The model's own math takes {share} of each step: the healthy case",
    "disk_io": "Reading input from storage takes {share} of each step",
    "communication": "Waiting on the other ranks' gradients takes {share} of each step",
    "memory_capacity": "Memory is nearly full",
    "memory_leak": "Memory grows step after step",
    "none": "Too little ran to name a bottleneck",
}
#: The phases whose share of the step a bottleneck is, where its finding has no share of its own.
_PHASES_OF = {
    "input_pipeline": ("data_wait",),
    "disk_io": ("data_wait",),
    "host_to_device": ("host_to_device",),
    "communication": ("communication",),
    "compute": ("forward", "backward", "optimizer"),
}


@dataclass(frozen=True)
class Verdict:
    """What the box says: the sentence, the finding behind it, and the top fix."""

    sentence: str
    finding: Finding | None
    fix: Recommendation | None


def verdict(report: Report) -> Verdict:
    main = next((f for f in report.findings if f.bottleneck == report.bottleneck), None)
    return Verdict(_sentence(report, main), main, report.recommendations[0] if report.recommendations else None)


def gain(rec: Recommendation, buttons: bool = True) -> str:
    """``expected ×1.64``, ``frees about 1.20 GiB at the peak``, or how to measure it where not estimated."""
    if rec.expected_speedup is not None:
        return f"expected {units.ratio(rec.expected_speedup)}"
    if rec.expected_freed_bytes:
        return f"frees about {units.size(rec.expected_freed_bytes)} at the peak"
    return NO_ESTIMATE if buttons else NO_ESTIMATE_PLAIN


def title(opt_id: str) -> str:
    entry = CATALOG.get(opt_id)
    return entry.title if entry is not None else opt_id


def html(report: Report, panel: bool) -> str:
    """The box; ``panel``: the optimization panel follows and fills the fix's buttons in."""
    v = verdict(report)
    parts = [f'<div class="jpp-verdict-line">{escape(v.sentence)}</div>']
    why = v.finding.summary if v.finding is not None else ""
    parts.append(
        f'<div class="jpp-verdict-why">{prose_html(why)} <span class="muted">bottleneck: '
        f"<code>{escape(report.bottleneck)}</code></span></div>"
    )
    if v.fix is not None:
        rec = v.fix
        parts.append(
            f'<div class="jpp-verdict-fix"><span class="muted">Top fix</span> <b>{escape(title(rec.optimization))}</b> '
            f"<code>{escape(rec.optimization)}</code> · {escape(gain(rec, buttons=panel))}"
            f'<div class="jpp-verdict-actions" data-optimization="{escape(rec.optimization)}">'
            f"{_placeholder(rec, panel)}</div></div>"
        )
    elif report.bottleneck not in ("compute", "none"):
        parts.append('<div class="jpp-verdict-fix muted">No one-click fix for this: see the findings below.</div>')
    return (
        f'<div class="jp-perf-verdict" data-bottleneck="{escape(report.bottleneck)}" '
        f'data-started="{escape(report.started_at)}">{"".join(parts)}</div>'
    )


def prose_html(text: str) -> str:
    """A finding's sentence as HTML: escaped, its `names` in backticks (as diagnosis writes them) as code."""
    return _BACKTICKS.sub(r"<code>\1</code>", escape(text))


def text(report: Report) -> list[str]:
    """The box as lines for a terminal: the sentence, why, and the fix with the option that applies it."""
    v = verdict(report)
    lines = [v.sentence + f"  [bottleneck: {report.bottleneck}]"]
    if v.finding is not None:
        lines.append(f"  {v.finding.summary}")
    if v.fix is not None:
        rec = v.fix
        lines.append(f"  top fix: {title(rec.optimization)} ({rec.optimization}), {gain(rec, buttons=False)}: "
                     f"%%perfprofile --apply {rec.optimization}")
    return lines


def _placeholder(rec: Recommendation, panel: bool) -> str:
    """What the buttons' slot shows until the panel's view fills it (or for good, without widgets)."""
    if panel:
        return ('<span class="muted">Apply it from the optimization panel below (it needs the kernel that ran '
                "this)</span>")
    return (f'<span class="muted">Apply it and profile again: <code>%%perfprofile --apply {escape(rec.optimization)}'
            "</code></span>")


def _sentence(report: Report, main: Finding | None) -> str:
    bottleneck = report.bottleneck
    template = SENTENCES.get(bottleneck, bottleneck)
    if bottleneck == "memory_leak" and (growth := _growth_per_step(main)) is not None:
        return f"Memory grows {units.size(growth)} per step"
    if bottleneck == "memory_capacity" and main is not None and main.evidence.get("oom"):
        return "The run ran out of memory"
    if bottleneck == "memory_capacity" and (peak := _fullest(main)) is not None:
        return f"{peak['where']} memory peaked at {units.percent(peak['fraction'])} of its capacity"
    if bottleneck == "none":
        return f"{template} ({report.steps} step{'s' if report.steps != 1 else ''} recognised)"
    share = main.share if main is not None and main.share is not None else _phase_share(report, bottleneck)
    if "{share}" in template:
        return template.format(share=units.percent(share)) if share is not None else template.split(" {share}")[0]
    return template


def _phase_share(report: Report, bottleneck: str) -> float | None:
    phases = _PHASES_OF.get(bottleneck)
    total = sum(v for p in PHASES if (v := report.phases.get(p)) is not None)
    if not phases or total <= 0:
        return None
    return sum(report.phases.get(p) or 0.0 for p in phases) / total


def _growth_per_step(main: Finding | None) -> float | None:
    """The steepest fitted growth the leak finding names (bytes per step)."""
    fits = main.evidence.get("fits") if main is not None else None
    if not isinstance(fits, dict):  # (a run too short to fit says so in words)
        return None
    slopes = [f["per_step_bytes"] for f in fits.values() if isinstance(f, dict)]
    return max(slopes) if slopes else None


def _fullest(main: Finding | None) -> dict | None:
    memory = main.evidence.get("memory") if main is not None else None
    pressures = [p for p in memory or [] if isinstance(p, dict) and p.get("fraction") is not None]
    return max(pressures, key=lambda p: p["fraction"]) if pressures else None
