"""What the commands share: the consoles, ``fail``, one progress-bar factory and the options several commands
take (one definition each, so ``--world`` or ``--scrypt-cost`` mean the same everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.backends import BACKENDS, Backend, DockerHost

__all__ = [
    "BACKENDS",
    "SCRYPT_COST",
    "AsJson",
    "Backend",
    "DockerHost",
    "Jobs",
    "Keyword",
    "ScenariosRoot",
    "ScryptCost",
    "Suites",
    "Tags",
    "WorldDir",
    "console",
    "fail",
    "progress_bar",
]

console = Console(stderr=True)
"""Progress, notes and errors go to stderr; stdout carries only what scripts read (JSON, `ready` lines)."""

SCRYPT_COST: Final = 14
"""log2 of scrypt's N for the hub's password hashes: the hub's own default (OWASP's minimum;
:class:`simulator.hub.accounts.ScryptParams`, :data:`harness.targets.DEFAULT_SCRYPT_COST`), repeated here
so that ``rhin --help`` does not import the hub; a test keeps the three equal."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 2 (the usage-error code: bad input, not a failed run)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def progress_bar(
    *,
    spinner: bool = False,
    bar: bool = True,
    counts: bool = False,
    eta: bool = True,
    transient: bool = False,
) -> Progress:
    """The one progress display on stderr: [spinner] description [bar] done/total [counts field] elapsed
    [time left]. ``counts`` shows each task's ``counts`` field (give it in ``add_task``)."""
    columns: list[ProgressColumn] = [SpinnerColumn()] if spinner else []
    columns.append(TextColumn("[bold]{task.description}"))
    columns += [BarColumn()] if bar else []
    columns.append(MofNCompleteColumn())
    columns += [TextColumn("{task.fields[counts]}")] if counts else []
    columns.append(TimeElapsedColumn())
    columns += [TimeRemainingColumn()] if eta else []
    return Progress(*columns, console=console, transient=transient)


WorldDir = Annotated[Path, typer.Option("--world", help="A directory written by `rhin generate`.")]
Jobs = Annotated[int, typer.Option("--jobs", min=0, help="Worker processes (0: one per core).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of text.")]
ScryptCost = Annotated[
    int,
    typer.Option(
        "--scrypt-cost",
        min=4,
        max=20,
        help=f"log2 of scrypt's N for the hub's password hashes ({SCRYPT_COST} = OWASP's minimum).",
    ),
]
Suites = Annotated[list[str] | None, typer.Option("--suite", help="Only this suite (repeatable).")]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", help="T: scenarios tagged T; !T: not tagged T (repeatable).")
]
Keyword = Annotated[
    str | None, typer.Option("-k", help="e.g. 'iti9 and not needs-http': ids, titles, tags, suites.")
]
ScenariosRoot = Annotated[Path | None, typer.Option("--scenarios", help="Suites root (default ./scenarios).")]
