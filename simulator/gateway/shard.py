"""Many gateways in one process, each on its own port as if on its own server, plus one admin port.

Choice: one :class:`uvicorn.Server` per gateway (and one for the admin API), all in one asyncio loop, each
on a socket the shard binds itself (port 0 by default). Separate servers, rather than one server with many
sockets, let a gateway go ``down`` — its listener closed, connections refused — and come back ``up`` on
the same port while the others keep serving. uvicorn's own signal capture is switched off: the process
(``python -m simulator.gateway``) or the embedding program owns SIGINT/SIGTERM and sets ``stop``.

:func:`partition` spreads a world's disclosing facilities over N shards (default one per core), largest
first by beds so shards carry similar load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.types import ASGIApp

from synthetic.errors import WorldFormatError
from synthetic.rng import stream
from synthetic.store import read_world_json

from ..links import LinkError, LinkModel
from .app import LISTING_THREADS, create_gateway_app
from .catalog import Catalog, FacilityConfig
from .errors import GatewayError
from .faults import ADMIN_TOKEN_ENV, FaultRequest, FaultState, create_admin_app

__all__ = ["Listener", "ReadyInfo", "Shard", "disclosing_codes", "partition", "serve_gateways"]

log = logging.getLogger(__name__)

ReadyInfo = dict[str, Any]
"""``{"pid": int, "gateways": {code: {"host", "port"}}, "admin": {"host", "port"}}``."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # signals belong to the shard's owner, not to each of its servers


class Listener:
    """One ASGI app on one port; :meth:`stop` closes the listening socket, :meth:`start` reopens the same
    port (``SO_REUSEADDR``, so connections in TIME_WAIT do not block it)."""

    def __init__(self, name: str, app: ASGIApp, host: str, port: int = 0, grace: float = 2.0) -> None:
        self.name, self.app, self.host, self.port, self.grace = name, app, host, port, grace
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        try:
            sock = _bind(self.host, self.port)
        except OSError as exc:
            raise GatewayError(f"{self.name}: cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            interface="asgi3",
            http="h11",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, round(self.grace)),
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"listener {self.name}")
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # re-raises what stopped it
                raise GatewayError(f"{self.name}: server stopped during startup")
            await asyncio.sleep(0.005)
        self._server, self._task = server, task

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        for listening in getattr(server, "servers", []):
            listening.close()  # refuse new connections now, not at the next tick
        server.should_exit = True
        await task


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def disclosing_codes(world: Mapping[str, Any]) -> list[str]:
    """Codes of the world's disclosing facilities, in ``world.json`` order."""
    return [f["code"] for f in world["facilities"] if f.get("network_role") == "disclosing"]


def partition(world: Mapping[str, Any] | Path, shards: int | None = None) -> list[list[str]]:
    """The disclosing facilities over ``shards`` groups (default ``os.cpu_count()``, at most one group
    per facility, no empty group): greedy by beds, largest first, each to the lightest group so far."""
    data = read_world_json(world) if isinstance(world, Path) else world
    facilities = [f for f in data["facilities"] if f.get("network_role") == "disclosing"]
    n = max(1, min(shards or os.cpu_count() or 1, len(facilities) or 1))
    groups: list[list[str]] = [[] for _ in range(n)]
    loads = [0] * n
    for f in sorted(facilities, key=lambda f: (-(f.get("beds") or 0), f["code"])):
        target = min(range(n), key=lambda i: (loads[i], i))
        groups[target].append(f["code"])
        loads[target] += max(1, f.get("beds") or 0)
    return [sorted(g) for g in groups if g]


class Shard:
    """The gateways of ``codes`` and their admin API, configured from ``world_dir/world.json``.

    ``links=False`` gives every gateway the disabled link; ``seed`` (default: the world's) seeds one link
    random stream per facility. ``admin_token`` defaults to ``$RHIN_GATEWAY_ADMIN_TOKEN``, else a random
    token (the admin API is then closed to everyone but this object). ``base_port`` (0: free ports) gives
    the i-th facility ``base_port + i`` and the admin API the next one: ports known before the start, which a
    container needs to publish them (:mod:`simulator.containers`).
    """

    def __init__(
        self,
        world_dir: Path,
        codes: Sequence[str] | None = None,
        *,
        host: str = "127.0.0.1",
        links: bool = True,
        seed: int | None = None,
        admin_token: str | None = None,
        grace: float = 2.0,
        base_port: int = 0,
    ) -> None:
        try:
            world = read_world_json(world_dir)
        except (OSError, ValueError, WorldFormatError) as exc:
            raise GatewayError(f"cannot read the world in {world_dir}: {exc}") from exc
        by_code = {f.get("code"): f for f in world.get("facilities", [])}
        wanted = list(codes) if codes is not None else disclosing_codes(world)
        if not wanted:
            raise GatewayError(f"{world_dir}: no facilities to serve")
        missing = [c for c in wanted if c not in by_code]
        if missing:
            raise GatewayError(f"{world_dir}: no facility {', '.join(missing)} in world.json")
        if len(set(wanted)) != len(wanted):
            raise GatewayError("a facility is listed twice")
        try:
            models = LinkModel.from_world(world.get("links", {}))
        except LinkError as exc:
            raise GatewayError(f"{world_dir}: {exc}") from exc
        self.host = host
        self.seed = int(world.get("seed", 0)) if seed is None else seed
        self.token = admin_token or os.environ.get(ADMIN_TOKEN_ENV) or os.urandom(24).hex()
        self.catalogs: dict[str, Catalog] = {}
        self.faults: dict[str, FaultState] = {}
        self.links: dict[str, LinkModel] = {}
        self.listeners: dict[str, Listener] = {}
        listings = anyio.CapacityLimiter(LISTING_THREADS)  # one interpreter lock: one bound for all
        for code in wanted:
            config = FacilityConfig.from_world(world_dir, by_code[code])
            if links and config.link_type not in models:
                raise GatewayError(f"facility {code}: link type {config.link_type!r} is not in links")
            link = models[config.link_type] if links else LinkModel.disabled()
            catalog = Catalog(config)
            state = FaultState()
            rng = stream(self.seed, "gateway-link", code)
            app = create_gateway_app(catalog, state, link, rng, listings)
            self.catalogs[code], self.faults[code], self.links[code] = catalog, state, link
            port = base_port + len(self.listeners) if base_port else 0
            self.listeners[code] = Listener(code, app, host, port, grace)
        admin_port = base_port + len(self.listeners) if base_port else 0
        self.admin = Listener(
            "admin", create_admin_app(self.token, self.faults, self.set_fault), host, admin_port, grace
        )
        self._lock = asyncio.Lock()

    def addresses(self) -> ReadyInfo:
        return {
            "pid": os.getpid(),
            "gateways": {c: {"host": self.host, "port": x.port} for c, x in self.listeners.items()},
            "admin": {"host": self.host, "port": self.admin.port},
        }

    async def start(self) -> ReadyInfo:
        """Bind and serve every gateway and the admin API; returns the ready information."""
        threading.Thread(target=self._warm, name="study-indexes", daemon=True).start()
        try:
            for listener in [*self.listeners.values(), self.admin]:
                await listener.start()
        except BaseException:
            await self.close()
            raise
        return self.addresses()

    def _warm(self) -> None:
        for catalog in self.catalogs.values():
            try:
                len(catalog.studies)
            except Exception:  # a broken PACS must not kill the shard; requests will report it
                log.exception("%s: cannot index the PACS", catalog.code)

    async def set_fault(self, code: str, request: FaultRequest) -> FaultState:
        """Apply one fault mode to gateway ``code`` (see :mod:`simulator.gateway.faults`)."""
        async with self._lock:
            state, listener = self.faults[code], self.listeners[code]
            if request.mode == "down":
                state.down = True
                await listener.stop()
            elif request.mode == "slow":
                state.slow_ms = request.ms
            elif request.mode == "error":
                state.error = True
            else:
                state.slow_ms, state.error = 0, False
                if state.down:
                    await listener.start()
                    state.down = False
            return state

    async def close(self) -> None:
        listeners = [*self.listeners.values(), self.admin]
        await asyncio.gather(*(x.stop() for x in listeners), return_exceptions=True)


async def serve_gateways(
    world_dir: Path,
    codes: Sequence[str] | None = None,
    *,
    host: str = "127.0.0.1",
    links: bool = True,
    seed: int | None = None,
    admin_token: str | None = None,
    ready: Callable[[ReadyInfo], None] | None = None,
    stop: asyncio.Event | None = None,
    grace: float = 2.0,
    base_port: int = 0,
) -> None:
    """Serve the gateways of ``codes`` (default: every disclosing facility) until ``stop`` is set.

    ``ready`` is called once, when every listener is bound, with :data:`ReadyInfo` (real ports: never
    guess them). Raises :class:`GatewayError` when the world or a facility is unusable or a port cannot
    be bound; everything is closed again on the way out, also on cancellation.
    """
    shard = Shard(
        world_dir,
        codes,
        host=host,
        links=links,
        seed=seed,
        admin_token=admin_token,
        grace=grace,
        base_port=base_port,
    )
    info = await shard.start()
    try:
        if ready is not None:
            ready(info)
        await (stop or asyncio.Event()).wait()
    finally:
        await shard.close()
