"""The network backends a command can start the reference network on, and the two options that choose one
(``--backend``, ``--docker-host``): declared once here, below both ``harness.cli`` and ``harness.load``, which
each take them."""

from __future__ import annotations

from typing import Annotated, Final

import typer

__all__ = ["BACKENDS", "Backend", "DockerHost"]

BACKENDS: Final = ("process", "docker")


def _backend(value: str) -> str:
    if value not in BACKENDS:
        raise typer.BadParameter(f"{value!r}: one of {', '.join(BACKENDS)}")
    return value


Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        callback=_backend,
        help="The reference network as `process`es or `docker` containers (README: Containers).",
    ),
]
DockerHost = Annotated[
    str | None,
    typer.Option(
        "--docker-host",
        help="Docker Engine API URL (--backend docker; default: $DOCKER_HOST).",
    ),
]
