"""World commands: ``rhin generate`` (a world from a profile) and ``rhin world stats`` (its counts)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from synthetic import SyntheticError, load_profile, world_stats, write_world
from synthetic.profile import Profile
from synthetic.ssmix2.layout import EXTENDED, IMAGES, STORAGE
from synthetic.ssmix2.writer import Options, WriteStats
from synthetic.world import default_jobs

from .options import AsJson, Jobs, console, fail, progress_bar

__all__ = ["generate", "stats"]


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
    jobs: Jobs = 0,
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
        fail(str(exc))
    if patients is not None:
        prof = prof.with_patients(patients)
    _prepare(out, force)
    options = (
        Options(images=images, dicom_matrix=dicom_matrix, dicom_max_images=dicom_images) if storage else None
    )
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"{prof.name}: patients", total=prof.registered_patients)
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
            fail(str(exc))
    _report(out, prof, seed, time.perf_counter() - started, totals if options is not None else None)


def _prepare(out: Path, force: bool) -> None:
    """An empty (or new) output directory; a non-empty one only with --force, its world removed first."""
    if out.exists() and any(out.iterdir()):
        if not force:
            fail(f"{out} is not empty; pass --force to overwrite it")
        for name in ("world.json", "world.sqlite"):
            (out / name).unlink(missing_ok=True)
        for name in (STORAGE, EXTENDED, IMAGES):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _report(out: Path, prof: Profile, seed: int, elapsed: float, totals: WriteStats | None) -> None:
    console.print(
        f"wrote {out} ({prof.registered_patients:,} patients, profile {prof.name}, seed {seed}) "
        f"in {elapsed:.1f} s"
    )
    if totals is not None:
        console.print(
            f"  SS-MIX2 files {totals.files:,} ({len(totals.by_type)} data types), "
            f"documents {totals.documents:,}, "
            f"DICOM instances {totals.images:,}, {totals.bytes / 2**20:,.0f} MiB"
        )


HEADLINE = (
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
)
BREAKDOWNS = (
    "facilities_by_kind",
    "facilities_by_medical_area",
    "link_types",
    "patients_by_pathway",
    "episodes_by_pathway",
    "consents_by_pattern",
    "events_by_kind",
    "events_by_status",
)


def stats(
    world: Annotated[Path, typer.Argument(help="A directory written by `rhin generate`.")],
    as_json: AsJson = False,
) -> None:
    """Print the world's counts."""
    try:
        data = world_stats(world)
    except SyntheticError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    out = Console()
    head = Table(
        title=f"world {world} — profile {data['profile']}, seed {data['seed']}, "
        f"reference date {data['reference_date']}",
        show_header=False,
    )
    for key in HEADLINE:
        head.add_row(key, f"{data[key]:,}")
    out.print(head)
    for key in BREAKDOWNS:
        table = Table(title=key)
        table.add_column("name")
        table.add_column("count", justify="right")
        for name, count in data[key].items():
            table.add_row(str(name), f"{count:,}")
        out.print(table)
