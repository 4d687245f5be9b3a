"""The hub as a process: the world's directory, its stores on disk, the MLLP PIX/PDQ and HTTP listeners.

:func:`run_hub` is what ``rhin hub`` runs, and what tests or scenarios can run in-process. It owns the order
of start and stop so that nothing is lost across a restart: the stores are opened before the first
connection is accepted and closed only after both servers have delivered every reply they owe (each ACK
and each API answer already follows its committed transaction, so a SIGKILL loses nothing acknowledged
either; a clean stop just also finishes the replies in flight).

Data directory (``--data``, default ``WORLD/hub``): ``hub.sqlite`` (identity index), ``accounts.sqlite``,
``consents.sqlite``, ``audit.sqlite``, ``admin.token`` (the hub operator's bearer token for the audit
routes, created on first start with mode 0600 and kept across restarts), ``pki/`` (:mod:`simulator.pki`:
the network CA, the hub's certificate and one client certificate per facility, created if missing), and by
default the audit key (``audit.key``, 0600) and its checkpoints (``audit.checkpoints``): see :mod:`.audit`
and docs/security.md for where they belong in production. The hub refuses to start on an audit log that no
longer matches its last checkpoint (truncated or rewritten while the hub was down): appending to it would
bury the evidence.

MLLP is over TLS with mutual authentication by default (IHE ATNA secure node): a client needs a certificate
from the network CA, and the facility it names must be MSH-4 of each message (:mod:`.pixpdq`). A failed
handshake is audited as ``rejected-connection`` (outcome ``refused``, the reason OpenSSL gave). Plain MLLP
(``plain_mllp=True``, ``--plain-mllp``) trusts MSH-4 as sent: only for hubs under test without TLS.

Both listeners run on one asyncio loop; store writes run in worker threads (SQLite releases the GIL while it
fsyncs) and scrypt, which holds the GIL for ~40 ms, in a worker process, so a login never stalls the other
requests. That worker dies with the hub (``PR_SET_PDEATHSIG``, :mod:`simulator.lifeline`), and the hub
stops, with a :class:`HubError` naming it, when the worker dies: a hub that can no longer check passwords
should not look healthy (restarting it is the launcher's decision). multiprocessing's resource tracker, the
other process the pool starts, exits by itself once the hub and the worker have both gone (its pipe closes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from simulator.pki import PkiError, ensure_pki, world_facility_codes
from synthetic.clock import jst_now

from ..lifeline import die_with_parent
from .accounts import Accounts, ScryptParams, scrypt_hash
from .api import create_app
from .audit import AuditEntry, AuditKeyError, AuditLog, AuditSettings
from .auditbatch import AuditBatcher
from .consents import ConsentStore
from .facilities import Facilities
from .index import DomainDirectory, PatientIndex
from .mllp import MLLPServer
from .msgtrace import MessageTrace
from .pixpdq import PixPdqHandler
from .records import Gateways
from .routes.auth import LOGIN_QUEUE
from .service import HubServices
from .v3 import CertifiedHttpTools, create_soap_app, observe_handshakes

__all__ = [
    "ADMIN_TOKEN_FILE",
    "INDEX_FILE",
    "PKI_DIR",
    "Addresses",
    "AuditSettings",
    "HubError",
    "load_world",
    "run_hub",
]

INDEX_FILE = "hub.sqlite"
"""The identity index's file name inside the data directory."""
ADMIN_TOKEN_FILE = "admin.token"
"""The hub operator's bearer token (audit routes), inside the data directory."""
PKI_DIR = "pki"
"""The network's PKI folder (:mod:`simulator.pki`), inside the data directory unless given."""

Addresses = Mapping[str, tuple[str, int]]
"""Listener name (``mllp``, ``http``) → (host, bound port), as reported to the ``ready`` callback."""

log = logging.getLogger(__name__)


class HubError(Exception):
    """The hub cannot start: a bad world directory, an unusable data directory or an address in use."""


def load_world(world_dir: Path) -> dict[str, Any]:
    """``world_dir/world.json`` as a document, or a :class:`HubError` saying what is wrong.

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
    if not world["facilities"]:
        raise HubError(f"{world_json} lists no facilities")
    if "viewer_rules" not in world:
        raise HubError(
            f"{world_json} has no viewer_rules: it was written by an older rhin; generate it again"
        )
    return world


def _admin_token(data: Path) -> str:
    path = data / ADMIN_TOKEN_FILE
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
    return token


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
    http_port: int | None = 0,
    gateways_file: Path | None = None,
    scrypt: ScryptParams | None = None,
    clock: Callable[[], dt.datetime] = jst_now,
    stop: asyncio.Event | None = None,
    grace: float = 5.0,
    audit_settings: AuditSettings | None = None,
    pki: Path | None = None,
    plain_mllp: bool = False,
    soap_port: int | None = 0,
    login_queue: int = LOGIN_QUEUE,
) -> None:
    """Serve PIX/PDQ (MLLP) and the HTTP API for the world in ``world_dir`` until SIGINT/SIGTERM or ``stop``.

    ``data_dir`` (default ``world_dir/hub``, created if missing) holds the stores, so restarting on the same
    data keeps every registration, link, consent, account and audit record. ``ready`` is called once every
    listener is bound, with the real ports (port 0 picks a free one): callers must not guess ports.
    ``http_port=None`` runs MLLP only. ``gateways_file`` (a network file's ``gateways`` section) says where
    each facility's gateway answers; without it the record routes label every source ``error``/no-gateway.
    ``clock`` (aware, JST) is the network's time for tokens, consent dates, grants and audit records; tests
    pass one they can move. Stopping closes the listeners, lets busy connections finish (up to ``grace``
    seconds), flushes the audit (a last checkpoint) and closes the stores. ``audit_settings``: the audit
    key, checkpoint file and interval (default: in ``data``). ``pki`` is the PKI folder (default
    ``DATA/pki``, created or completed for the world's facilities); ``plain_mllp`` serves plain MLLP instead
    of TLS. ``soap_port`` (None: none) is the PIXv3/PDQv3 listener, HTTPS with client certificates unless
    ``plain_mllp`` (:mod:`.v3.app`). ``login_queue``: logins that may wait for the password check before
    one more is refused 503 (:data:`.routes.auth.LOGIN_QUEUE`). Raises :class:`HubError` if the password
    worker dies while serving (after stopping cleanly).
    """
    setup = _prepare(world_dir, data_dir, host, pki, plain_mllp, gateways_file)
    data = setup.data
    async with AsyncExitStack() as stack:
        stores = _open_stores(stack, data, setup.directory, clock, scrypt, audit_settings)
        audit = AuditBatcher(stores.audit_log)
        stack.push_async_callback(audit.close)
        if setup.gateways is not None:
            stack.push_async_callback(setup.gateways.aclose)
        services = HubServices(
            setup.facilities, stores.index, stores.accounts, stores.consents, stores.audit_log, audit,
            setup.admin_token, clock,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        installed = _install_stop_signals(loop, stop)
        stack.callback(lambda: [loop.remove_signal_handler(sig) for sig in installed])
        died: list[str] = []
        watcher = loop.create_task(_watch_worker(stores.hashing, stop, died), name="scrypt-worker-watch")
        stack.callback(watcher.cancel)
        refused = _refusal_recorder(audit, clock)
        handler = PixPdqHandler(stores.index, audit=audit, clock=clock)
        addresses = {"mllp": await _listen_mllp(stack, handler, host, mllp_port, setup.tls, refused, grace)}
        if http_port is not None:
            addresses["http"] = await _listen_http(
                stack, services, setup.gateways, host, http_port, grace, login_queue
            )
        if soap_port is not None:
            addresses["soap"] = await _listen_soap(
                stack, services, setup.soap_tls, host, soap_port, grace, refused
            )
        log.info("hub: %d domains, %d records in %s", len(list(setup.directory)), stores.index.count(), data)
        if ready is not None:
            ready(addresses)
        await stop.wait()
        if died:
            raise HubError(died[0])


@dataclass(frozen=True)
class _Setup:
    """What the hub reads and makes before opening anything: the world's tables, its data folder, TLS."""

    directory: DomainDirectory
    facilities: Facilities
    data: Path
    admin_token: str
    tls: ssl.SSLContext | None
    soap_tls: ssl.SSLContext | None
    gateways: Gateways | None


def _prepare(
    world_dir: Path,
    data_dir: Path | None,
    host: str,
    pki: Path | None,
    plain_mllp: bool,
    gateways_file: Path | None,
) -> _Setup:
    world = load_world(world_dir)
    try:
        directory = DomainDirectory.from_world(world)
        facilities = Facilities.from_world(world)
    except (KeyError, TypeError) as exc:
        raise HubError(f"{world_dir / 'world.json'}: a facility lacks a required field ({exc})") from exc
    data = data_dir if data_dir is not None else world_dir / "hub"
    try:
        data.mkdir(parents=True, exist_ok=True)
        admin_token = _admin_token(data)
    except OSError as exc:
        raise HubError(f"cannot use the data directory {data}: {exc}") from exc
    tls = soap_tls = None
    if not plain_mllp:
        try:
            folder = pki if pki is not None else data / PKI_DIR
            files = ensure_pki(folder, world_facility_codes(world), [host])
            tls, soap_tls = files.server_context(), files.server_context()  # each observed by its listener
        except (OSError, ValueError, PkiError) as exc:
            raise HubError(f"cannot set up the hub's TLS files: {exc}") from exc
    gateways: Gateways | None = None
    if gateways_file is not None:
        try:
            gateways = Gateways.from_file(gateways_file, {f.code: f for f in facilities})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise HubError(f"cannot read the gateways file {gateways_file}: {exc}") from exc
    return _Setup(directory, facilities, data, admin_token, tls, soap_tls, gateways)


@dataclass(frozen=True)
class _Stores:
    index: PatientIndex
    accounts: Accounts
    consents: ConsentStore
    audit_log: AuditLog
    hashing: ProcessPoolExecutor


def _open_stores(
    stack: AsyncExitStack,
    data: Path,
    directory: DomainDirectory,
    clock: Callable[[], dt.datetime],
    scrypt: ScryptParams | None,
    audit_settings: AuditSettings | None,
) -> _Stores:
    """The stores (closed by ``stack``) and the password worker; refuses an audit log cut behind its
    checkpoints."""
    try:
        index = stack.enter_context(PatientIndex(data / INDEX_FILE, directory, clock=clock))
        hashing = stack.enter_context(
            ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,
                initargs=(signal.SIGTERM, os.getpid()),
            )
        )
        accounts = stack.enter_context(
            Accounts(
                data / "accounts.sqlite",
                params=scrypt,
                hasher=lambda pw, salt, params: hashing.submit(scrypt_hash, pw, salt, params).result(),
            )
        )
        consents = stack.enter_context(ConsentStore(data / "consents.sqlite"))
        audit_log = stack.enter_context(AuditLog(data / "audit.sqlite", audit_settings))
    except AuditKeyError as exc:
        raise HubError(f"cannot open the audit log: {exc}") from exc
    except Exception as exc:  # sqlite3.Error, OSError: a corrupt or unwritable store
        raise HubError(f"cannot open the hub's stores in {data}: {exc}") from exc
    tampered = audit_log.consistent_with_checkpoints()
    if tampered is not None:
        raise HubError(
            f"the audit log in {data} does not match its checkpoints: {tampered}. Keep both files as"
            f" evidence, see `rhin audit verify {data}`, and start on a restored copy"
        )
    return _Stores(index, accounts, consents, audit_log, hashing)


Refused = Callable[..., Coroutine[Any, Any, None]]
"""``refused(reason, transport="mllp-tls")``: audit a connection refused before any message (TLS)."""


def _refusal_recorder(audit: AuditBatcher, clock: Callable[[], dt.datetime]) -> Refused:
    async def refused(reason: str, transport: str = "mllp-tls") -> None:
        details = {"transport": transport}
        await audit.record(
            AuditEntry(clock(), "", "", "rejected-connection", "refused", "", "", reason, details)
        )

    return refused


async def _listen_mllp(
    stack: AsyncExitStack,
    handler: PixPdqHandler,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    refused: Refused,
    grace: float,
) -> tuple[str, int]:
    trace = MessageTrace.from_env()  # opt-in timing of every message (capacity work): see msgtrace.py
    if trace is not None:
        stack.callback(trace.close)  # after the server has stopped (callbacks run last-in first-out)
    mllp = MLLPServer(handler, host, port, tls=tls, refused=refused, trace=trace)
    try:
        await mllp.start()
    except OSError as exc:
        raise HubError(f"cannot listen for MLLP on {host}:{port}: {exc.strerror or exc}") from exc
    stack.push_async_callback(mllp.stop, grace)
    return (mllp.host, mllp.port)


async def _listen_http(
    stack: AsyncExitStack,
    services: HubServices,
    gateways: Gateways | None,
    host: str,
    port: int,
    grace: float,
    login_queue: int,
) -> tuple[str, int]:
    try:
        app = create_app(services, gateways, login_queue=login_queue)
        http = await _start_http(app, host, port)
    except OSError as exc:
        raise HubError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror or exc}") from exc
    # LIFO: HTTP stops taking requests, then the refusals still being counted are summarised,
    # then (pushed earlier) the audit is flushed and closed.
    stack.push_async_callback(app.state.refusals.flush)
    stack.push_async_callback(_stop_http, http, grace)
    return (host, http[2])


async def _listen_soap(
    stack: AsyncExitStack,
    services: HubServices,
    tls: ssl.SSLContext | None,
    host: str,
    port: int,
    grace: float,
    refused: Refused,
) -> tuple[str, int]:
    """PIXv3/PDQv3: HTTPS with facility certificates, as MLLP (:mod:`.v3.app`); plain HTTP without ``tls``."""
    soap_app = create_soap_app(services, require_tls=tls is not None)
    factory = None
    if tls is not None:
        observed = observe_handshakes(tls, lambda reason: refused(reason, "soap-tls"))
        factory = lambda _config, _default: observed  # noqa: E731 - uvicorn's ssl_context_factory signature
    try:
        soap = await _start_http(  # no proxy in front of SOAP: X-Forwarded-* is neither trusted nor parsed
            soap_app, host, port, http=CertifiedHttpTools, ssl_context_factory=factory, proxy_headers=False
        )
    except OSError as exc:
        raise HubError(f"cannot listen for SOAP on {host}:{port}: {exc.strerror or exc}") from exc
    stack.push_async_callback(_stop_http, soap, grace)
    return (host, soap[2])


async def _watch_worker(pool: ProcessPoolExecutor, stop: asyncio.Event, died: list[str]) -> None:
    """Start the password worker now (from the loop's thread: PR_SET_PDEATHSIG follows the thread that
    forks) and set ``stop``, with the reason in ``died``, when it exits while the hub serves.

    Linux pidfds say when a process exits without racing the pool's own reaping; elsewhere, a poll.
    """
    pid = await asyncio.wrap_future(pool.submit(os.getpid))
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    fd = -1
    try:
        fd = os.pidfd_open(pid)
        loop.add_reader(fd, gone.set)
    except (AttributeError, OSError, NotImplementedError):
        if fd >= 0:
            os.close(fd)
            fd = -1
    try:
        if fd >= 0:
            await gone.wait()
        else:
            while _alive(pid):
                await asyncio.sleep(0.5)
    finally:
        if fd >= 0:
            loop.remove_reader(fd)
            os.close(fd)
    if not stop.is_set():
        died.append(f"the password-hashing worker (pid {pid}) died; the hub stopped (logins need it)")
        log.error("%s", died[0])
        stop.set()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside run_hub's loop: it must not take over SIGINT/SIGTERM (run_hub owns them)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _start_http(
    app: Any, host: str, port: int, **options: Any
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Bind the socket here (a clear OSError if the port is taken), then let uvicorn serve it."""
    # proto from getaddrinfo (IPPROTO_TCP), not 0: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket says TCP, and without it every keep-alive reply waits 40 ms (Nagle).
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **options)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            raise HubError(f"the HTTP server on {host}:{port} did not start: {task.exception()!r}")
        await asyncio.sleep(0.005)
    return server, task, int(sock.getsockname()[1])


async def _stop_http(http: tuple[uvicorn.Server, asyncio.Task[None], int], grace: float) -> None:
    server, task, _ = http
    server.should_exit = True
    try:
        await asyncio.wait_for(task, grace + 1)
    except TimeoutError:
        server.force_exit = True
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
