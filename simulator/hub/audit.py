"""The hub's audit trail: an append-only, hash-chained log in SQLite.

Regional networks must be able to tell a patient who looked at their data, when, from where and why (and
break-glass access is only acceptable because it is audited). The log is tamper-evident rather than
tamper-proof: each record's hash covers its fields and the previous record's hash, so editing, deleting or
reordering a row breaks the chain and :meth:`AuditLog.verify` names the first affected ``seq``. Deleting the
*last* rows cannot be seen from the chain alone; callers that care keep :meth:`AuditLog.head` elsewhere
and pass it to ``verify``.

Durability as in :mod:`.index`: WAL, ``synchronous=FULL``, and an audited action is answered only after its
record is committed. A commit (fsync) costs about as much as a whole PIX query, so the hub commits in groups:
:meth:`AuditLog.append_many` chains many records in one transaction, and :class:`AuditBatcher` gathers the
records that concurrent asyncio tasks submit while the previous group is being committed into the next one.
Each caller still waits for *its* commit, so group commit changes the cost, not the guarantee. There is
deliberately no update or delete API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from json.encoder import encode_basestring as _string
from pathlib import Path
from typing import Any, Final

from simulator.hub.sqlstore import SQLiteStore

__all__ = [
    "ACCESS_ACTIONS",
    "GENESIS",
    "AccessRow",
    "AuditBatcher",
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "Problem",
]

GENESIS: Final = "0" * 64
# Actions that read a patient's data; access_report lists these (the patient's "who saw my data" view).
ACCESS_ACTIONS: Final = frozenset({"view", "fetch", "query", "timeline", "emergency-view"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor_facility TEXT NOT NULL,
    actor_user TEXT NOT NULL,
    action TEXT NOT NULL,
    patient TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_patient ON audit (patient, seq);
"""
_COLUMNS = (
    "seq, time, actor_facility, actor_user, action, patient, target, outcome, reason, details,"
    " prev_hash, hash"
)
_INSERT: Final = f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_HEAD: Final = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event to record: what :meth:`AuditLog.append_many` and :meth:`AuditBatcher.record` take.

    ``patient`` is the regional ID ("" when none); ``time`` is the hub's clock (stored to the second, with
    its offset when aware); ``details`` is stored as canonical JSON, so keep it small.
    """

    time: dt.datetime
    actor_facility: str
    actor_user: str
    action: str
    outcome: str
    patient: str = ""
    target: str = ""
    reason: str = ""
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event. ``patient`` is the regional ID ("" when none); ``details`` is canonical JSON."""

    seq: int
    time: str
    actor_facility: str
    actor_user: str
    action: str
    patient: str
    target: str
    outcome: str
    reason: str
    details: str
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return _hash(
            self.seq,
            self.time,
            self.actor_facility,
            self.actor_user,
            self.action,
            self.patient,
            self.target,
            self.outcome,
            self.reason,
            self.details,
            self.prev_hash,
        )


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    issue: str  # "hash-mismatch", "broken-link", "missing", "truncated"


@dataclass(frozen=True, slots=True)
class AccessRow:
    """One line of a patient's access report."""

    time: str
    facility: str
    user: str
    action: str
    target: str
    outcome: str
    reason: str


# Encoders made once: json.dumps with options builds a new encoder per call, which is most of its cost here.
_CANONICAL: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _canonical_details(details: Mapping[str, Any] | None) -> str:
    """Sorted, compact JSON. Flat str/int details (the usual kind) are written directly: the same text as
    the encoder's (json's own C string escaper), at a third of the cost; anything else goes to the encoder."""
    if not details:
        return "{}"
    parts = []
    for key in sorted(details):
        value = details[key]
        if type(key) is not str:
            break
        if type(value) is str:
            parts.append(f"{_string(key)}:{_string(value)}")
        elif type(value) is int:
            parts.append(f"{_string(key)}:{int.__repr__(value)}")
        else:
            break
    else:
        return "{" + ",".join(parts) + "}"
    return _CANONICAL.encode(details if isinstance(details, dict) else dict(details))


def _hash(*fields: object) -> str:
    """SHA-256 over a JSON array of the fields: unambiguous (no separator games) and stable.

    The array is written directly when every field is a str, an int or None (always, for records), with
    exactly the text ``json.dumps(fields, ensure_ascii=False, separators=(",", ":"))`` gives.
    """
    parts = []
    for value in fields:
        if type(value) is str:
            parts.append(_string(value))
        elif type(value) is int:
            parts.append(int.__repr__(value))
        elif value is None:
            parts.append("null")
        else:
            text = _COMPACT.encode(fields)
            break
    else:
        text = "[" + ",".join(parts) + "]"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog(SQLiteStore):
    """An append-only audit log on one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA)

    def append(
        self,
        *,
        time: dt.datetime,
        actor_facility: str,
        actor_user: str,
        action: str,
        outcome: str,
        patient: str = "",
        target: str = "",
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one event, chained to the last one, and commit it before returning."""
        entry = AuditEntry(
            time, actor_facility, actor_user, action, outcome, patient, target, reason, details
        )
        return self.append_many((entry,))[0]

    def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Append events in order in one transaction (one fsync), chained; committed before returning.

        All or nothing: if anything fails, no record of the group is written and the chain is unchanged.
        """
        if not entries:
            return []
        records = self._stage(entries)
        self._finish()
        return records

    def _stage(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """First half of :meth:`append_many`: lock, BEGIN, chain and INSERT; the caller must :meth:`_finish`.

        Split so that :class:`AuditBatcher` does this CPU work on the event loop and only the COMMIT (the
        fsync, which releases the GIL) on its thread. Until :meth:`_finish`, the store stays locked.
        """
        # Everything that does not depend on the chain's head is computed before taking the write lock.
        rows = [
            (
                e.time.isoformat(timespec="seconds"),
                e.actor_facility,
                e.actor_user,
                e.action,
                e.patient,
                e.target,
                e.outcome,
                e.reason,
                _canonical_details(e.details),
            )
            for e in entries
        ]
        self._lock.acquire()
        try:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                last = db.execute(_HEAD).fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                values = []
                for row in rows:
                    digest = _hash(seq, *row, prev)
                    values.append((seq, *row, prev, digest))
                    seq, prev = seq + 1, digest
                db.executemany(_INSERT, values)
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException:
            self._lock.release()
            raise
        return [AuditRecord(*v) for v in values]

    def _finish(self) -> None:
        """Second half: COMMIT (rolled back if that fails) and unlock; from any thread."""
        try:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        finally:
            self._lock.release()

    def records(self, patient: str | None = None, since: dt.datetime | None = None) -> list[AuditRecord]:
        """Records in order, optionally for one patient and at or after ``since``."""
        sql = f"SELECT {_COLUMNS} FROM audit WHERE 1=1"
        args: list[object] = []
        if patient is not None:
            sql += " AND patient = ?"
            args.append(patient)
        if since is not None:
            sql += " AND time >= ?"
            args.append(since.isoformat(timespec="seconds"))
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [AuditRecord(*row) for row in rows]

    def head(self) -> tuple[int, str]:
        """The last ``(seq, hash)``, to keep outside the database as an anchor against truncation."""
        with self._lock:
            row = self._db.execute(_HEAD).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def verify(self, expected_head: tuple[int, str] | None = None) -> list[Problem]:
        """Recompute the chain; every problem found, by seq (empty list: the log is intact)."""
        problems: list[Problem] = []
        prev_hash, expected_seq = GENESIS, 1
        for rec in self.records():
            if rec.seq != expected_seq:
                problems.extend(Problem(s, "missing") for s in range(expected_seq, rec.seq))
            if rec.prev_hash != prev_hash:
                problems.append(Problem(rec.seq, "broken-link"))
            if rec.expected_hash() != rec.hash:
                problems.append(Problem(rec.seq, "hash-mismatch"))
            prev_hash, expected_seq = rec.hash, rec.seq + 1
        if expected_head is not None and expected_head != (expected_seq - 1, prev_hash):
            problems.append(Problem(expected_head[0], "truncated"))
        return problems

    def access_report(self, patient: str) -> list[AccessRow]:
        """Who read this patient's data (viewed, fetched, queried), when, from where and why, in order."""
        return [
            AccessRow(r.time, r.actor_facility, r.actor_user, r.action, r.target, r.outcome, r.reason)
            for r in self.records(patient=patient)
            if r.action in ACCESS_ACTIONS
        ]


class AuditBatcher:
    """Group commit for one :class:`AuditLog` on one asyncio event loop.

    :meth:`record` queues an entry and returns its :class:`AuditRecord` once the transaction holding it has
    committed, so "answer only what is audited" holds for each caller. One writer task takes everything
    queued, in call order, as one group: one transaction, one fsync. An idle hub commits at once; under
    load a group also waits (at most :attr:`GROUP_WAIT`) for as many callers as came together lately.

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
                batch, self._queue = self._queue, []
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
