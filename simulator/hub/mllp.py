"""The hub's MLLP server (asyncio) and the adapter from raw blocks to HL7 applications.

Framing, the message model and the clients are :mod:`hl7wire`'s; this module is what makes them a server.

The server owns framing and robustness: persistent connections, one reply per message in order, concurrent
connections, and bad input that only ever closes the offending connection. What a message means is the
handler's business; :class:`HL7Handler` adapts an HL7 application (decode by MSH-18, basic checks, reply in
the request's charset) to the raw ``bytes -> bytes | None`` handler the server calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from hl7wire import (
    ASCII,
    END_BLOCK,
    START_BLOCK,
    CharsetError,
    ControlIds,
    ErrorCode,
    ErrorDetail,
    HL7Error,
    Message,
    ParseError,
    ack,
    basic_checks,
    charset_of,
    decode,
    encode,
    frame,
    parse_header,
)
from simulator.pki import facility_of
from synthetic.clock import jst_now

from .msgtrace import MessageTrace, message_kind

__all__ = [
    "PEER",
    "EchoHandler",
    "HL7Handler",
    "Handler",
    "MLLPServer",
    "Peer",
    "ServerStats",
    "serve_echo",
]

Handler = Callable[[bytes], Awaitable[bytes | None]]
"""The server's handler: raw payload in, encoded reply payload out (None: no reply)."""
Clock = Callable[[], datetime]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of the connection a message came in on.

    ``tls`` says whether the connection is MLLP over TLS; ``facility`` is the facility of its verified client
    certificate (:func:`simulator.pki.facility_of`), None on plain MLLP, where nothing is authenticated.
    """

    address: str
    tls: bool = False
    facility: str | None = None


PEER: ContextVar[Peer | None] = ContextVar("mllp_peer", default=None)
"""The current message's connection, set by :class:`MLLPServer` in each connection's task: how a handler
(``bytes -> bytes``, unaware of sockets) learns the authenticated sender without a wider signature."""
RefusedHook = Callable[[str], Coroutine[Any, Any, None]]
"""``refused(reason)``: called when a TLS handshake fails (no certificate, an untrusted one, plain bytes)."""


@dataclass
class ServerStats:
    """Counters for what the server saw; tests and benchmarks read them, nothing else depends on them."""

    connections: int = 0
    messages: int = 0
    replies: int = 0
    idle_closed: int = 0
    framing_errors: int = 0
    truncated: int = 0
    oversize: int = 0
    handler_errors: int = 0
    tls_refused: int = 0


class _Connection:
    """One client connection and its idle watchdog.

    ``waiting`` says what the connection waits for from the peer (``idle``: a message, ``block``: the rest
    of one, ``drain``: that it reads our replies; empty while the handler runs) and ``deadline`` (loop time)
    until when. Setting both is all a message costs: one timer per connection checks them lazily, rather
    than arming and cancelling timers for every message (``asyncio.timeout`` three times per message was a
    measurable part of a PIX query).
    """

    __slots__ = ("busy", "deadline", "expired", "peer", "task", "timer", "waiting")

    def __init__(self, task: asyncio.Task[Any], peer: str) -> None:
        self.task = task
        self.peer = peer
        self.busy = False
        self.waiting = ""
        self.deadline = math.inf
        self.expired = ""  # what it was waiting for when its deadline passed (the watchdog cancelled it)
        self.timer: asyncio.TimerHandle | None = None

    def wait(self, what: str, deadline: float) -> None:
        self.waiting, self.deadline = what, deadline


def _observed(ctx: ssl.SSLContext, failed: Callable[[str], None]) -> ssl.SSLContext:
    """``ctx`` whose TLS objects report a failed handshake (no client certificate, one from another CA,
    plain MLLP bytes) to ``failed``: asyncio (and uvloop) drop such connections silently, before any
    connection callback runs, so this is the one place a refusal can be seen. The reason is OpenSSL's."""

    class Observed(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                failed(str(exc.reason or exc))
                raise

    ctx.sslobject_class = Observed
    return ctx


class MLLPServer:
    """An asyncio MLLP server calling ``handler`` once per message.

    Messages on one connection are handled one after another and answered in order; connections run
    concurrently. Framing errors (bytes before 0x0B, a start byte inside a block), truncated blocks (EOF or
    ``idle_timeout`` mid-block) and blocks over ``max_message_bytes`` close that connection only. A handler
    exception is answered with AE + ERR 207 when the block's MSH can be read, else the connection closes.

    ``tls`` (a server context requiring client certificates, :meth:`simulator.pki.Pki.server_context`) makes
    it MLLP over TLS: a client without a certificate from the CA — or speaking plain MLLP — fails the
    handshake (within ``handshake_timeout``) and is dropped; the failure is counted (``stats.tls_refused``),
    logged and passed to ``refused``. The context is modified (its ``sslobject_class`` observes handshakes).
    Each message's handler runs with :data:`PEER` set to its connection's :class:`Peer`. ``trace``
    (:class:`~.msgtrace.MessageTrace`) records each message's handling time (its owner closes it).
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_message_bytes: int = 1_048_576,
        idle_timeout: float = 300.0,
        clock: Clock = jst_now,
        control_ids: ControlIds | None = None,
        reuse_port: bool = False,
        backlog: int = 1024,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        refused: RefusedHook | None = None,
        trace: MessageTrace | None = None,
    ) -> None:
        self.handler = handler
        self.trace = trace
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.refused = refused
        self.host = host
        self._port = port
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.control_ids = control_ids or ControlIds()
        self.reuse_port = reuse_port
        self.backlog = backlog
        self.stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        self._refusals: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one once started with ``port=0``)."""
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        self._closing = False
        tls = self.tls
        if tls is not None:
            tls = _observed(tls, self._handshake_failed)
        self._server = await asyncio.start_server(
            self._serve,
            self.host,
            self._port,
            limit=self.max_message_bytes,
            reuse_port=self.reuse_port or None,
            backlog=self.backlog,
            ssl=tls,
            ssl_handshake_timeout=self.handshake_timeout if tls is not None else None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        kind = "MLLP over TLS (client certificates required)" if self.tls else "plain MLLP (no TLS)"
        log.info("%s server listening on %s:%d", kind, self.host, self._port)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening; close idle connections now, busy ones once their reply is out (or after grace)."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        connections = list(self._connections)
        for conn in connections:
            if not conn.busy:
                conn.task.cancel()
        tasks = [c.task for c in connections]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        log.info("MLLP server on %s:%d stopped", self.host, self._port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        conn = _Connection(task, peer)
        self._connections.add(conn)
        self.stats.connections += 1
        loop = asyncio.get_running_loop()
        conn.timer = loop.call_at(loop.time() + self.idle_timeout, self._watch, conn)
        try:
            if not self._closing:
                PEER.set(self._peer(conn, writer))
                await self._loop(conn, reader, writer)
        except asyncio.CancelledError:
            if conn.expired:
                task.uncancel()
                self._expired(conn)
        except (ConnectionError, OSError) as exc:
            log.info("MLLP %s: connection lost: %s", peer, exc)
        except Exception:
            log.exception("MLLP %s: unexpected error; closing the connection", peer)
        finally:
            if conn.timer is not None:
                conn.timer.cancel()
            self._connections.discard(conn)
            writer.close()
            with suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    def _peer(self, conn: _Connection, writer: asyncio.StreamWriter) -> Peer:
        """Who the connection is: on TLS (the handshake verified the certificate against the CA already)
        the certificate's facility; on plain MLLP no one in particular."""
        if self.tls is None:
            return Peer(conn.peer)
        return Peer(conn.peer, True, facility_of(writer.get_extra_info("peercert")))

    def _handshake_failed(self, reason: str) -> None:
        """A TLS handshake failed: count, log, and hand it to ``refused`` (the hub audits it)."""
        self.stats.tls_refused += 1
        log.warning("MLLP: TLS handshake refused: %s", reason)
        if self.refused is not None:
            task = asyncio.get_running_loop().create_task(self.refused(f"TLS handshake failed: {reason}"))
            self._refusals.add(task)
            task.add_done_callback(self._refusals.discard)

    def _watch(self, conn: _Connection) -> None:
        """The connection's watchdog: cancel it once what it waits for is overdue, else look again later."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if conn.waiting and now >= conn.deadline:
            conn.expired, conn.timer = conn.waiting, None
            conn.task.cancel()
            return
        again = conn.deadline if conn.waiting else now + self.idle_timeout
        conn.timer = loop.call_at(again, self._watch, conn)

    def _expired(self, conn: _Connection) -> None:
        peer, seconds = conn.peer, self.idle_timeout
        if conn.expired == "block":
            self.stats.truncated += 1
            log.warning("MLLP %s: block unfinished after %.1f s; closing", peer, seconds)
        elif conn.expired == "idle":
            self.stats.idle_closed += 1
            log.info("MLLP %s: idle for %.1f s; closing", peer, seconds)
        else:
            log.warning("MLLP %s: replies not read for %.1f s; closing", peer, seconds)

    async def _loop(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Read, handle, answer, until the peer closes or misbehaves; timeouts end it via :meth:`_watch`."""
        loop = asyncio.get_running_loop()
        peer = conn.peer
        while True:
            try:
                conn.wait("idle", loop.time() + self.idle_timeout)
                first = await reader.read(1)
                if not first:
                    return  # clean close between messages
                if first != START_BLOCK:
                    self.stats.framing_errors += 1
                    log.warning("MLLP %s: %r where a start byte 0x0B was expected; closing", peer, first)
                    return
                conn.wait("block", loop.time() + self.idle_timeout)
                block = await reader.readuntil(END_BLOCK)
                conn.wait("", math.inf)
            except asyncio.IncompleteReadError as exc:
                self.stats.truncated += 1
                log.warning(
                    "MLLP %s: connection closed inside a block (%d bytes); closing", peer, len(exc.partial)
                )
                return
            except asyncio.LimitOverrunError:
                self.stats.oversize += 1
                log.warning("MLLP %s: block larger than %d bytes; closing", peer, self.max_message_bytes)
                return
            payload = block[: -len(END_BLOCK)]
            if START_BLOCK in payload:
                self.stats.framing_errors += 1
                log.warning(
                    "MLLP %s: start byte inside a block (a truncated block before it?); closing", peer
                )
                return
            self.stats.messages += 1
            conn.busy = True
            try:
                keep_open, reply = await self._call(peer, payload)
            finally:
                conn.busy = False
            if not keep_open:
                return
            if reply is not None:
                writer.write(frame(reply))
                conn.wait("drain", loop.time() + self.idle_timeout)
                await writer.drain()
                conn.wait("", math.inf)
                self.stats.replies += 1
            if self._closing:
                return

    async def _call(self, peer: str, payload: bytes) -> tuple[bool, bytes | None]:
        """(keep the connection open?, reply): on a handler exception an AE/207 ACK, else close."""
        trace = self.trace
        begun = trace.begin() if trace is not None else None
        try:
            reply = await self.handler(payload)
        except Exception as exc:
            self.stats.handler_errors += 1
            log.exception("MLLP %s: handler failed", peer)
            reply = self._internal_error(payload, exc)
            if reply is None:
                log.warning("MLLP %s: no readable MSH in the failed message; closing", peer)
                return False, None
            return True, reply
        if trace is not None and begun is not None:
            trace.end(begun, message_kind(payload))
        return True, reply

    def _internal_error(self, payload: bytes, exc: Exception) -> bytes | None:
        try:
            header = parse_header(payload)
            try:
                codec = charset_of(payload)
                charset = None
            except CharsetError:
                codec, charset = ASCII, ""
            detail = ErrorDetail(ErrorCode.APPLICATION_INTERNAL_ERROR, diagnostic=type(exc).__name__)
            reply = ack(
                header,
                "AE",
                errors=[detail],
                control_id=self.control_ids.next(),
                now=self.clock(),
                charset=charset,
            )
            return encode(reply.to_er7(), codec, "replace")
        except HL7Error:
            return None


class HL7Handler:
    """The raw handler for an HL7 application: decode by MSH-18, check, call :meth:`handle`, encode the reply.

    Unknown charset, undecodable bytes, unusable MSH-2 or failed :func:`basic_checks` get an AR with ERR and
    never reach :meth:`handle`. A block with no MSH at all raises :class:`ParseError`, so the server closes
    the connection (nothing could correlate a reply). Subclass and override :meth:`handle`; the default
    answers AA. Replies use the request's charset.
    """

    def __init__(
        self,
        *,
        clock: Clock = jst_now,
        control_ids: ControlIds | None = None,
        versions: Iterable[str] | None = None,
    ) -> None:
        self.clock = clock
        self.control_ids = control_ids or ControlIds()
        self.versions = None if versions is None else frozenset(versions)

    def ack(self, request: Message, code: str, *, now: datetime | None = None, **kwargs: Any) -> Message:
        """:func:`ack` with this handler's control ids and clock (``now`` when the caller already read it)."""
        stamp = self.clock() if now is None else now
        return ack(request, code, control_id=self.control_ids.next(), now=stamp, **kwargs)

    async def handle(self, message: Message) -> Message | None:
        """Answer one decoded, checked message; None sends no reply."""
        return self.ack(message, "AA")

    async def __call__(self, raw: bytes) -> bytes | None:
        try:
            message, codec = decode(raw)
        except CharsetError as exc:
            return self._reject(raw, exc.detail, exc.codec)
        except ParseError as exc:
            if exc.detail is None:
                raise
            return self._reject(raw, exc.detail, None)
        problems = basic_checks(message, versions=self.versions)
        if problems:
            return self.ack(message, "AR", errors=problems).encode(codec, "replace")
        reply = await self.handle(message)
        return None if reply is None else reply.encode(codec)

    def _reject(self, raw: bytes, detail: ErrorDetail, codec: str | None) -> bytes:
        """AR built from the MSH alone; an unknown charset is answered in ASCII with MSH-18 left empty."""
        header = parse_header(raw)
        charset = None if codec is not None else ""
        if codec is None:
            try:
                codec = charset_of(raw)
            except HL7Error:
                codec = ASCII
        reply = self.ack(header, "AR", errors=[detail], charset=charset)
        return reply.encode(codec, "replace")


class EchoHandler(HL7Handler):
    """AA to every message after decoding and basic checks: the least an HL7 server does (the baseline)."""


async def serve_echo(host: str = "127.0.0.1", port: int = 0, **server_options: Any) -> MLLPServer:
    """A started server answering every message with AA (see :class:`EchoHandler`)."""
    server = MLLPServer(EchoHandler(), host, port, **server_options)
    await server.start()
    return server
