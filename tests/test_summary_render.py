"""The static summary: every section, honest about missing values, valid self-contained HTML."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from jupyter_perf.report import Comparison, Finding, Recommendation, Report
from jupyter_perf.ui.summary import (
    REPORT_MIME,
    comparison_html,
    comparison_mimebundle,
    comparison_text,
    html_document,
    html_summary,
    mimebundle,
    report_part,
    text_summary,
)
from jupyter_perf.ui.svg import MAX_POINTS, line_chart

GiB, MiB = 2**30, 2**20
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Checker(HTMLParser):
    """Fails on unbalanced tags and external references; collects the embedded report JSON."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.script_json: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") or (value and re.search(r"https?:|url\(", value)):
                self.errors.append(f"external reference {name}={value!r}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script" and data.strip():
            self.script_json.append(data)


def check_html(text: str) -> Checker:
    checker = Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == [], f"unclosed: {checker.stack}"
    assert "http" not in text and "@import" not in text
    return checker


def full_report(**overrides) -> Report:
    n = 50
    values = dict(
        source="for x, y in loader:\n    step(x, y)",
        started_at="2024-05-01T10:00:00",
        wall_time=12.3,
        steps=100,
        step_anchor="data",
        step_time_total=10.0,
        samples=3200,
        throughput={"steps_per_s": 10.0, "samples_per_s": 320.0},
        phases={"data_wait": 0.05, "host_to_device": 0.01, "forward": 0.02, "backward": 0.015, "optimizer": 0.005,
                "other": 0.0},
        peaks={"rss_bytes": 1.5 * GiB, "rss_children_bytes": 300 * MiB, "rss_total_bytes": 1.8 * GiB,
               "gpu0_mem_used_bytes": 10 * GiB, "cuda_allocated_bytes": 8 * GiB},
        timeline={
            "t": [i * 0.25 for i in range(n)],
            "cpu_percent": [40.0 + i % 7 for i in range(n)],
            "proc_cpu_percent": [95.0] * n,
            "rss": [1.0 * GiB + i * MiB for i in range(n)],
            "gpu0_util": [None] * 10 + [70.0] * (n - 10),
            "gpu0_mem_used": [9 * GiB] * n,
        },
        bottleneck="input_pipeline",
        findings=[
            Finding("input_pipeline.few_workers", "high", "the GPU waits 50 ms per step for batches",
                    {"data_wait_share": 0.5, "num_workers": 0, "data_wait_s": 0.05}, "input_pipeline", 0.5),
            Finding("host_sync.item", "low", "<b>.item()</b> syncs every step", {"count": 100}, "host_sync", 0.04),
        ],
        recommendations=[
            Recommendation("dataloader.workers", "load batches in parallel", 1.8, params={"num_workers": 4}),
            Recommendation("precision.amp", "tensor cores idle"),
        ],
        notes=["NVML power readings unavailable"],
        deep={"trace_path": "trace.json", "top_ops": [{"name": "aten::addmm", "self_s": 0.0123, "calls": 400},
                                                      {"name": "aten::relu", "self_s": 0.0004, "calls": 400}]},
    )
    values.update(overrides)
    return Report(**values)


def line(text: str, start: str) -> str:
    return next(ln for ln in text.splitlines() if ln.strip().startswith(start))


# ---------------------------------------------------------------- plain text
def test_text_has_every_section_with_its_numbers():
    text = text_summary(full_report())
    assert text.splitlines()[0] == (
        "jupyter-perf · wall time 12.30 s · steps 100 (DataLoader batches) · steps/s 10.0 · samples/s 320.0"
    )
    assert "Step breakdown (mean 100.0 ms)" in text
    assert line(text, "data_wait").split() == ["data_wait", "50.0", "ms", "50.0%", "█" * 10]
    assert line(text, "forward").split()[:4] == ["forward", "20.0", "ms", "20.0%"]
    assert line(text, "kernel RSS").endswith("1.50 GiB")
    assert line(text, "DataLoader workers RSS").endswith("300.0 MiB")
    assert line(text, "GPU0 memory used").endswith("10.00 GiB")
    assert line(text, "cuda allocated").endswith("8.00 GiB")
    assert "Bottleneck: input_pipeline — the device waits on the DataLoader" in text
    assert "evidence: data_wait_share=0.5, num_workers=0, data_wait_s=50.0 ms" in text
    assert "[low] host_sync.item: <b>.item()</b> syncs every step (4% of step time)" in text
    recs = text[text.index("Recommendations"):]
    assert recs.index("dataloader.workers (num_workers=4)") < recs.index("precision.amp")
    assert "×1.80" in line(text, "1. dataloader.workers")
    assert line(text, "aten::addmm").split() == ["aten::addmm", "12.3", "ms", "400", "calls"]
    assert "- NVML power readings unavailable" in text
    assert "error" not in text and "interrupted" not in text


def test_missing_values_are_dashes_not_zeros():
    report = full_report(
        throughput={"steps_per_s": 10.0},
        phases={"data_wait": 0.05, "forward": 0.05},
        peaks={"rss_bytes": 1 * GiB},
        recommendations=[Recommendation("precision.amp", "tensor cores idle")],
        deep=None,
    )
    text = text_summary(report)
    assert text.splitlines()[0].endswith("samples/s —")
    assert line(text, "host_to_device").split() == ["host_to_device", "—", "—"]
    assert line(text, "data_wait").split()[:4] == ["data_wait", "50.0", "ms", "50.0%"]
    assert line(text, "DataLoader workers RSS").endswith("—")
    assert line(text, "GPU memory").endswith("—")
    assert "0.0 MiB" not in text
    assert line(text, "1. precision.amp").split()[2] == "—"
    assert "Top operators" not in text


def test_error_interrupted_and_oom_are_said():
    error = {"type": "OutOfMemoryError", "message": "CUDA out of memory.\nTried to allocate", "oom": True}
    report = full_report(error=error, interrupted=True)
    text = text_summary(report)
    assert "✖ error: OutOfMemoryError: CUDA out of memory. [out of memory]" in text
    assert "Tried to allocate" not in text
    assert "interrupted" in text
    html = html_summary(report)
    assert "OutOfMemoryError" in html and "interrupted" in html


def test_empty_report_renders():
    text = text_summary(Report())
    assert "steps 0" in text and "steps/s —" in text
    assert "no steps recognised" in text
    assert "Bottleneck: none — too little ran to say" in text
    check_html(html_summary(Report()))


# ---------------------------------------------------------------------- HTML
def test_html_is_well_formed_self_contained_and_has_the_content():
    html = html_summary(full_report())
    checker = check_html(html)
    assert html.startswith('<div class="jp-perf-summary">')
    # the scoped style block must not leak rules onto the rest of the notebook
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert all(rule.strip().startswith(".jp-perf-summary") for rule in re.findall(r"[^{}]+(?=\{)", css))
    assert "var(--jp-ui-font-color1" in css
    assert "<script" not in html
    assert 'style="width:50.00%;background:' in html  # data_wait segment of the phase bar
    assert "width:0.00%" not in html  # a zero phase draws nothing
    for fragment in ("12.30 s", "320.0", "50.0 ms", "1.50 GiB", "300.0 MiB", "input_pipeline", "×1.80",
                     "dataloader.workers", "aten::addmm", "NVML power readings unavailable"):
        assert fragment in html, fragment
    assert "&lt;b&gt;.item()&lt;/b&gt;" in html  # user text is escaped, not markup
    assert checker.tags.count("svg") == 4  # CPU, host memory, GPU util, GPU memory


def test_html_without_gpu_has_no_gpu_charts():
    report = full_report(timeline={"t": [0.0, 0.1, 0.2], "cpu_percent": [10.0, 20.0, 30.0],
                                   "rss": [MiB, 2 * MiB, 3 * MiB]}, peaks={"rss_bytes": 3 * MiB},
                         notes=["no GPU: GPU columns absent"])
    html = html_summary(report)
    check_html(html)
    assert html.count("<svg") == 2
    assert "GPU utilisation" not in html and "no GPU: GPU columns absent" in html


def test_mimebundle_and_report_repr(ipython):
    """The extension teaches IPython to draw a Report as its summary; the Report itself stays plain data."""
    report = full_report()
    bundle = mimebundle(report)
    assert bundle == {"text/plain": text_summary(report), "text/html": html_summary(report),
                      REPORT_MIME: report_part(report)}
    shown, _metadata = ipython.display_formatter.format(report)
    assert shown == bundle
    assert not hasattr(report, "_repr_mimebundle_") and repr(report).startswith("<Report ")


def test_the_report_part_is_the_run_in_brief_for_the_labextension():
    """What labextension/src/runs.ts lists a run by, under Report.to_dict()'s names: small, strict JSON."""
    part = report_part(full_report())
    assert part == {
        "started_at": "2024-05-01T10:00:00",
        "wall_time": 12.3,
        "steps": 100,
        "throughput": {"steps_per_s": 10.0, "samples_per_s": 320.0},
        "bottleneck": "input_pipeline",
        "recommendation": {"optimization": "dataloader.workers", "expected_speedup": 1.8,
                           "reason": "load batches in parallel"},
        "error": None,
        "interrupted": False,
    }
    keys = set(full_report().to_dict())
    assert set(part) - {"recommendation", "error"} <= keys  # the Report's own field names

    failed = report_part(full_report(
        wall_time=float("nan"), throughput={"steps_per_s": float("inf")}, recommendations=[], interrupted=True,
        error={"type": "RuntimeError", "message": "CUDA out of memory. " + "x" * 5000 + "\nsecond line", "oom": True},
    ))  # fmt: skip
    assert failed["wall_time"] is None and failed["throughput"] == {"steps_per_s": None, "samples_per_s": None}
    assert failed["recommendation"] is None and failed["interrupted"] is True
    assert failed["error"]["type"] == "RuntimeError" and failed["error"]["oom"] is True
    message = failed["error"]["message"]
    assert message.startswith("CUDA out of memory.") and "second line" not in message and len(message) == 300
    assert len(json.dumps(failed, allow_nan=False)) < 2048


def test_html_document_round_trips_the_report():
    report = full_report(source='print("</script><!-- & -->")')
    page = html_document(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>jupyter-perf report — 2024-05-01T10:00:00</title>" in page
    checker = check_html(page)
    assert len(checker.script_json) == 1
    again = Report.from_dict(json.loads(checker.script_json[0]))
    assert again.to_dict() == report.to_dict()
    assert again.source == 'print("</script><!-- & -->")'


# ----------------------------------------------------------------------- SVG
def test_svg_breaks_lines_at_gaps_and_dots_lone_points():
    svg = line_chart({"a": [1.0, 2.0, None, 3.0, None, 4.0, 5.0]}, list(range(7)), "t<i>", "%")
    check_html(svg)
    d = re.search(r'<path d="([^"]+)"', svg).group(1)
    assert d.count("M") == 3  # three runs of observed samples
    assert "h0" in d  # the lone sample at x=3 is still drawn
    assert "t&lt;i&gt; (%)" in svg and "<i>" not in svg


def test_svg_downsamples_long_series_and_keeps_the_peak():
    n = 100_000
    values = [1.0] * n
    values[54_321] = 99.0
    svg = line_chart({"a": values, "b": [None] * n}, [i * 0.01 for i in range(n)], "long", "")
    check_html(svg)
    paths = re.findall(r'<path d="([^"]+)"', svg)
    assert len(paths) == 1  # the all-missing series draws nothing
    assert paths[0].count("L") + 1 <= MAX_POINTS
    assert ">99<" in svg  # the single spike sets the axis maximum
    assert len(svg) < 40_000


def test_svg_time_axis_reads_from_zero():
    # the sampler's first row is taken microseconds after the start
    svg = line_chart({"a": [1.0, 2.0, 3.0]}, [2.06e-6, 0.5, 12.25], "t", "%")
    assert ">0 s<" in svg and ">12.2 s<" in svg and "e-06" not in svg


def test_svg_without_data_says_so():
    svg = line_chart({"a": [None, None]}, [0.0, 1.0], "empty", "%")
    check_html(svg)
    assert "no data" in svg and "<path" not in svg


# ---------------------------------------------------------------- comparison
def test_comparison_flags_a_regression(ipython):
    before = full_report()
    after = full_report(wall_time=15.0, step_time_total=14.08, peaks={"rss_bytes": 1.5 * GiB},
                        throughput={"steps_per_s": 7.1, "samples_per_s": 227.2})
    cmp = Comparison(before, after)
    text = comparison_text(cmp)
    assert "⚠ regression: ×0.71 samples/s" in text
    steps = line(text, "steps/s").split()
    assert steps[-2:] == ["×0.71", "worse"]
    assert line(text, "wall time").split()[-2:] == ["×1.22", "worse"]  # longer is worse for times
    assert line(text, "peak rss ").split()[-1] == "same"
    assert line(text, "peak gpu0_mem_used").split()[-2:] == ["—", "—"]
    html = comparison_html(cmp)
    check_html(html)
    assert "⚠ regression: ×0.71 samples/s" in html
    assert comparison_mimebundle(cmp) == {"text/plain": text, "text/html": html}
    assert ipython.display_formatter.format(cmp)[0]["text/plain"] == text


def test_comparison_improvement_is_not_flagged():
    before = full_report()
    after = full_report(wall_time=7.0, step_time_total=5.5, throughput={"steps_per_s": 18.0})
    text = comparison_text(Comparison(before, after))
    assert "speedup ×1.80 (steps/s, after vs before)" in text
    assert "regression" not in text
    assert line(text, "step time").split()[-2:] == ["×0.55", "better"]


@pytest.mark.parametrize("after_wall, flagged", [(4.0, False), (6.0, True)])
def test_comparison_without_steps_uses_wall_time(after_wall, flagged):
    cmp = Comparison(Report(wall_time=5.0), Report(wall_time=after_wall))
    text = comparison_text(cmp)
    assert "wall time" in text.splitlines()[0]
    assert ("⚠ regression: ×0.83 wall time" in text) == flagged


def test_imports_nothing_heavy():
    heavy = "{'torch', 'ipywidgets'}"
    code = f"import sys, jupyter_perf.ui.summary; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
