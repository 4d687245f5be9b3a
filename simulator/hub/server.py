"""The hub as a process: the world's directory, the identity index on disk and the MLLP PIX/PDQ listener.

:func:`run_hub` is what ``rhin hub`` runs, and what tests or scenarios can run in-process. It owns the order
of start and stop so that nothing is lost across a restart: the index is opened before the first connection
is accepted and closed only after the server has delivered every reply it owes (each ACK already follows its
committed transaction, so a SIGKILL loses nothing acknowledged either; a clean stop just also finishes the
replies in flight). The HTTP API will join here as a second listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path

from .index import Directory, PatientIndex
from .mllp import MLLPServer
from .pixpdq import PixPdqHandler

__all__ = ["INDEX_FILE", "Addresses", "HubError", "load_directory", "run_hub"]

INDEX_FILE = "hub.sqlite"
"""The identity index's file name inside the data directory."""

Addresses = Mapping[str, tuple[str, int]]
"""Listener name (``mllp``) → (host, bound port), as reported to the ``ready`` callback."""

log = logging.getLogger(__name__)


class HubError(Exception):
    """The hub cannot start: a bad world directory, an unusable data directory or an address in use."""


def load_directory(world_dir: Path) -> Directory:
    """The facility directory of ``world_dir/world.json``, or a :class:`HubError` saying what is wrong.

    Checked before anything is created on disk, so a typo in ``--world`` leaves no stray data directory.
    """
    world_json = world_dir / "world.json"
    if not world_dir.is_dir():
        raise HubError(f"world directory {world_dir} does not exist (generate one with `rhin generate`)")
    if not world_json.is_file():
        raise HubError(f"{world_dir} is not a world directory: no world.json (see `rhin generate`)")
    try:
        world = json.loads(world_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HubError(f"cannot read {world_json}: {exc}") from exc
    if not isinstance(world, dict) or not isinstance(world.get("facilities"), list):
        raise HubError(f"{world_json} has no facilities[] list; is it a rhin world?")
    try:
        directory = Directory.from_world(world)
    except (KeyError, TypeError) as exc:
        raise HubError(f"{world_json}: a facility lacks its assigning authority ({exc})") from exc
    if not world["facilities"]:
        raise HubError(f"{world_json} lists no facilities")
    return directory


def _install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[signal.Signals]:
    """SIGINT/SIGTERM set ``stop`` (main thread only: elsewhere the embedding program owns signals)."""
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    return installed


async def run_hub(
    world_dir: Path,
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    mllp_port: int = 0,
    ready: Callable[[Addresses], None] | None = None,
    *,
    stop: asyncio.Event | None = None,
    grace: float = 5.0,
) -> None:
    """Serve PIX/PDQ for the world in ``world_dir`` until SIGINT/SIGTERM (or ``stop`` is set).

    ``data_dir`` (default ``world_dir/hub``, created if missing) holds the index, so restarting on the same
    data keeps every registration and link. ``ready`` is called once every listener is bound, with the real
    ports (``mllp_port=0`` picks a free one): callers must not guess the port. Stopping closes the listener,
    lets busy connections finish their reply (up to ``grace`` seconds), then closes the index.
    """
    directory = load_directory(world_dir)
    data = data_dir if data_dir is not None else world_dir / "hub"
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HubError(f"cannot create the data directory {data}: {exc}") from exc
    try:
        index = PatientIndex(data / INDEX_FILE, directory)
    except Exception as exc:  # sqlite3.Error, OSError: a corrupt or unwritable index file
        raise HubError(f"cannot open the index {data / INDEX_FILE}: {exc}") from exc
    try:
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        installed = _install_stop_signals(loop, stop)
        server = MLLPServer(PixPdqHandler(index), host, mllp_port)
        try:
            try:
                await server.start()
            except OSError as exc:
                raise HubError(
                    f"cannot listen for MLLP on {host}:{mllp_port}: {exc.strerror or exc}"
                ) from exc
            log.info("hub: %d domains, %d records in %s", len(list(directory)), index.count(), data)
            if ready is not None:
                ready({"mllp": (server.host, server.port)})
            await stop.wait()
        finally:
            await server.stop(grace)
            for sig in installed:
                loop.remove_signal_handler(sig)
    finally:
        index.close()
