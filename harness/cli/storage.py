"""``rhin validate-storage``: SS-MIX2 standardized storage checked against the validator's rules.

Selection flags (which rules run, how strictly) belong here, beside the command they narrow; the rules
themselves are :mod:`synthetic.validator`'s.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from synthetic.ssmix2.layout import STORAGE
from synthetic.validator import (
    RULES,
    Finding,
    ValidationReport,
    ValidatorConfig,
    rules_listing,
    validate_storage,
    write_junit,
)

from .options import Jobs, progress_bar

__all__ = ["validate_storage_cmd"]


def _print_rules(value: bool) -> None:
    if value:
        for rule, severity, title, source in rules_listing():
            sys.stdout.write(f"{rule}\t{severity}\t{title}\t{source}\n")
        raise typer.Exit(0)


def validate_storage_cmd(
    path: Annotated[
        Path, typer.Argument(help="A storage root (its children are pid[0:3] folders) or a world directory.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")] = None,
    jobs: Jobs = 0,
    show: Annotated[int, typer.Option("--show", min=0, help="How many findings to list (text output).")] = 40,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings count as errors.")] = False,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Disable a rule (repeatable).")] = None,
    rules: Annotated[
        bool, typer.Option("--rules", is_eager=True, callback=_print_rules, help="List every rule and exit.")
    ] = False,
) -> None:
    """Validate SS-MIX2 standardized storage (anyone's). Exit code 1 on any error; warnings do not fail
    unless --strict."""
    try:
        config = ValidatorConfig.from_options(skip or (), strict)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--skip") from exc
    reports = []
    with progress_bar(spinner=True, bar=False, eta=False, transient=True) as bar:
        for label, root in _storage_roots(path):
            task = bar.add_task(f"validating {label}", total=None)
            reports.append((label, validate_storage(root, jobs=jobs, progress=partial(bar.advance, task))))
    report = config.apply(_merge(path, reports))
    if junit is not None:
        write_junit(report, junit)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_validation(report, show)
        for line in config.describe():
            Console().print(line)
    raise typer.Exit(1 if report.errors else 0)


def _storage_roots(path: Path) -> list[tuple[str, Path]]:
    """A world directory means every facility root under its storage/; anything else is one root."""
    if (path / "world.json").is_file() and (path / STORAGE).is_dir():
        return [(f"{STORAGE}/{p.name}", p) for p in sorted((path / STORAGE).iterdir()) if p.is_dir()]
    return [(str(path), path)]


def _merge(path: Path, reports: list[tuple[str, ValidationReport]]) -> ValidationReport:
    if len(reports) == 1:
        return reports[0][1]
    findings = [
        Finding(f.rule, f.severity, f"{label}/{f.path}", f.message)
        for label, r in reports
        for f in r.findings
    ]
    return ValidationReport(str(path), sum(r.files for _, r in reports), findings)


def _print_validation(report: ValidationReport, show: int) -> None:
    out = Console()
    table = Table(
        title=f"{report.root}: {report.files:,} files, {report.errors:,} errors, {report.warnings:,} warnings"
    )
    for column in ("rule", "severity", "errors", "warnings", "what"):
        table.add_column(column)
    for rule, counts in report.by_rule().items():
        info = RULES.get(rule)
        table.add_row(
            rule,
            info.severity if info else "?",
            f"{counts.get('error', 0):,}",
            f"{counts.get('warning', 0):,}",
            info.title if info else "",
        )
    out.print(table)
    for finding in report.findings[:show]:
        colour = "red" if finding.severity == "error" else "yellow"
        out.print(
            f"[{colour}]{finding.severity}[/] {finding.rule} {finding.path}: {finding.message}",
            highlight=False,
            soft_wrap=True,
        )
    if len(report.findings) > show:
        out.print(f"… {len(report.findings) - show:,} more (use --json for all)")
