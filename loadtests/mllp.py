"""The one place load users speak MLLP: a blocking client (gevent-friendly once Locust has patched sockets)
that reads until the end block, decodes by MSH-18, and reports each exchange to Locust.

The wire client and the decoder come from :mod:`hl7wire` (``BlockingClient``, ``decode``, ``MLLPError``),
imported here only. ``python-hl7``'s ``MLLPClient`` is not used: it reads
one 4 KB ``recv`` and truncates long PDQ answers.

With ``RHIN_LOAD_MESSAGE_TRACE`` set (a path; ``rhin load`` passes its environment on), each process appends
one line per exchange to ``PATH.PID`` (:func:`client_trace`), the client's half of the hub's message
trace (:mod:`simulator.hub.msgtrace`); ``python -m harness.load.msgsplit`` joins the two.

Success is the HL7 answer code the step expects (``AA`` for a normal query; a step may expect ``AE``/``AR``
too). Anything else — another code, an undecodable reply, a timeout, a closed connection — is a failure
whose reason names it.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from hl7wire import BlockingClient, HL7Error, Message, MLLPError, decode, encode
from simulator.hub.msgtrace import CLIENT_ENV, MessageTrace, schedstat, usage_since

__all__ = [
    "Message",
    "MllpError",
    "MllpExchange",
    "MllpSession",
    "answer_code",
    "client_trace",
    "close_client_trace",
]

_traces: dict[int, MessageTrace] = {}


def client_trace() -> MessageTrace | None:
    """This process's client trace, opened on first use, or None when not asked for.

    One line per exchange::

        start,sent,end,name,cpu_ns,runq_ns

    epoch seconds when the exchange began (before connecting, if it has to), when its block was written,
    and when the whole reply was read; the Locust request's name; and what this process's thread did
    between ``sent`` and ``end`` — while this user's greenlet waited for the answer — on a core (the
    other greenlets' work) and runnable without one (waiting for a core). Keyed by process id: Locust's
    worker processes are forked after this module is imported, and each must open its own file."""
    pid = os.getpid()
    trace = _traces.get(pid)
    if trace is None:
        prefix = os.environ.get(CLIENT_ENV)
        if not prefix:
            return None
        trace = _traces[pid] = MessageTrace(f"{prefix}.{pid}")
    return trace


def close_client_trace() -> None:
    """Write what this process's trace buffered (at the test's end)."""
    trace = _traces.pop(os.getpid(), None)
    if trace is not None:
        trace.close()


Fire = Callable[..., Any]  # locust's events.request.fire


class MllpError(Exception):
    """An exchange that did not give the expected HL7 answer (the reason is the message)."""


@dataclass(frozen=True)
class MllpExchange:
    """One request and its decoded answer."""

    reply: Message
    code: str
    elapsed_ms: float
    size: int


def answer_code(msg: Message) -> str:
    """MSA-1 (``AA``/``AE``/``AR``; ``CA``/``CE``/``CR`` accepted as their A-forms)."""
    code = msg.get("MSA", 1)
    return {"CA": "AA", "CE": "AE", "CR": "AR"}.get(code, code)


class MllpSession:
    """A facility's connection to the hub (TLS with the facility's certificate when ``tls`` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        timeout: float,
        fire: Fire | None = None,
        facility: str = "",
    ) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.fire = fire
        self.facility = facility
        self._client: BlockingClient | None = None

    def _connect(self) -> BlockingClient:
        if self._client is None:
            self._client = BlockingClient(self.host, self.port, timeout=self.timeout, tls=self.tls)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def exchange(
        self,
        name: str,
        text: str,
        codec: str,
        *,
        expect: Collection[str] = ("AA",),
        check: Callable[[Message], str | None] | None = None,
    ) -> MllpExchange:
        """Send ``text`` encoded with ``codec``; the decoded answer. Fires one Locust request event named
        ``name`` (request type ``MLLP``); raises :class:`MllpError` when the answer code is not expected or
        ``check`` (given the answer) returns a reason — e.g. a PIX answer that does not name the patient."""
        payload = encode(text, codec)
        trace = client_trace()
        began = time.time()
        started = time.perf_counter()
        error: Exception | None = None
        raw = b""
        result: MllpExchange | None = None
        try:
            try:
                if trace is None:
                    raw = self._connect().send(payload)
                else:
                    raw = self._traced(trace, name, payload, began)
            except (OSError, MLLPError) as exc:  # TimeoutError, TLS; ConnectionClosedError, FramingError
                self.close()
                raise MllpError(f"transport: {type(exc).__name__}: {exc}") from exc
            elapsed = (time.perf_counter() - started) * 1000
            try:
                reply, _codec = decode(raw)
            except HL7Error as exc:
                raise MllpError(f"undecodable answer: {exc}") from exc
            code = answer_code(reply)
            result = MllpExchange(reply, code, elapsed, len(raw))
            if code not in expect:
                detail = reply.get("ERR", 8) or reply.get("MSA", 3)
                raise MllpError(f"answer {code or 'none'}" + (f": {detail}" if detail else ""))
            problem = check(reply) if check is not None else None
            if problem:
                raise MllpError(problem)
            return result
        except Exception as exc:
            error = exc
            raise
        finally:
            if self.fire is not None:
                elapsed = result.elapsed_ms if result else (time.perf_counter() - started) * 1000
                self.fire(
                    request_type="MLLP",
                    name=name,
                    response_time=elapsed,
                    response_length=len(raw),
                    exception=error,
                    context={"facility": self.facility},
                )

    def _traced(self, trace: MessageTrace, name: str, payload: bytes, began: float) -> bytes:
        """:meth:`BlockingClient.send` with the client trace's readings between its write and its read."""
        client = self._connect()
        client.write(payload)
        sent = time.time()
        cpu0, wait0 = schedstat()
        raw = client.read()
        usage = usage_since(cpu0, wait0)
        end = time.time()
        trace.append(f"{began:.6f},{sent:.6f},{end:.6f},{name},{usage}")
        return raw
