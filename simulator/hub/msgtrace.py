"""A per-message timing trace of the hub's MLLP server, for capacity work (opt-in).

Why: a load run says how long each request took at the client, not where the time went. The capacity
model's validation (README, "Capacity model") needed to know whether a slow ITI-8 feed at ×400 waited in
Locust, on the wire or in the hub, and inside the hub whether its event loop was computing, waiting for a
core or asleep. This trace answers that with a line per message, cheaply enough to leave on for a run.

Set ``RHIN_HUB_MESSAGE_TRACE`` to a file path in the environment of the hub's process (``rhin up`` and
``rhin load`` pass theirs on to the processes they start; not into containers) and every MLLP message the
hub handles appends one CSV line::

    start,end,kind,cpu_ns,runq_ns

``start``/``end`` are epoch seconds (the clock Locust's ``raw.csv`` uses) around the handler: from the
block read off the connection to its encoded reply; ``kind`` is MSH-9's type and event (``ADT^A04``);
``cpu_ns``/``runq_ns`` are what the serving thread (the event loop's) spent meanwhile on a core and
runnable without one (its CPU clock and ``/proc/thread-self/schedstat``: Linux; ``-1`` elsewhere). The
thread's CPU includes whatever else the loop ran while this message awaited (other requests' work, the
audit writer), which is the point: it is what the message waited behind. What is neither CPU nor run-queue
wait, the loop slept (an fsync, a timer, nothing to do). ``python -m harness.load.msgsplit REPORT TRACE``
matches the lines to a load run's requests and prints where the time went per band of latency.

Lines are buffered and written when the buffer fills and when the hub stops (:meth:`MessageTrace.close`).
A message whose handler raised is not traced (the server answers it with an AE of its own).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TextIO

from hl7wire import ParseError, header_text, msh_delimiters

__all__ = ["CLIENT_ENV", "ENV", "MessageTrace", "message_kind", "schedstat", "usage_since"]

ENV = "RHIN_HUB_MESSAGE_TRACE"
"""The environment variable naming the trace file (unset: no trace)."""

CLIENT_ENV = "RHIN_LOAD_MESSAGE_TRACE"
"""The same for the load generator's half (:func:`loadtests.mllp.client_trace`): a path to which each of
its processes adds ``.PID``."""

_SCHEDSTAT = "/proc/thread-self/schedstat"

log = logging.getLogger(__name__)


def schedstat() -> tuple[int, int]:
    """The calling thread's (CPU ns, run-queue wait ns) since it started; (-1, -1) when unavailable.

    CPU is the thread's CPU clock (exact at any moment); the wait is ``/proc/thread-self/schedstat``'s
    second field. Not its first: the kernel updates that one only when the thread is switched or at a
    tick, so a running thread reads it up to a tick stale. The wait is fresh while the thread runs: it is
    added when the thread is put back on a core.
    """
    try:
        with open(_SCHEDSTAT, "rb") as f:
            wait = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return -1, -1
    return time.thread_time_ns(), wait


def usage_since(cpu0: int, wait0: int) -> str:
    """``cpu_ns,runq_ns``: what the calling thread spent on a core and runnable without one since a
    :func:`schedstat` reading of ``(cpu0, wait0)``; ``-1,-1`` when either reading is unavailable."""
    cpu, wait = schedstat()
    if cpu < 0 or cpu0 < 0:
        return "-1,-1"
    return f"{cpu - cpu0},{wait - wait0}"


_KIND_PART = 16
"""At most this many characters of MSH-9.1 and .2 each (real codes have 3)."""


def message_kind(payload: bytes) -> str:
    """MSH-9's type and event (``ADT^A04``) read from the block's MSH line only; ``?`` if unreadable.

    The trace must not decode the message a second time, nor fail on one the handler refuses, so only the
    MSH line is read, as the handler reads it (:func:`hl7wire.header_text`: the line ends at CR or LF, an
    ISO-2022-JP facility name before MSH-9 is decoded whole, so a kanji's 0x7C or 0x5E byte is not a
    delimiter; :func:`hl7wire.msh_delimiters`). And the bytes are the sender's: anything but printable
    ASCII (a byte the ASCII file cannot take, a control character) and commas (they would shift the
    columns) become ``?``, and each part is cut at :data:`_KIND_PART` characters.
    """
    if not payload.startswith(b"MSH"):
        return "?"
    try:
        line = header_text(payload)
        delimiters = msh_delimiters(line)
    except ParseError:
        return "?"
    fields = line.split(delimiters.field)
    if len(fields) < 9:
        return "?"
    parts = fields[8].split(delimiters.component)[:2]
    kind = "^".join(
        "".join(c if "!" <= c <= "~" and c != "," else "?" for c in part[:_KIND_PART]) for part in parts
    )
    return kind or "?"


class MessageTrace:
    """Appends one line per message to ``path`` (see the module's docstring)."""

    FLUSH_LINES = 1000

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: TextIO | None = open(self.path, "a", encoding="ascii")  # noqa: SIM115 (closed in close)
        self._lines: list[str] = []

    @classmethod
    def from_env(cls) -> MessageTrace | None:
        """The trace the environment asks for, or None."""
        path = os.environ.get(ENV)
        return cls(path) if path else None

    @staticmethod
    def begin() -> tuple[float, int, int]:
        """Read before a message is handled; pass to :meth:`end`."""
        cpu, wait = schedstat()
        return time.time(), cpu, wait

    def end(self, begun: tuple[float, int, int], kind: str) -> None:
        """Record the message begun at ``begun`` (its ``kind``: ``ADT^A04``)."""
        if self._file is None:
            return  # closed, or stopped by a failed write
        start, cpu0, wait0 = begun
        usage = usage_since(cpu0, wait0)
        self.append(f"{start:.6f},{time.time():.6f},{kind},{usage}")

    def append(self, line: str) -> None:
        """Buffer one line (without its newline); written every :attr:`FLUSH_LINES` lines and at close."""
        if self._file is None:
            return
        self._lines.append(line + "\n")
        if len(self._lines) >= self.FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines. A write that fails (a full disk) ends the trace with a warning: a
        diagnostic must never fail the messages it watches."""
        lines, self._lines = self._lines, []
        if self._file is None or not lines:
            return
        try:
            self._file.writelines(lines)
            self._file.flush()
        except (OSError, ValueError) as exc:
            log.warning("message trace %s: cannot write (%s); tracing stopped", self.path, exc)
            with contextlib.suppress(OSError, ValueError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
