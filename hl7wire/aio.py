"""The asyncio MLLP client (the bootstrap, benchmarks and asyncio tests): one persistent connection."""

from __future__ import annotations

import asyncio
import ssl
from contextlib import suppress
from types import TracebackType
from typing import Self

from .framing import END_BLOCK, START_BLOCK, ConnectionClosedError, FramingError, MLLPError, frame

__all__ = ["MLLPClient"]


class MLLPClient:
    """asyncio client on one persistent connection: ``async with MLLPClient(h, p) as c: await c.send(raw)``.

    :meth:`send` is one request/reply and is safe to call from several tasks (they queue). :meth:`write` and
    :meth:`read` are there to pipeline. Timeouts raise :class:`TimeoutError`. ``tls``: MLLP over TLS with
    that client context (a facility's certificate); None is plain MLLP.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None = 30.0,
        max_message_bytes: int = 16 * 1_048_576,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.port = port
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with asyncio.timeout(self.timeout):
            self._reader, self._writer = await asyncio.open_connection(
                self.host,
                self.port,
                limit=self.max_message_bytes,
                ssl=self.tls,
                server_hostname=self.host if self.tls is not None else None,
            )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with suppress(Exception):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def send(self, payload: bytes) -> bytes:
        """Send one message and return its reply payload (without framing)."""
        async with self._lock:
            await self.write(payload)
            return await self.read()

    async def write(self, payload: bytes) -> None:
        if self._writer is None:
            raise MLLPError("not connected")
        self._writer.write(frame(payload))
        async with asyncio.timeout(self.timeout):
            await self._writer.drain()

    async def read(self) -> bytes:
        """The next reply payload. Raises :class:`ConnectionClosedError` or :class:`FramingError`."""
        if self._reader is None:
            raise MLLPError("not connected")
        try:
            async with asyncio.timeout(self.timeout):
                block = await self._reader.readuntil(END_BLOCK)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionClosedError(
                f"connection closed after {len(exc.partial)} bytes of a reply"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise FramingError(f"reply larger than {self.max_message_bytes} bytes") from exc
        if not block.startswith(START_BLOCK):
            raise FramingError(f"reply does not start with 0x0B: {block[:20]!r}", block[: -len(END_BLOCK)])
        return block[1 : -len(END_BLOCK)]
