"""The blocking MLLP client: plain ``socket`` (no asyncio), so it also runs under gevent's monkey-patching,
as Locust users do; tests and the scenario harness use it too.

A reply is read until its end block however the network fragments it, bounded in size, and within one
deadline for the whole reply (not per ``recv``). Over TLS the handshake happens when the client is made.
"""

from __future__ import annotations

import socket
import ssl
import time
from types import TracebackType
from typing import Final, Self

from .charset import codec_for, encode
from .framing import ConnectionClosedError, Deframer, HandshakeError, frame
from .model import Message
from .parse import decode, parse

__all__ = ["BlockingClient"]

_CHUNK: Final = 65536


class BlockingClient:
    """One persistent MLLP connection: ``with BlockingClient(host, port) as c: reply = c.send(payload)``.

    ``timeout`` bounds connecting and each reply (None: wait forever); ``max_message_bytes`` bounds a reply's
    payload (:class:`~hl7wire.FramingError` beyond it); ``tls``: MLLP over TLS with that client context (a
    facility's certificate), None is plain MLLP; a failed handshake raises :class:`~hl7wire.HandshakeError`
    (connecting at all: ``OSError``). Failures raise :class:`~hl7wire.ConnectionClosedError`
    (the peer closed or reset, ``__cause__`` saying how, e.g. an ``ssl.SSLError`` when a TLS 1.3 server
    refuses the certificate after the handshake), :class:`~hl7wire.FramingError` or :class:`TimeoutError`.
    One caller at a time (a thread, a greenlet, a Locust user): replies are matched to requests by order.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None = 10.0,
        max_message_bytes: int = 16 * 1_048_576,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                try:
                    sock = tls.wrap_socket(sock, server_hostname=host)
                except OSError as exc:  # ssl.SSLError is one
                    raise HandshakeError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket = sock
        self._frames = Deframer(max_message_bytes)

    # ----------------------------------------------------------------------------------- bytes

    def send(self, payload: bytes) -> bytes:
        """Send one payload (framed here) and return the reply's payload."""
        self.write(payload)
        return self.read()

    def write(self, payload: bytes) -> None:
        """Send one payload, framed; with :meth:`read`, this pipelines."""
        self.write_raw(frame(payload))

    def write_raw(self, data: bytes) -> None:
        """Send bytes exactly as given (no framing): for tests of what a server does with broken input."""
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise
        except OSError as exc:  # a reset, a broken pipe, the TLS alert of a refused certificate
            raise ConnectionClosedError(f"sending failed, the connection is gone: {exc}") from exc

    def shutdown_write(self) -> None:
        """Half-close: the server sees EOF, and its reply (if any) can still be read.

        On TLS this is the TCP half-close beneath the TLS layer (an abrupt end, no close_notify), taken with
        ``socket.socket.shutdown``: ``SSLSocket.shutdown`` also drops the TLS object, after which reads
        return raw records (a TLS 1.3 server's session tickets as garbage, now and then framed by chance)."""
        try:
            socket.socket.shutdown(self._sock, socket.SHUT_WR)
        except OSError as exc:
            raise ConnectionClosedError(f"half-close failed, the connection is gone: {exc}") from exc

    def read(self, timeout: float | None = None) -> bytes:
        """The next reply payload, within ``timeout`` seconds (default: the client's ``timeout``)."""
        limit = self.timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            block = self._frames.next_block()
            if block is not None:
                return block
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no whole reply within {limit} s ({len(self._frames)} bytes so far)")
                self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(_CHUNK)
            except TimeoutError:
                if deadline is None:
                    raise
                continue  # the deadline (checked above) says what timed out
            except OSError as exc:
                raise ConnectionClosedError(
                    f"connection lost after {len(self._frames)} bytes of a reply: {exc}"
                ) from exc
            finally:
                if deadline is not None:
                    self._sock.settimeout(self.timeout)
            if not chunk:
                raise ConnectionClosedError(f"connection closed after {len(self._frames)} bytes of a reply")
            self._frames.feed(chunk)

    def peer_closed(self) -> bool:
        """Has the peer closed (or reset) the connection? Looks without blocking; bytes that already came
        stay for the next :meth:`read` (TLS sockets cannot ``MSG_PEEK``)."""
        self._sock.setblocking(False)
        try:
            data = self._sock.recv(_CHUNK)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except OSError:
            return True
        finally:
            self._sock.settimeout(self.timeout)
        if not data:
            return True
        self._frames.feed(data)
        return False

    # ----------------------------------------------------------------------------------- messages

    def send_message(self, message: Message | str, codec: str | None = None) -> tuple[Message, str]:
        """Send an HL7 message and return (reply, its codec), the reply decoded by its own MSH-18.

        The request is encoded in ``codec``, by default the one its MSH-18 declares. Raises
        :class:`~hl7wire.HL7Error` (e.g. a reply in an unknown charset) besides the transport errors.
        """
        parsed = parse(message) if isinstance(message, str) else message
        if codec is None:
            codec = codec_for(parsed.charset_field, parsed.delimiters.repetition)
        text = message if isinstance(message, str) else message.to_er7()
        return decode(self.send(encode(text, codec)))

    # ----------------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
