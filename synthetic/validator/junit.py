"""The JUnit XML form of a validation report, one testcase per known rule."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from synthetic.validator.model import Finding, ValidationReport
from synthetic.validator.rules import RULES


def write_junit(report: ValidationReport, path: Path) -> None:
    """JUnit XML with one testcase per known rule (not per file, so CI dashboards stay stable).

    A rule with error findings (its own severity, or any rule under ``--strict``) is a ``<failure>``
    whose text lists them, one ``path: message`` per line. Warning findings never fail the build: they
    go to the testcase's ``<system-out>``. Rules that did not fire are passing testcases, so the report
    also says what was checked; rules disabled with ``--skip`` are ``<skipped>`` testcases.
    """
    grouped: dict[str, list[Finding]] = {}
    for f in report.findings:
        grouped.setdefault(f.rule, []).append(f)
    failing = {r for r, fs in grouped.items() if any(f.severity == "error" for f in fs)}
    suite = ET.Element(
        "testsuite",
        name="rhin.validate-storage",
        tests=str(len(RULES)),
        failures=str(len(failing)),
        errors="0",
        skipped=str(len(report.skipped)),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="root", value=report.root)
    ET.SubElement(props, "property", name="files", value=str(report.files))
    ET.SubElement(props, "property", name="strict", value=str(report.strict).lower())
    for rule in sorted(RULES):
        info = RULES[rule]
        case = ET.SubElement(suite, "testcase", classname="ssmix2", name=f"{rule}: {info.title}")
        if rule in report.skipped:
            ET.SubElement(case, "skipped", message="disabled with --skip (known local deviation)")
            continue
        found = grouped.get(rule, [])
        if not found:
            continue
        text = "\n".join(f"{f.path}: {f.message}" for f in found)
        if rule in failing:
            failure = ET.SubElement(case, "failure", type="error", message=f"{len(found)} finding(s)")
            failure.text = text
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{len(found)} warning(s)\n{text}"
    ET.indent(suite)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
