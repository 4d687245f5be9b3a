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

__all__ = ["ENV", "MessageTrace", "message_kind", "schedstat"]

ENV = "RHIN_HUB_MESSAGE_TRACE"
"""The environment variable naming the trace file (unset: no trace)."""

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


_KIND_PART = 16
"""At most this many characters of MSH-9.1 and .2 each (real codes have 3)."""


def message_kind(payload: bytes) -> str:
    """MSH-9's type and event (``ADT^A04``) read straight from the block's bytes; ``?`` if unreadable.

    The trace must not decode the message a second time, nor fail on one the handler refuses — and the
    bytes are the sender's: anything but printable ASCII (a newline that would start a line of its own, a
    comma that would shift the columns, a byte the ASCII file cannot take) becomes ``?``, and each part is
    cut at :data:`_KIND_PART` characters.
    """
    if not payload.startswith(b"MSH") or len(payload) < 8:
        return "?"
    segment = payload.split(b"\r", 1)[0]
    fields = segment.split(payload[3:4])
    if len(fields) < 9:
        return "?"
    parts = fields[8].split(payload[4:5])[:2]
    kind = "^".join(
        "".join(chr(b) if 0x21 <= b < 0x7F and b != 0x2C else "?" for b in part[:_KIND_PART])
        for part in parts
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
        cpu, wait = schedstat()
        start, cpu0, wait0 = begun
        if cpu < 0 or cpu0 < 0:
            cpu_ns = wait_ns = -1
        else:
            cpu_ns, wait_ns = cpu - cpu0, wait - wait0
        self._lines.append(f"{start:.6f},{time.time():.6f},{kind},{cpu_ns},{wait_ns}\n")
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
