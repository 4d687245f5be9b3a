"""Reports of a scenario run: JSON (the results, readable back), JUnit XML and a self-contained HTML page.

:func:`write_reports` writes all three into one folder (``reports/<timestamp>/`` by default in ``rhin run``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from harness.scenarios.results import RunResult

from .html import html_report, write_html
from .junit import junit_xml, write_junit

__all__ = [
    "default_report_dir",
    "html_report",
    "junit_xml",
    "read_json",
    "write_html",
    "write_json",
    "write_junit",
    "write_reports",
]


def write_json(result: RunResult, path: Path) -> Path:
    path.write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> RunResult:
    return RunResult.from_json(json.loads(path.read_text(encoding="utf-8")))


def write_reports(result: RunResult, folder: Path) -> dict[str, Path]:
    """report.json, junit.xml and report.html in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "json": write_json(result, folder / "report.json"),
        "junit": write_junit(result, folder / "junit.xml"),
        "html": write_html(result, folder / "report.html"),
    }


def default_report_dir(root: Path = Path("reports")) -> Path:
    """``reports/<local timestamp>`` (a new folder per run; the wall clock is fine for report names)."""
    return root / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
