"""Reading the Report the way every rule needs it, and writing numbers plainly.

The rules share these helpers so that "missing" means the same everywhere: a
reader returns None when the Report lacks what it needs, never 0, and the rule
decides whether that silences it or earns a ``<rule>.not_measured`` finding.
"""

from __future__ import annotations

from typing import Any

from ..catalog import CATALOG
from ..report import Finding, Recommendation, Report
from ..units import duration, size  # noqa: F401  (the rules' wording)

#: Bottlenecks measured as a share of the step. On a tie the earlier, more specific
#: one wins: disk_io explains the same wait as input_pipeline, and says more.
TIME_BASED = ("disk_io", "host_to_device", "host_sync", "input_pipeline", "launch_overhead", "communication")

NOT_MEASURED = "not measured"


def step_time(report: Report) -> float | None:
    """Mean seconds per step: the Report's own, else the phases' sum (they add up to it)."""
    if report.step_time:
        return report.step_time
    total = sum(v for v in report.phases.values() if v is not None)
    return total or None


def phase_share(report: Report, *phases: str) -> float | None:
    """Fraction of the mean step spent in ``phases``; None if any of them is unmeasured."""
    seconds = [s for p in phases if (s := report.phases.get(p)) is not None]
    total = step_time(report)
    if total is None or len(seconds) < len(phases):
        return None
    return sum(seconds) / total


def step_share(finding: Finding) -> float:
    """The share of the step a time-based finding stands for: its rule always measures one."""
    if finding.share is None:
        raise ValueError(f"finding {finding.id} has no share of the step")
    return finding.share


def items(report: Report, key: str) -> list[dict[str, Any]]:
    """A list-valued signal (``models``, ``dataloaders``, ...), empty when absent."""
    return report.signals.get(key) or []


def uses_cuda(report: Report) -> bool:
    """Whether the run put work on a GPU; copies and syncs only exist then."""
    if (report.signals.get("cuda") or {}).get("initialized"):
        return True
    return any(str(m.get("device") or "").startswith("cuda") for m in items(report, "models"))


def gpu_util(report: Report) -> float | None:
    """Mean NVML utilisation (percent) of the busiest GPU, taken as the one the run used."""
    utils = [g["mean_util"] for g in items(report, "gpu") if g.get("mean_util") is not None]
    return max(utils) if utils else None


def unexplained_idle(report: Report, util: float) -> float | None:
    """GPU idle fraction left after the host phases in which the device waits anyway.

    During data_wait and host_to_device the device usually has nothing queued, so that
    idle is already explained by those rules; None when those phases were not measured.
    """
    explained = phase_share(report, "data_wait", "host_to_device")
    if explained is None:
        return None
    return max(0.0, 1.0 - util / 100.0 - explained)


def backward_calls(report: Report) -> int | None:
    return (report.signals.get("backward") or {}).get("calls")


def severity(share: float, high: float) -> str:
    return "high" if share >= high else "medium"


def measured(value: Any) -> Any:
    """Evidence value, or the words 'not measured' so a reader never mistakes it for 0."""
    return NOT_MEASURED if value is None else value


def not_measured(rule: str, what: str, missing: list[str]) -> Finding:
    """The finding a rule leaves when a signal it needs is absent."""
    return Finding(
        id=f"{rule}.not_measured",
        severity="info",
        summary=f"{what} was not measured ({', '.join(missing)} missing), so {rule} could not be checked.",
        evidence={"rule": rule, "missing": missing},
    )


# ----------------------------------------------------------------- wording
# Sizes and durations read as everywhere else (units.py): binary sizes, three significant digits.
def pct(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def named(item: dict[str, Any], fallback: str) -> str:
    """How to call a model or loader in a sentence: its namespace name, else its class."""
    name = item.get("name")
    return f"`{name}`" if name else f"the {item.get('class') or fallback}"


# ----------------------------------------------------------- recommendations
def amdahl(fraction: float, factor: float) -> float:
    """Whole-step speedup when ``fraction`` of the step runs ``factor`` times faster."""
    return 1.0 / ((1.0 - fraction) + fraction / factor)


def recommendation(optimization: str, finding: Finding, reason: str, speedup: float | None = None,
                   **params: Any) -> Recommendation:
    """A Recommendation of a catalogued optimization for ``finding`` (an unknown id is a bug: it raises)."""
    if optimization not in CATALOG:
        raise ValueError(f"unknown optimization id {optimization!r}")
    return Recommendation(optimization, reason, speedup, finding.id, params)
