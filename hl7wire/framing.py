"""MLLP framing (0x0B payload 0x1C 0x0D) and the transport errors every client and server shares.

:class:`Deframer` is the one reader of blocks: it takes bytes as they come (however the network cuts them),
hands out whole payloads, and refuses a block over its size bound before the rest of it arrives.
"""

from __future__ import annotations

from typing import Final

from .errors import HL7Error

__all__ = [
    "END_BLOCK",
    "START_BLOCK",
    "ConnectionClosedError",
    "Deframer",
    "FramingError",
    "HandshakeError",
    "MLLPError",
    "frame",
]

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c\x0d"


class MLLPError(HL7Error):
    """A transport-level failure seen by a client."""


class FramingError(MLLPError):
    """The peer sent bytes that are not an MLLP block.

    ``block`` holds what came before the end block when only the start byte was missing (a harness may
    still want to look at such a reply); it is None for an oversize block.
    """

    def __init__(self, message: str, block: bytes | None = None) -> None:
        super().__init__(message)
        self.block = block


class ConnectionClosedError(MLLPError):
    """The peer closed (or reset) the connection before a whole reply arrived."""


class HandshakeError(ConnectionClosedError):
    """The TLS handshake failed (no certificate, an untrusted one, plain MLLP at the other end); the
    ``ssl.SSLError`` or ``OSError`` is its ``__cause__``. A connection the peer closed at once, in effect."""


def frame(payload: bytes) -> bytes:
    """Wrap a payload in MLLP start/end bytes."""
    return START_BLOCK + payload + END_BLOCK


class Deframer:
    """Bytes in (:meth:`feed`), payloads out (:meth:`next_block`); at most ``max_message_bytes`` a payload.

    Each byte is scanned for the end block once, so a large reply arriving in many small pieces costs
    linear time, not quadratic.
    """

    __slots__ = ("_buffer", "_scanned", "max_message_bytes")

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._scanned = 0

    def __len__(self) -> int:
        """Bytes held that are not yet a whole block."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def clear(self) -> None:
        self._buffer.clear()
        self._scanned = 0

    def next_block(self) -> bytes | None:
        """The next whole payload (without framing), or None until more bytes come.

        Raises :class:`FramingError` for a block that does not start with 0x0B or is over the bound.
        """
        buffer = self._buffer
        end = buffer.find(END_BLOCK, max(0, self._scanned - len(END_BLOCK) + 1))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) > self.max_message_bytes + len(START_BLOCK) + 1:
                raise FramingError(f"reply larger than {self.max_message_bytes} bytes")
            return None
        block = bytes(buffer[:end])
        del buffer[: end + len(END_BLOCK)]
        self._scanned = 0
        if not block.startswith(START_BLOCK):
            raise FramingError(f"reply does not start with 0x0B: {block[:20]!r}", block)
        if len(block) - len(START_BLOCK) > self.max_message_bytes:
            raise FramingError(f"reply larger than {self.max_message_bytes} bytes")
        return block[len(START_BLOCK) :]
