"""``rhin scenarios schema|check|list``: scenario files validated, listed, and their JSON Schema for
editors. The engine is imported inside the commands: only they need it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .options import Keyword, ScenariosRoot, Suites, Tags, fail

__all__ = ["scenario_root", "scenarios_check", "scenarios_list", "scenarios_schema"]


def scenario_root(root: Path | None) -> Path:
    """``--scenarios``, else the default suites root."""
    from harness.scenarios.runner import default_scenarios_root

    return root if root is not None else default_scenarios_root()


def scenarios_schema(
    target: Annotated[bool, typer.Option("--target", help="The target file's schema instead.")] = False,
) -> None:
    """Print the JSON Schema of scenario files (or of --target files), for editors."""
    from harness.scenarios import schema
    from harness.targets import TargetFile

    data = TargetFile.model_json_schema(by_alias=True) if target else schema()
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def scenarios_check(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: all).")] = None,
    root: ScenariosRoot = None,
) -> None:
    """Validate scenario files; every problem is printed with file, line and key. Exit 1 on any."""
    from harness.scenarios import FormatError, discover

    try:
        found = discover(scenario_root(root), paths or [])
    except FormatError as exc:
        Console(stderr=True).print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    total = sum(s.scenario.assertion_count for s in found)
    print(f"ok: {len(found)} scenarios, {total} assertions")


def scenarios_list(
    suite: Suites = None,
    tag: Tags = None,
    keyword: Keyword = None,
    root: ScenariosRoot = None,
) -> None:
    """List the scenarios a selection picks, with their assertion counts."""
    from harness.scenarios import ScenarioError, discover, select

    try:
        chosen = select(discover(scenario_root(root)), suites=suite or [], tags=tag or [], keyword=keyword)
    except ScenarioError as exc:
        fail(str(exc))
    table = Table(
        title=f"{len(chosen)} scenarios, {sum(s.scenario.assertion_count for s in chosen)} assertions"
    )
    for column in ("suite", "id", "assertions", "tags", "title"):
        table.add_column(column)
    for s in chosen:
        sc = s.scenario
        table.add_row(s.suite, sc.id, str(sc.assertion_count), ", ".join(sc.tags), sc.title)
    Console().print(table)
