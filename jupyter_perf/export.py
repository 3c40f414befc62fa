"""``--export PATH``: the Report as JSON (re-readable) or a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from .report import Report

FORMATS = (".json", ".html")


def check_export_path(path: str | Path) -> Path:
    """Fail before the run, not after it, on a format we cannot write."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--export writes {' or '.join(FORMATS)} files, not {path.suffix or 'no extension'!r}: {path}")
    return path


def export_report(report: Report, path: str | Path) -> Path:
    path = check_export_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(report.to_json(indent=1))
    else:
        from .ui.summary import html_document

        path.write_text(html_document(report), encoding="utf-8")
    return path
