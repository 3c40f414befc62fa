"""The static summary: every section, honest about missing values, valid self-contained HTML."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from jupyter_perf.report import Finding, Recommendation, Report
from jupyter_perf.ui import evidence
from jupyter_perf.ui.summary import (
    REPORT_MIME,
    Summary,
    html_document,
    html_summary,
    mimebundle,
    report_part,
    text_summary,
)
from jupyter_perf.ui.svg import MAX_POINTS, line_chart
from jupyter_perf.ui.verdict import NO_ESTIMATE_PLAIN

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


#: Sizes in decimal units ("MB", "GB", "kB") are never shown: every size is binary (units.py).
DECIMAL_SIZE = re.compile(r"\d\s*(?:[kKMGT]B)\b")


# ---------------------------------------------------------------- plain text
def test_text_opens_with_the_verdict_then_every_section_with_its_numbers():
    text = text_summary(full_report())
    first, why, fix, stats = text.splitlines()[:4]
    assert first == "jupyter-perf · The model waits for data 50% of each step  [bottleneck: input_pipeline]"
    assert why.strip() == "the GPU waits 50 ms per step for batches"
    assert fix.strip() == ("top fix: Load batches in worker processes (dataloader.workers), expected ×1.80: "
                           "%%perfprofile --apply dataloader.workers")
    assert stats.strip() == "wall time 12.3 s · steps 100 (DataLoader batches) · steps/s 10.0 · samples/s 320"
    assert "Step breakdown (mean 100 ms)" in text
    assert line(text, "data_wait").split() == ["data_wait", "50.0", "ms", "50%", "█" * 10]
    assert line(text, "forward").split()[:4] == ["forward", "20.0", "ms", "20%"]
    assert line(text, "kernel RSS").endswith("1.50 GiB")
    assert line(text, "DataLoader workers RSS").endswith("300 MiB")
    assert line(text, "GPU0 memory used").endswith("10.0 GiB")
    assert line(text, "torch allocated").endswith("8.00 GiB")
    assert "[high] input_pipeline.few_workers: the GPU waits 50 ms per step for batches (50% of step time)" in text
    assert line(text, "data wait share").split()[-1] == "50%"
    assert re.search(r"^\s+data wait\s+50.0 ms$", text, re.M)
    assert "[low] host_sync.item: <b>.item()</b> syncs every step (4.00% of step time)" in text
    fixes = text[text.index("Fixes"):]
    assert fixes.index("dataloader.workers (num_workers=4)") < fixes.index("precision.amp")
    assert "1. dataloader.workers (num_workers=4) (expected ×1.80): load batches in parallel" in fixes
    assert f"2. precision.amp ({NO_ESTIMATE_PLAIN}): tensor cores idle" in fixes
    assert line(text, "aten::addmm").split() == ["aten::addmm", "12.3", "ms", "400", "calls"]
    assert "- NVML power readings unavailable" in text
    assert "error" not in text and "interrupted" not in text
    assert not DECIMAL_SIZE.search(text)


def test_missing_values_are_dashes_not_zeros():
    report = full_report(
        throughput={"steps_per_s": 10.0},
        phases={"data_wait": 0.05, "forward": 0.05},
        peaks={"rss_bytes": 1 * GiB},
        recommendations=[Recommendation("precision.amp", "tensor cores idle")],
        deep=None,
    )
    text = text_summary(report)
    assert line(text, "wall time").endswith("samples/s —")
    assert line(text, "host_to_device").split() == ["host_to_device", "—", "—"]
    assert line(text, "data_wait").split()[:4] == ["data_wait", "50.0", "ms", "50%"]
    assert line(text, "DataLoader workers RSS").endswith("—")
    assert line(text, "GPU memory").endswith("—")
    assert "0 B" not in text and "0.0 MiB" not in text
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
    assert text.splitlines()[0] == ("jupyter-perf · Too little ran to name a bottleneck (0 steps recognised)  "
                                    "[bottleneck: none]")
    check_html(html_summary(Report()))


@pytest.mark.parametrize("overrides, sentence", [
    ({}, "The model waits for data 50% of each step"),
    ({"bottleneck": "compute", "findings": []}, "The model's own math takes 40% of each step: the healthy case"),
    ({"bottleneck": "memory_leak", "findings": [Finding(
        "memory_leak", "high", "Host memory grew 6.00 MiB per step", {"fits": {
            "rss_total": {"per_step_bytes": 6 * MiB}, "heap_in_use": "too few samples after warm-up"}},
        "memory_leak")]}, "Memory grows 6.00 MiB per step"),
    ({"bottleneck": "memory_capacity", "findings": [Finding(
        "memory_capacity", "high", "GPU0 memory peaked", {"oom": False, "memory": [
            {"where": "GPU0", "peak_bytes": 75 * GiB, "total_bytes": 80 * GiB, "fraction": 0.9375}]},
        "memory_capacity")]}, "GPU0 memory peaked at 94% of its capacity"),
])  # fmt: skip
def test_the_verdict_says_the_bottleneck_in_words_with_its_key_number(overrides, sentence):
    html = html_summary(full_report(**overrides))
    verdict = re.search(r'<div class="jpp-verdict-line">([^<]*)</div>', html).group(1)
    assert html.index('class="jp-perf-verdict"') < html.index('class="jpp-stats"')  # first, before the numbers
    assert verdict.replace("&#x27;", "'") == sentence


# ---------------------------------------------------------------------- HTML
def test_html_is_well_formed_self_contained_and_has_the_content():
    html = html_summary(full_report())
    checker = check_html(html)
    assert html.startswith('<div class="jp-perf-summary"><style>')
    # the scoped style block must not leak rules onto the rest of the notebook
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert all(rule.strip().startswith((".jp-perf-summary", ".jp-perf-verdict", ".jp-perf-comparison"))
               for rule in re.findall(r"[^{}]+(?=\{)", css))
    assert "var(--jp-ui-font-color1" in css
    assert "<script" not in html
    assert 'style="width:50.00%;background:' in html  # data_wait segment of the phase bar
    assert "width:0.00%" not in html  # a zero phase draws nothing
    for fragment in ("12.3 s", ">320<", "50.0 ms", "1.50 GiB", "300 MiB", "input_pipeline", "expected ×1.80",
                     "dataloader.workers", "aten::addmm", "NVML power readings unavailable", NO_ESTIMATE_PLAIN):
        assert fragment in html, fragment
    assert "&lt;b&gt;.item()&lt;/b&gt;" in html  # user text is escaped, not markup
    assert checker.tags.count("svg") == 4  # CPU, host memory, GPU util, GPU memory
    assert not DECIMAL_SIZE.search(re.sub(r"<[^>]+>", " ", html))


def test_the_fixes_are_listed_where_no_panel_follows_and_the_verdict_leaves_the_panel_its_buttons():
    report = full_report()
    alone, with_panel = html_summary(report), html_summary(report, panel=True)
    assert 'class="jp-perf-rec"' in alone and "%%perfprofile --apply dataloader.workers" in alone
    assert "jp-perf-rec" not in with_panel and "<h4>Fixes</h4>" not in with_panel  # the panel's cards are the list
    slot = re.search(r'<div class="jpp-verdict-actions" data-optimization="([^"]+)">(.*?)</div>', with_panel)
    assert slot.group(1) == "dataloader.workers" and "optimization panel below" in slot.group(2)
    assert 'data-started="2024-05-01T10:00:00"' in with_panel  # how the panel's view finds its verdict
    assert Summary(report, panel=True)._repr_mimebundle_() == mimebundle(report, panel=True)
    assert "Fixes" in mimebundle(report, panel=True)["text/plain"]  # frontends without HTML keep the list


def test_evidence_is_a_table_of_labels_and_values_in_their_units_folded_under_its_finding():
    rows = evidence.rows({
        "data_wait_share": 0.30123456789, "data_wait_s": 0.0702, "storage_read_bytes": 419430.4, "threshold": 0.1,
        "pin_memory": False, "us_per_leaf_call": 12.5, "read_bytes_per_s": 3 * MiB,
        "dataloaders": [{"name": "loader", "num_workers": 0, "batch_size": 16}],
        "fits": {"rss_total": {"per_step_bytes": 6 * MiB, "r2": 0.9912345}},
    })  # fmt: skip
    assert rows == [
        (0, "data wait share", "30%"), (0, "data wait", "70.2 ms"), (0, "storage read", "410 KiB"),
        (0, "threshold", "0.100"), (0, "pin memory", "no"), (0, "time per leaf call", "12.5 µs"),
        (0, "read", "3.00 MiB/s"), (0, "dataloaders", ""), (1, "loader", ""), (2, "num workers", "0"),
        (2, "batch size", "16"), (0, "fits", ""), (1, "rss total", ""), (2, "per step", "6.00 MiB"),
        (2, "r2", "0.991"),
    ]  # fmt: skip
    html = html_summary(full_report())
    assert "<details><summary>evidence</summary><table class=\"jpp-evidence\">" in html
    assert "{'" not in html and "data_wait_share=" not in html  # no Python dict, no raw keys


def test_notes_are_folded_away_from_the_answer():
    html = html_summary(full_report(notes=["malloc statistics sampled at one sample in 4"]))
    fold = html[html.index("<details><summary>Notes (1)"):]
    assert "malloc statistics sampled" in fold[:fold.index("</details>")]


def test_the_cpu_chart_reads_percent_of_the_machine_like_the_live_view():
    report = full_report(environment={"cpu_count": 2}, timeline={
        "t": [0.0, 0.5, 1.0], "cpu_percent": [50.0, 90.0, 60.0], "proc_cpu_percent": [100.0, 180.0, 120.0]})
    svg = re.search(r'<svg[^>]*aria-label="CPU".*?</svg>', html_summary(report)).group(0)
    assert "CPU (% of the machine&#x27;s cores)" in svg  # the live view's scale and words
    assert "this kernel + workers" in svg and ">100<" in svg  # the axis ends at 100
    assert "time (s)" in svg


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
    assert ">100<" in svg  # the single spike sets the axis: its top tick is the round value above it
    assert len(svg) < 40_000


def test_svg_time_axis_reads_from_zero():
    # the sampler's first row is taken microseconds after the start
    svg = line_chart({"a": [1.0, 2.0, 3.0]}, [2.06e-6, 0.5, 12.25], "t", "%")
    assert ">0<" in svg and ">12.2<" in svg and "time (s)" in svg and "e-06" not in svg


def test_svg_without_data_says_so():
    svg = line_chart({"a": [None, None]}, [0.0, 1.0], "empty", "%")
    check_html(svg)
    assert "no data" in svg and "<path" not in svg


def test_imports_nothing_heavy():
    heavy = "{'torch', 'ipywidgets'}"
    code = f"import sys, jupyter_perf.ui.summary; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_names_in_a_finding_read_as_code_and_a_share_is_said_once():
    finding = Finding("input_pipeline", "high", "The model waited for data 37% of each step; `loader` loads "
                      "batches in the main process", {}, "input_pipeline", share=0.37)
    html = html_summary(full_report(bottleneck="input_pipeline", findings=[finding]))
    assert "<code>loader</code> loads batches" in html and "`" not in html.split("</style>", 1)[1]
    assert "37% of step time" not in html and "37% of step time" not in text_summary(
        full_report(bottleneck="input_pipeline", findings=[finding]))
    # a headline's label and value never part across lines
    assert '<span class="jpp-stat"><span class="muted">samples/s</span>' in html


def test_a_fix_without_an_estimate_says_how_to_measure_it_never_a_bare_dash():
    from html import escape

    from jupyter_perf.ui import verdict as box

    report = full_report(recommendations=[Recommendation("precision.amp", "tensor cores idle", None)])
    with_panel = html_summary(report, panel=True)
    assert f"· {escape(box.NO_ESTIMATE)}" in with_panel  # the verdict's top fix, where the panel's buttons follow
    assert box.NO_ESTIMATE_PLAIN in html_summary(report) and box.NO_ESTIMATE_PLAIN in text_summary(report)
    for shown in (with_panel, text_summary(report)):
        assert "—:" not in shown and "— :" not in shown
