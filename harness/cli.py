"""`rhin`: the command line. Subcommands stay thin; the work lives in the parts they call."""

from __future__ import annotations

import json
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
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


def _fail(message: str) -> NoReturn:
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
        int, typer.Option("--http-port", min=0, max=65535, help="HTTP API port; 0 picks a free one.")
    ] = 0,
    data: Annotated[
        Path | None, typer.Option("--data", help="Where the hub keeps its stores (default: WORLD/hub).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    gateways: Annotated[
        Path | None,
        typer.Option(
            "--gateways", help="Network file whose `gateways` say where each facility's gateway is."
        ),
    ] = None,
    scrypt_cost: Annotated[
        int,
        typer.Option(
            "--scrypt-cost",
            min=4,
            max=20,
            help="log2 of scrypt's N for new password hashes (14 = OWASP minimum).",
        ),
    ] = 14,
    audit_key: Annotated[
        Path | None,
        typer.Option(
            "--audit-key",
            help="Audit key file (default: $RHIN_AUDIT_KEY, else DATA/audit.key, made on first start).",
        ),
    ] = None,
    audit_checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--audit-checkpoints", help="Where audit checkpoints go (default DATA/audit.checkpoints)."
        ),
    ] = None,
    audit_checkpoint_every: Annotated[
        int, typer.Option("--audit-checkpoint-every", min=1, help="A checkpoint every N audit records.")
    ] = 1000,
    pki: Annotated[
        Path | None,
        typer.Option(
            "--pki", help="TLS files: CA, hub and facility certificates (default DATA/pki; made if missing)."
        ),
    ] = None,
    plain_mllp: Annotated[
        bool,
        typer.Option(
            "--plain-mllp", help="Plain MLLP without TLS, MSH-4 trusted as sent: only for hubs under test."
        ),
    ] = False,
) -> None:
    """Run the reference hub until SIGINT/SIGTERM. Prints one `name: host:port` line per listener (mllp,
    http), the operator token's file, the MLLP transport (`mllp-tls: CA-FILE CERT-FOLDER`, or
    `mllp-tls: none (plain MLLP)`), then `ready`, on stdout: scripts read the real ports from there."""
    import asyncio  # here, not at the top: only this command needs the hub and its event loop

    from simulator.hub.accounts import ScryptParams
    from simulator.hub.audit import AuditSettings
    from simulator.hub.server import ADMIN_TOKEN_FILE, PKI_DIR, Addresses, HubError, run_hub

    data_dir = data if data is not None else world / "hub"
    pki_dir = pki if pki is not None else data_dir / PKI_DIR

    def ready(addresses: Addresses) -> None:
        for name, (bound_host, port) in addresses.items():
            print(f"{name}: {bound_host}:{port}")
        print(f"admin-token: {data_dir / ADMIN_TOKEN_FILE}")
        tls = "none (plain MLLP)" if plain_mllp else f"{pki_dir / 'ca.pem'} {pki_dir / 'facilities'}"
        print(f"mllp-tls: {tls}")
        print("ready", flush=True)

    try:
        asyncio.run(
            run_hub(
                world,
                data_dir,
                host,
                mllp_port,
                ready,
                http_port=http_port,
                gateways_file=gateways,
                scrypt=ScryptParams(n=2**scrypt_cost),
                audit_settings=AuditSettings(audit_key, audit_checkpoints, audit_checkpoint_every),
                pki=pki_dir,
                plain_mllp=plain_mllp,
            )
        )
    except HubError as exc:
        _fail(str(exc))


# --- audit ---

audit_app = typer.Typer(help="The hub's audit log, offline.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    data: Annotated[Path, typer.Argument(help="The hub's data folder (or its audit.sqlite).")],
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The audit key file (default: $RHIN_AUDIT_KEY, else DATA/audit.key)."),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="The checkpoint file (default DATA/audit.checkpoints)."),
    ] = None,
    every: Annotated[
        int | None,
        typer.Option("--every", min=1, help="Checkpoint interval to expect (default: what the log says)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Problems listed (the rest are counted).")] = 20,
) -> None:
    """Check the keyed hash chain and its signed checkpoints without the hub (the same code as
    /audit/verify). Read-only. Exit 0 when intact, 1 with a report of every problem, 2 when it cannot
    check (no log, no key, the wrong key, a log from before keying)."""
    import sqlite3

    from simulator.hub.audit import AuditKeyError, verify_data

    db = data / "audit.sqlite" if data.is_dir() else data
    try:
        found = verify_data(db, key_file=key, checkpoints=checkpoints, every=every)
    except (AuditKeyError, OSError, sqlite3.Error) as exc:
        _fail(f"cannot verify {db}: {exc}")
    report = found.as_json(limit=show)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    last = report["checkpoints"]["last"]
    anchor = f"last at seq {last['seq']} ({last['time']})" if last else "none"
    summary = (
        f"{db}: {found.records:,} records, head seq {found.head[0]}; "
        f"{len(found.checkpoints)} checkpoints in {found.checkpoint_file} ({anchor})"
    )
    if found.ok:
        console.print(f"[green]ok[/]: {summary}", highlight=False, soft_wrap=True)
        return
    counts = ", ".join(f"{n} {issue}" for issue, n in sorted(report["problem_counts"].items()))
    console.print(f"[bold red]FAILED[/]: {summary}: {counts}", highlight=False, soft_wrap=True)
    for p in report["problems"]:
        detail = f": {p['detail']}" if p.get("detail") else ""
        console.print(f"  seq {p['seq']}: {p['issue']}{detail}", highlight=False, soft_wrap=True)
    if len(found.problems) > show:
        console.print(f"  … and {len(found.problems) - show} more", highlight=False)
    raise typer.Exit(1)


# --- end audit ---


@app.command()
def up(
    world: Annotated[Path, typer.Option("--world", help="A directory written by `rhin generate`.")],
    links: Annotated[
        bool, typer.Option("--links/--no-links", help="Apply the link models (latency, bandwidth).")
    ] = True,
    shards: Annotated[int, typer.Option("--shards", min=0, help="Gateway processes (0: one per core).")] = 0,
    network_file: Annotated[
        Path | None,
        typer.Option("--network-file", help="Where to write the addresses (default WORLD/network.json)."),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The hub's stores (default WORLD/hub).")] = None,
    overrides: Annotated[
        Path | None,
        typer.Option("--overrides", help="YAML/JSON: gateways: {CODE: {url, secret?}} (external gateways)."),
    ] = None,
    scrypt_cost: Annotated[
        int, typer.Option("--scrypt-cost", min=4, max=20, help="log2 of scrypt's N.")
    ] = 14,
    exit_when_ready: Annotated[
        bool,
        typer.Option("--exit-when-ready", help="Stop everything right after `ready:` (benchmarks, checks)."),
    ] = False,
) -> None:
    """Start the live network — the hub and every disclosing facility's gateway — bootstrap the hub through
    its real interfaces (ITI-8 feeds, ID links, consent documents), print `ready: ...` and run until
    interrupted. Every process it started is stopped on exit, also when one of them crashes."""
    import signal as signals

    from simulator.bootstrap import BootstrapError, bootstrap
    from simulator.network import Network, NetworkError

    started = time.monotonic()
    net = Network(
        world,
        data=data,
        network_file=network_file,
        links=links,
        shards=shards or None,
        overrides=overrides,
        scrypt_cost=scrypt_cost,
    )
    stop_requested = False
    serving = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        if not serving:  # starting or bootstrapping: abandon it now (the finally below stops everything)
            raise KeyboardInterrupt

    previous = {sig: signals.signal(sig, request_stop) for sig in (signals.SIGINT, signals.SIGTERM)}
    try:
        try:
            info = net.start()
        except NetworkError as exc:
            _fail(str(exc))
        gateways = len(info.gateways)
        console.print(
            f"network up in {time.monotonic() - started:.1f} s: hub {info.base_url}, {gateways} gateways"
        )
        if info.mllp_tls is not None:
            console.print(
                f"MLLP over TLS: CA {info.mllp_tls.ca_file}, facility certificates {info.mllp_tls.certs}"
            )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(f"bootstrap: {phase}", total=total)
                bar.update(tasks[phase], completed=done, total=total)

            try:
                stats = bootstrap(net.world, info, net.data, progress=progress)
            except (BootstrapError, OSError) as exc:
                _fail(f"bootstrap failed: {exc}")
        took = time.monotonic() - started
        serving = True  # before `ready:` is out: a SIGINT right after it must stop cleanly, not abandon
        print(
            f"ready: {gateways} gateways, {stats.patients} patients, {stats.feeds} feeds,"
            f" {stats.links} links, {stats.consent_documents} consent documents"
            f"{' (already bootstrapped)' if stats.skipped else ''};"
            f" network {info.document.get('ready_seconds', 0):.1f} s, total {took:.1f} s;"
            f" network file {net.network_file}",
            flush=True,
        )
        while not stop_requested and not exit_when_ready:
            crashed = net.crashed()
            if crashed is not None:
                _fail(f"{crashed}; stopping the network")
            time.sleep(0.2)
    except KeyboardInterrupt:
        console.print("interrupted: stopping the network")
        raise typer.Exit(130) from None
    finally:
        net.stop()
        for sig, handler in previous.items():
            signals.signal(sig, handler)


@app.command()
def fault(
    network: Annotated[Path, typer.Option("--network", help="The network file `rhin up` wrote.")],
    what: Annotated[str, typer.Argument(help="What to act on: `gateway`.")],
    code: Annotated[str, typer.Argument(help="The facility code of the gateway.")],
    mode: Annotated[str, typer.Argument(help="down | slow | error | up")],
    ms: Annotated[int | None, typer.Argument(help="Milliseconds, for `slow`.")] = None,
) -> None:
    """Take a gateway down, slow it by MS milliseconds, make it fail (503), or restore it (`up`)."""
    import httpx

    from simulator.network import NetworkError, load_network_file

    if what != "gateway":
        _fail(f"unknown target {what!r}: only `gateway` can be faulted")
    if mode not in ("down", "slow", "error", "up"):
        _fail(f"unknown mode {mode!r}: down, slow MS, error or up")
    if mode == "slow" and (ms is None or ms < 0):
        _fail("slow needs a delay in milliseconds, e.g. `slow 2000`")
    try:
        shard = load_network_file(network).shard_of(code)
    except NetworkError as exc:
        _fail(str(exc))
    body = {"mode": mode, **({"ms": ms} if mode == "slow" else {})}
    try:
        reply = httpx.post(
            f"{shard['admin_url']}/faults/{code}",
            json=body,
            headers={"Authorization": f"Bearer {shard['admin_token']}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        _fail(f"the gateway shard of {code} does not answer: {exc}")
    if reply.status_code >= 300:
        _fail(f"the shard refused: {reply.status_code} {reply.text}")
    print(f"{code}: {mode}{f' {ms} ms' if mode == 'slow' else ''}")


# --- scenarios ---
# `rhin scenarios schema|check|list` and `rhin run`. Imports are inside the commands: only they need the
# engine, httpx and matplotlib.

scenarios_app = typer.Typer(help="Scenario files: validate them, list them, print their JSON Schema.")
app.add_typer(scenarios_app, name="scenarios")


def _scenario_root(root: Path | None) -> Path:
    from harness.scenarios.runner import default_scenarios_root

    return root if root is not None else default_scenarios_root()


@scenarios_app.command("schema")
def scenarios_schema(
    target: Annotated[bool, typer.Option("--target", help="The target file's schema instead.")] = False,
) -> None:
    """Print the JSON Schema of scenario files (or of --target files), for editors."""
    from harness.scenarios import schema
    from harness.targets import TargetFile

    data = TargetFile.model_json_schema(by_alias=True) if target else schema()
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@scenarios_app.command("check")
def scenarios_check(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: all).")] = None,
    root: Annotated[
        Path | None, typer.Option("--scenarios", help="Suites root (default ./scenarios).")
    ] = None,
) -> None:
    """Validate scenario files; every problem is printed with file, line and key. Exit 1 on any."""
    from harness.scenarios import FormatError, discover

    try:
        found = discover(_scenario_root(root), paths or [])
    except FormatError as exc:
        Console(stderr=True).print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    total = sum(s.scenario.assertion_count for s in found)
    print(f"ok: {len(found)} scenarios, {total} assertions")


@scenarios_app.command("list")
def scenarios_list(
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Only this suite (repeatable).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="T includes, !T excludes (repeatable).")
    ] = None,
    keyword: Annotated[str | None, typer.Option("-k", help="Expression over ids, titles, tags.")] = None,
    root: Annotated[
        Path | None, typer.Option("--scenarios", help="Suites root (default ./scenarios).")
    ] = None,
) -> None:
    """List the scenarios a selection picks, with their assertion counts."""
    from harness.scenarios import ScenarioError, discover, select

    try:
        chosen = select(discover(_scenario_root(root)), suites=suite or [], tags=tag or [], keyword=keyword)
    except ScenarioError as exc:
        _fail(str(exc))
    table = Table(
        title=f"{len(chosen)} scenarios, {sum(s.scenario.assertion_count for s in chosen)} assertions"
    )
    for column in ("suite", "id", "assertions", "tags", "title"):
        table.add_column(column)
    for s in chosen:
        sc = s.scenario
        table.add_row(s.suite, sc.id, str(sc.assertion_count), ", ".join(sc.tags), sc.title)
    Console().print(table)


@app.command("run")
def run_scenarios(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Scenario files or folders (default: all).")
    ] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Only this suite (repeatable).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="T: scenarios tagged T; !T: not tagged T (repeatable).")
    ] = None,
    keyword: Annotated[
        str | None, typer.Option("-k", help="e.g. 'iti9 and not needs-http': ids, titles, tags, suites.")
    ] = None,
    target: Annotated[Path | None, typer.Option("--target", help="An external target YAML.")] = None,
    world: Annotated[
        Path, typer.Option("--world", help="World directory (the default worlds/mini is made if missing).")
    ] = Path("worlds/mini"),
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Scenarios run at once.")] = 4,
    report: Annotated[Path | None, typer.Option("--report", help="Report folder (reports/<time>).")] = None,
    root: Annotated[
        Path | None, typer.Option("--scenarios", help="Suites root (default ./scenarios).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="NAME=VALUE: a scenario parameter, e.g. a latency budget (repeatable)."),
    ] = None,
    allow_skips: Annotated[
        bool,
        typer.Option(
            "--allow-skips", help="Exit 0 with skipped assertions (targets declaring unsupported steps)."
        ),
    ] = False,
    scrypt_cost: Annotated[
        int,
        typer.Option("--scrypt-cost", min=4, max=20, help="Reference hub: log2 of scrypt's N (login cost)."),
    ] = 14,
) -> None:
    """Run scenario suites against the reference network (default: the live network for --world, made if
    missing, bootstrapped from it) or --target; write JSON, JUnit and HTML reports to reports/<time>/.
    Exit 0 only when every assertion passed; skipped ones fail the run too unless --allow-skips."""
    from harness.scenarios import LoadedScenario, ScenarioError, ScenarioResult
    from harness.scenarios.runner import RunOptions, execute
    from harness.targets import ReferenceOptions, Target

    params: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"--param {item!r}: write NAME=VALUE")
        params[name.strip()] = value.strip()
    options = RunOptions(
        scenarios_root=_scenario_root(root),
        paths=paths or [],
        suites=suite or [],
        tags=tag or [],
        keyword=keyword,
        target_file=target,
        world_dir=world,
        jobs=jobs,
        report_dir=report,
        params=params,
        allow_skips=allow_skips,
        reference=ReferenceOptions(scrypt_cost=scrypt_cost),
    )
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("starting the target", total=None, counts="")

        def started(scenarios: list[LoadedScenario], tgt: Target) -> None:
            total = sum(s.scenario.assertion_count for s in scenarios)
            bar.update(task, description=f"{tgt.name}: scenarios", total=len(scenarios))
            bar.update(task, counts=f"0/{total} assertions")

        def finished(result: ScenarioResult) -> None:
            for a in result.assertions:
                counts[a.status] += 1
            text = " ".join(f"[{c}]{n} {s}[/]" for s, n, c in _run_colours(counts))
            bar.update(task, advance=1, counts=text)

        try:
            result, files = execute(
                options,
                on_start=started,
                on_result=finished,
                on_note=lambda text: console.print(text, highlight=False, soft_wrap=True),
            )
        except ScenarioError as exc:
            bar.stop()
            _fail(str(exc))
    summary = result.summary()
    out = Console()
    for a in (a for a in result.assertions() if a.status in ("failed", "error")):
        out.print(
            f"[red]{a.status}[/] {a.assertion_id} [dim]{a.scenario} step {a.step}[/] {a.message}",
            highlight=False,
            soft_wrap=True,
        )
    out.print(
        f"{summary['assertions']} assertions in {summary['scenarios']} scenarios: "
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['error']} errors, "
        f"{summary['skipped']} skipped",
        highlight=False,
    )
    if summary["skipped"] and not allow_skips and result.ok:
        out.print("[yellow]skipped assertions fail the run[/] (--allow-skips accepts them)", highlight=False)
    for kind, path in files.items():
        out.print(f"  {kind}: {path}", highlight=False)
    raise typer.Exit(0 if result.passed(allow_skips=allow_skips) else 1)


def _run_colours(counts: dict[str, int]) -> list[tuple[str, int, str]]:
    colours = {"passed": "green", "failed": "red", "error": "yellow", "skipped": "dim"}
    return [(status, n, colours[status]) for status, n in counts.items()]


# --- end scenarios ---

from harness.load.command import load_cmd  # noqa: E402

app.command("load")(load_cmd)
from harness.des.commands import calibrate_cmd, simulate_cmd  # noqa: E402

app.command("calibrate")(calibrate_cmd)
app.command("simulate")(simulate_cmd)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
