"""The hub alone: ``rhin hub`` (the reference hub in the foreground) and ``rhin audit verify`` (its audit
log, offline). The hub's modules are imported inside the commands: only they need them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .options import SCRYPT_COST, ScryptCost, WorldDir, console, fail

__all__ = ["audit_verify", "hub"]


MllpPort = Annotated[
    int, typer.Option("--mllp-port", min=0, max=65535, help="MLLP (PIX/PDQ) port; 0 picks a free one.")
]
HttpPort = Annotated[
    int, typer.Option("--http-port", min=0, max=65535, help="HTTP API port; 0 picks a free one.")
]
SoapPort = Annotated[
    int,
    typer.Option(
        "--soap-port", min=0, max=65535, help="PIXv3/PDQv3 (SOAP 1.2, HTTPS with client certificates) port."
    ),
]
HubData = Annotated[
    Path | None, typer.Option("--data", help="Where the hub keeps its stores (default: WORLD/hub).")
]
GatewaysFile = Annotated[
    Path | None,
    typer.Option("--gateways", help="Network file whose `gateways` say where each facility's gateway is."),
]
AuditKey = Annotated[
    Path | None,
    typer.Option(
        "--audit-key",
        help="Audit key file (default: $RHIN_AUDIT_KEY, else DATA/audit.key, made on first start).",
    ),
]
AuditCheckpoints = Annotated[
    Path | None,
    typer.Option("--audit-checkpoints", help="Where audit checkpoints go (default DATA/audit.checkpoints)."),
]
AuditEvery = Annotated[
    int, typer.Option("--audit-checkpoint-every", min=1, help="A checkpoint every N audit records.")
]
Pki = Annotated[
    Path | None,
    typer.Option(
        "--pki", help="TLS files: CA, hub and facility certificates (default DATA/pki; made if missing)."
    ),
]
PlainMllp = Annotated[
    bool,
    typer.Option(
        "--plain-mllp", help="Plain MLLP without TLS, MSH-4 trusted as sent: only for hubs under test."
    ),
]


def hub(
    world: WorldDir,
    mllp_port: MllpPort = 0,
    http_port: HttpPort = 0,
    soap_port: SoapPort = 0,
    data: HubData = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    gateways: GatewaysFile = None,
    scrypt_cost: ScryptCost = SCRYPT_COST,
    audit_key: AuditKey = None,
    audit_checkpoints: AuditCheckpoints = None,
    audit_checkpoint_every: AuditEvery = 1000,
    pki: Pki = None,
    plain_mllp: PlainMllp = False,
) -> None:
    """Run the reference hub until SIGINT/SIGTERM. Prints one `name: host:port` line per listener (mllp, soap,
    http), the operator token's file, the MLLP transport (`mllp-tls: CA-FILE CERT-FOLDER`, or
    `mllp-tls: none (plain MLLP)`), then `ready`, on stdout: scripts read the real ports from there."""
    import asyncio  # here, not at the top: only this command needs the hub and its event loop

    from simulator.hub.accounts import ScryptParams
    from simulator.hub.audit import AuditSettings
    from simulator.hub.server import ADMIN_TOKEN_FILE, PKI_DIR, Addresses, HubError, run_hub
    from simulator.ready import settle_heap

    data_dir = data if data is not None else world / "hub"
    pki_dir = pki if pki is not None else data_dir / PKI_DIR

    def ready(addresses: Addresses) -> None:
        for name, (bound_host, port) in addresses.items():
            print(f"{name}: {bound_host}:{port}")
        print(f"admin-token: {data_dir / ADMIN_TOKEN_FILE}")
        tls = "none (plain MLLP)" if plain_mllp else f"{pki_dir / 'ca.pem'} {pki_dir / 'facilities'}"
        print(f"mllp-tls: {tls}")
        settle_heap()  # the world's indexes out of the full collections' way (see settle_heap)
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
                soap_port=soap_port,
            )
        )
    except HubError as exc:
        fail(str(exc))


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
        fail(f"cannot verify {db}: {exc}")
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
