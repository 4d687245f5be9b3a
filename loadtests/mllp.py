"""The one place load users speak MLLP: a blocking client (gevent-friendly once Locust has patched sockets)
that reads until the end block, decodes by MSH-18, and reports each exchange to Locust.

The wire client and the decoder come from :mod:`hl7wire` (``BlockingClient``, ``decode``, ``MLLPError``),
imported here only. ``python-hl7``'s ``MLLPClient`` is not used: it reads
one 4 KB ``recv`` and truncates long PDQ answers.

Success is the HL7 answer code the step expects (``AA`` for a normal query; a step may expect ``AE``/``AR``
too). Anything else — another code, an undecodable reply, a timeout, a closed connection — is a failure
whose reason names it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from hl7wire import BlockingClient, HL7Error, Message, MLLPError, decode, encode

__all__ = ["Message", "MllpError", "MllpExchange", "MllpSession", "answer_code"]

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
        started = time.perf_counter()
        error: Exception | None = None
        raw = b""
        result: MllpExchange | None = None
        try:
            try:
                raw = self._connect().send(payload)
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
