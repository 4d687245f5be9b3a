"""``rhin gateway``: one shard of synthetic facility gateways, the image's gateway role (the live network's
launcher starts the same thing as ``python -m simulator.gateway``; this command is that, behind ``rhin``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import WorldDir

__all__ = ["gateway"]


def gateway(
    world: WorldDir,
    facilities: Annotated[
        str | None, typer.Option("--facilities", help="CODE[,CODE...] (default: every disclosing one).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address of every listener.")] = "127.0.0.1",
    base_port: Annotated[
        int, typer.Option("--base-port", min=0, max=65000, help="Facility i on BASE+i, admin next (0: free).")
    ] = 0,
    links: Annotated[bool, typer.Option("--links/--no-links", help="Apply the link models.")] = True,
    log_level: Annotated[str, typer.Option("--log-level", help="stderr log level.")] = "WARNING",
) -> None:
    """Serve the gateways of FACILITIES (and their fault API) until SIGINT/SIGTERM; prints one
    `ready: {json}` line with every port. The admin token comes from $RHIN_GATEWAY_ADMIN_TOKEN."""
    from simulator.gateway.__main__ import main

    argv = ["--world", str(world), "--host", host, "--base-port", str(base_port), "--log-level", log_level]
    argv += ["--facilities", facilities] if facilities else []
    argv += [] if links else ["--no-links"]
    raise typer.Exit(main(argv))
