"""Group commit of audit records for the hub's asyncio servers (:class:`AuditBatcher`).

The store and its chain are :mod:`.audit`; this module is only how concurrent callers share one commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .audit import AuditEntry, AuditLog
from .auditchain import AuditRecord

__all__ = ["AuditBatcher"]


class AuditBatcher:
    """Group commit for one :class:`AuditLog` on one asyncio event loop.

    :meth:`record` queues an entry and returns its :class:`AuditRecord` once the transaction holding it has
    committed, so "answer only what is audited" holds for each caller. One writer task takes everything
    queued, in call order, as one group (at most :attr:`AuditLog.every` records, so a checkpoint is never
    more than twice that behind): one transaction, one fsync. An idle hub commits at once; under load a
    group also waits (at most :attr:`GROUP_WAIT`) for as many callers as came together lately.

    Where the COMMIT (the fsync) runs is measured, not fixed. The group is always chained and inserted on
    the loop (quick CPU work), and a quick COMMIT runs there too: a thread hand-off costs more than it saves
    (two wake-ups and GIL hand-offs per group). When the disk is busy an fsync takes milliseconds and would
    stall every connection, so after a COMMIT slower than :attr:`INLINE_COMMIT_LIMIT` the next ones run on a
    dedicated thread (sqlite3 releases the GIL while it waits) until one is quick again: the loop is never
    blocked by more than one slow COMMIT in a row. Measured on the 2-core VM with 8 PIX clients
    (benchmarks/bench_pix.py): quiet disk, 164 µs of hub CPU per audited query against 240 with every
    COMMIT on the thread and 238 without the group wait (groups of 8.0 against 2-4); busy disk (other jobs
    writing), 2-4x the throughput of always committing on the loop.

    A failed commit fails every caller of its group with that exception (none of its records is written).
    While a group is staged or committing the log is locked, so other users of the same :class:`AuditLog`
    (e.g. a route reading the access report) wait for it. Use the batcher from the loop it first ran on;
    other threads use :meth:`AuditLog.append`. :meth:`close` commits what is queued and stops the writer;
    the log itself stays open (its owner closes it).
    """

    INLINE_COMMIT_LIMIT: float = 0.001
    """A COMMIT quicker than this runs on the loop (cheaper than a thread hand-off); a slower one sends the
    next COMMITs to the thread until one is quick again, so a busy disk never stalls the loop for long."""

    GROUP_WAIT: float = 0.001
    """How long a group may wait for the callers that recently came together (see :meth:`_gather`)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._queue: list[tuple[AuditEntry, asyncio.Future[AuditRecord]]] = []
        self._wakeup = asyncio.Event()
        self._full: asyncio.Future[None] | None = None
        self._expected = 1  # the largest group of the last second (see _gather)
        self._expected_since = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._closed = False
        self._slow = False  # the last COMMIT took longer than INLINE_COMMIT_LIMIT
        self.commits = 0  # transactions committed (for tests and benchmarks)

    async def record(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry``; returns once it is committed. Raises what the commit raised."""
        return await self._submit(entry)

    async def record_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Several entries, consecutive and in one transaction (e.g. a PDQ answer's records)."""
        futures = [self._submit(e) for e in entries]
        return [await f for f in futures]

    def _submit(self, entry: AuditEntry) -> asyncio.Future[AuditRecord]:
        if self._closed:
            raise RuntimeError("the audit batcher is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="audit-commit")  # used when slow
            self._writer = loop.create_task(self._write(), name="audit-writer")
        elif loop is not self._loop:
            raise RuntimeError("the audit batcher belongs to another event loop")
        future: asyncio.Future[AuditRecord] = loop.create_future()
        self._queue.append((entry, future))
        if len(self._queue) == 1:
            self._wakeup.set()
        full = self._full
        if full is not None and len(self._queue) >= self._expected and not full.done():
            full.set_result(None)
        return future

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait up to :attr:`GROUP_WAIT` for as many records as the largest group of the last second.

        Callers that came together (e.g. 8 PIX clients) tend to come back together, but their next records
        arrive spread over a millisecond; committing at the first one would split them into several
        commits, one fsync each. Waiting for the expected number, never longer than GROUP_WAIT, keeps them
        in one. A lone caller (groups of one) never waits.

        A wait that runs out short of the expected number lowers it to what came: the callers are not
        coming together any more. (It used to stay up for a second after any two records met, so a lone
        client sending one request after another — an ITI-8 feed burst, one viewer — waited the whole
        GROUP_WAIT on every record: 0.25 → 1.3 ms each. Found by the SimPy model's validation.)
        """
        if self._expected <= 1 or len(self._queue) >= self._expected or self._closed:
            return
        self._full = full = loop.create_future()

        def enough() -> None:
            if not full.done():
                full.set_result(None)

        timer = loop.call_later(self.GROUP_WAIT, enough)
        try:
            await full
        finally:
            timer.cancel()
            self._full = None
        if len(self._queue) < self._expected:
            self._expected, self._expected_since = max(1, len(self._queue)), loop.time()

    def _grouped(self, size: int, now: float) -> None:
        """Remember the largest group size of about the last second (it decays to the current size)."""
        if size >= self._expected or now - self._expected_since > 1.0:
            self._expected, self._expected_since = size, now

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[AuditEntry, asyncio.Future[AuditRecord]]] = []
        try:
            while True:
                if not self._queue:
                    if self._closed:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await self._gather(loop)
                # At most `every` records a group, so a checkpoint is never more than 2 × every behind
                # (what verification's checkpoint-overdue relies on).
                cap = self.log.every
                batch, self._queue = self._queue[:cap], self._queue[cap:]
                self._grouped(len(batch), loop.time())
                try:
                    records = self.log._stage([entry for entry, _ in batch])
                    if self._slow:
                        # Shielded: once staged, the COMMIT must run (it also unlocks the store) even if
                        # this task is cancelled meanwhile; its callers are then told it is unconfirmed.
                        took = await asyncio.shield(loop.run_in_executor(self._thread, self._commit))
                    else:
                        took = self._commit()
                    self._slow = took > self.INLINE_COMMIT_LIMIT
                except Exception as exc:  # handed to every caller of the group
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    self.commits += 1
                    for (_, future), rec in zip(batch, records, strict=True):
                        if not future.done():
                            future.set_result(rec)
                batch = []
                await asyncio.sleep(0)  # let the callers run before the next group is taken
        finally:
            # Cancelled (loop shutting down): nobody may believe an unconfirmed record was committed.
            stopped = RuntimeError("the audit writer stopped before confirming this record")
            for _, future in [*batch, *self._queue]:
                if not future.done():
                    future.set_exception(stopped)
            self._queue = []

    def _commit(self) -> float:
        """COMMIT the staged group; returns how long it took (seconds)."""
        started = time.perf_counter()
        self.log._finish()
        return time.perf_counter() - started

    async def close(self) -> None:
        """Commit everything queued, then stop; :meth:`record` raises from now on."""
        self._closed = True
        self._wakeup.set()
        if self._full is not None and not self._full.done():
            self._full.set_result(None)  # no point waiting for company now
        if self._writer is not None:
            await self._writer
        if self._thread is not None:
            self._thread.shutdown(wait=True)
