"""`rhin`: the command line. Subcommands stay thin; the work lives in the parts they call."""

from __future__ import annotations

import json
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from synthetic import SyntheticError, load_profile, world_stats, write_world
from synthetic.ssmix2.layout import EXTENDED, IMAGES, STORAGE
from synthetic.ssmix2.writer import Options
from synthetic.validator import RULES, Finding, ValidationReport, validate_storage
from synthetic.world import default_jobs

app = typer.Typer(
    help="rhin: a test-bed for Japanese regional health information networks.", no_args_is_help=True
)
world_app = typer.Typer(help="Inspect a generated world.", no_args_is_help=True)
app.add_typer(world_app, name="world")
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the world to.")],
    profile: Annotated[
        str, typer.Option("--profile", help="Bundled profile name or a path to a profile YAML.")
    ] = "ishikawa",
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; same profile + seed → identical world.")
    ] = 42,
    patients: Annotated[
        int | None, typer.Option("--patients", min=1, help="Override the registered-patient count.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a non-empty output directory.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", min=0, help="Worker processes (0: one per core).")] = 0,
    storage: Annotated[
        bool,
        typer.Option(
            "--storage/--no-storage", help="Also write SS-MIX2 storage, documents and DICOM images."
        ),
    ] = True,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Write DICOM studies.")] = True,
    dicom_matrix: Annotated[
        int, typer.Option("--dicom-matrix", min=16, max=1024, help="DICOM image size (pixels).")
    ] = 64,
    dicom_images: Annotated[
        int, typer.Option("--dicom-images", min=1, help="At most this many images per DICOM series.")
    ] = 3,
) -> None:
    """Build a world from a profile and write it to --out: world.json, world.sqlite and, unless
    --no-storage, every disclosing facility's SS-MIX2 storage, extended storage and DICOM images."""
    try:
        prof = load_profile(profile)
    except SyntheticError as exc:
        _fail(str(exc))
        return
    if patients is not None:
        prof = prof.with_patients(patients)
    if out.exists() and any(out.iterdir()):
        if not force:
            _fail(f"{out} is not empty; pass --force to overwrite it")
        for name in ("world.json", "world.sqlite"):
            (out / name).unlink(missing_ok=True)
        for name in (STORAGE, EXTENDED, IMAGES):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{prof.name}: patients", total=prof.registered_patients)
        options = (
            Options(images=images, dicom_matrix=dicom_matrix, dicom_max_images=dicom_images)
            if storage
            else None
        )
        try:
            totals = write_world(
                prof,
                seed,
                out,
                jobs=jobs or default_jobs(),
                progress=lambda n: bar.advance(task, n),
                storage=options,
            )
        except SyntheticError as exc:
            _fail(str(exc))
            return
    elapsed = time.perf_counter() - started
    console.print(
        f"wrote {out} ({prof.registered_patients:,} patients, profile {prof.name}, seed {seed}) "
        f"in {elapsed:.1f} s"
    )
    if options is not None:
        console.print(
            f"  SS-MIX2 files {totals.files:,} ({len(totals.by_type)} data types), "
            f"documents {totals.documents:,}, "
            f"DICOM instances {totals.images:,}, {totals.bytes / 2**20:,.0f} MiB"
        )


@app.command("validate-storage")
def validate_storage_cmd(
    path: Annotated[
        Path, typer.Argument(help="A storage root (its children are pid[0:3] folders) or a world directory.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=0, help="Worker processes (0: one per core).")] = 0,
    show: Annotated[int, typer.Option("--show", min=0, help="How many findings to list (text output).")] = 40,
) -> None:
    """Validate SS-MIX2 standardized storage (anyone's). Exit code 1 on any error; warnings do not fail."""
    roots = _storage_roots(path)
    reports = []
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        for label, root in roots:
            task = bar.add_task(f"validating {label}", total=None)
            reports.append((label, validate_storage(root, jobs=jobs, progress=partial(bar.advance, task))))
    report = _merge(path, reports)
    if junit is not None:
        report.write_junit(junit)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_validation(report, show)
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


@world_app.command("stats")
def stats(
    world: Annotated[Path, typer.Argument(help="A directory written by `rhin generate`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Print the world's counts."""
    try:
        data = world_stats(world)
    except SyntheticError as exc:
        _fail(str(exc))
        return
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    out = Console()
    head = Table(
        title=f"world {world} — profile {data['profile']}, seed {data['seed']}, "
        f"reference date {data['reference_date']}",
        show_header=False,
    )
    for key in (
        "facilities_total",
        "disclosing_facilities",
        "registered_patients",
        "sharing_patients",
        "local_ids",
        "episodes",
        "events",
        "consent_additions",
        "consent_withdrawals",
        "emergency_allowed",
        "deaths",
        "patients_sharing_full_name",
        "same_name_and_birth_date_groups",
        "variant_kanji_surnames",
    ):
        head.add_row(key, f"{data[key]:,}")
    out.print(head)
    for key in (
        "facilities_by_kind",
        "facilities_by_medical_area",
        "link_types",
        "patients_by_pathway",
        "episodes_by_pathway",
        "consents_by_pattern",
        "events_by_kind",
        "events_by_status",
    ):
        table = Table(title=key)
        table.add_column("name")
        table.add_column("count", justify="right")
        for name, count in data[key].items():
            table.add_row(str(name), f"{count:,}")
        out.print(table)


@app.command()
def hub(
    world: Annotated[Path, typer.Option("--world", help="A directory written by `rhin generate`.")],
    mllp_port: Annotated[
        int, typer.Option("--mllp-port", min=0, max=65535, help="MLLP (PIX/PDQ) port; 0 picks a free one.")
    ] = 0,
    http_port: Annotated[
        int | None, typer.Option("--http-port", min=0, max=65535, help="HTTP API port (not yet available).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Where the hub keeps its index (default: WORLD/hub).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run the reference hub until SIGINT/SIGTERM. Prints one `name: host:port` line per listener, then
    `ready`, on stdout: scripts read the real ports from there (port 0 picks free ones)."""
    import asyncio  # here, not at the top: only this command needs the hub and its event loop

    from simulator.hub.server import Addresses, HubError, run_hub

    def ready(addresses: Addresses) -> None:
        for name, (bound_host, port) in addresses.items():
            print(f"{name}: {bound_host}:{port}")
        if http_port is not None:
            print("http: not yet available")
        print("ready", flush=True)

    try:
        asyncio.run(run_hub(world, data, host, mllp_port, ready))
    except HubError as exc:
        _fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
