"""The hub's audit trail: an append-only, keyed hash chain in SQLite, anchored by signed checkpoints kept
outside the database.

Regional networks must be able to tell a patient who looked at their data, when, from where and why (and
break-glass access is only acceptable because it is audited). The log is tamper-evident rather than
tamper-proof, against someone who holds the database file but not the key (threat model:
``docs/security.md``):

* **Keyed chain.** Each record's ``hash`` is HMAC-SHA256, under a secret the database does not hold, of its
  fields and the previous record's hash. Editing, deleting or reordering a row breaks the chain, and so does
  recomputing every later hash: without the key nobody can compute a valid one. The key comes from
  ``RHIN_AUDIT_KEY`` (hex) or a key file (``audit.key``, mode 0600, created on first start; see
  :func:`load_key`). Two keys are derived from it, one for records and one for checkpoints, so a record
  hash can never pass for a checkpoint signature or the other way round; one secret is one thing to guard.
* **Checkpoints.** The chain alone cannot show that its *last* rows were deleted. Every
  :attr:`AuditSettings.every` records (and when the log is closed) the hub appends one line to a checkpoint
  file outside the database (default ``audit.checkpoints`` beside it; in production on another host or an
  append-only mount): ``{n, seq, hash, count, time, every, key_id, prev, mac}``, HMAC-signed and chained by
  ``prev`` (the previous line's ``mac``), written with ``O_APPEND`` and fsync'd. The database remembers how
  many checkpoints were written (``audit_meta``), so lines cut from the file's end show too.
* **Verification** (:func:`~.auditchain.verify_chain`, the one code behind :meth:`AuditLog.verify`,
  ``/audit/verify`` and ``rhin audit verify``) reports an edited row (``hash-mismatch``), a deleted one
  (``missing`` and ``broken-link``), deleted last rows (``truncated``: a checkpoint names a record the log
  no longer has), a chain rewritten under another key (``hash-mismatch`` from the first rewritten row;
  ``checkpoint-mismatch`` too if a checkpoint covers it), a forged, edited or deleted checkpoint line
  (``checkpoint-forged``, ``checkpoint-missing``, ``checkpoint-broken-link``) and a log that has gone too
  long without one (``checkpoint-overdue``). What stays undetectable: deleting records written after the
  last checkpoint (fewer than ``2 × every``: a group of at most ``every`` records may end past the boundary)
  while the hub was killed or is still running; cutting the database and the checkpoint file back together
  to an earlier consistent state (both stores colluding, or one owner of both); anything done with the key.

Durability as in :mod:`.index`: WAL, ``synchronous=FULL``, and an audited action is answered only after its
record is committed. A commit (fsync) costs about as much as a whole PIX query, so the hub commits in groups:
:meth:`AuditLog.append_many` chains many records in one transaction, and
:class:`~.auditbatch.AuditBatcher` gathers the records that concurrent asyncio tasks submit while the
previous group is being committed into the next one.
Each caller still waits for *its* commit, so group commit changes the cost, not the guarantee. There is
deliberately no update or delete API.

Existing data folders: a log written before the chain was keyed (no ``audit_meta``) is refused with a
message saying what to do (keep it as evidence, start on a new data folder); re-signing old records with a
new key would vouch for rows nobody can vouch for any more.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from simulator.hub.sqlstore import SQLiteStore

from .auditchain import (
    CHAIN,
    CHECKPOINT_FILE,
    DEFAULT_CHECKPOINT_EVERY,
    GENESIS,
    KEY_ENV,
    KEY_FILE,
    AuditKey,
    AuditKeyError,
    AuditRecord,
    AuditSettings,
    ChainProblem,
    Checkpoint,
    Verification,
    canonical_details,
    key_from_file,
    load_key,
    read_checkpoints,
    record_hmac,
    record_mac,
    verify_chain,
)

__all__ = [
    "ACCESS_ACTIONS",
    "CHECKPOINT_FILE",
    "DEFAULT_CHECKPOINT_EVERY",
    "GENESIS",
    "KEY_ENV",
    "KEY_FILE",
    "AccessRow",
    "AuditEntry",
    "AuditKey",
    "AuditKeyError",
    "AuditLog",
    "AuditRecord",
    "AuditSettings",
    "ChainProblem",
    "Checkpoint",
    "Verification",
    "load_key",
    "verify_chain",
    "verify_data",
]

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
CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = (
    "seq, time, actor_facility, actor_user, action, patient, target, outcome, reason, details,"
    " prev_hash, hash"
)
_INSERT: Final = f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_HEAD: Final = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event to record: what :meth:`AuditLog.append_many` and :meth:`.auditbatch.AuditBatcher.record` take.

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
class AccessRow:
    """One line of a patient's access report."""

    time: str
    facility: str
    user: str
    action: str
    target: str
    outcome: str
    reason: str


def _meta(db: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in db.execute("SELECT name, value FROM audit_meta")}


class AuditLog(SQLiteStore):
    """An append-only, keyed audit log on one SQLite file, with its checkpoint file (:class:`AuditSettings`).

    Opening a new log creates its key file (unless the key comes from elsewhere) and records the key's ID;
    opening an existing one with another key, or one written before keying, raises :class:`AuditKeyError`.
    Only an instance that appended writes checkpoints (so a second, reading instance never does).
    """

    def __init__(self, path: Path | str, settings: AuditSettings | None = None) -> None:
        super().__init__(path, _SCHEMA)
        self.settings = settings or AuditSettings()
        self.every = self.settings.every
        self.checkpoint_file = self.settings.checkpoint_path(self.path.parent)
        try:
            self.key = self._open_key()
        except BaseException:
            self._db.close()
            raise
        self._appended = False
        self._staged_head: tuple[int, str] = (0, GENESIS)
        self._every_noted = False
        self._last_cp: Checkpoint | None = None
        self._last_cp_read = False

    def _open_key(self) -> AuditKey:
        meta = _meta(self._db)
        has_rows = self._db.execute("SELECT 1 FROM audit LIMIT 1").fetchone() is not None
        if "chain" not in meta and has_rows:
            raise AuditKeyError(
                f"{self.path} holds an audit log written before the chain was keyed (rhin before issue 11):"
                " it cannot be continued with a keyed chain. Keep it as evidence (check it with an older"
                " rhin's /audit/verify) and start the hub on a new data folder"
            )
        key = self.settings.resolve_key(self.path.parent, create="chain" not in meta)
        if "chain" not in meta:
            with self._tx() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO audit_meta (name, value) VALUES (?, ?)",
                    [("chain", CHAIN), ("key_id", key.key_id), ("checkpoints", "0")],
                )
        elif meta["chain"] != CHAIN:
            raise AuditKeyError(f"{self.path}: unknown audit chain {meta['chain']!r} (a newer rhin?)")
        elif meta.get("key_id") != key.key_id:
            raise AuditKeyError(
                f"{self.path} was written with audit key {meta.get('key_id')}; the key from {key.source} is"
                f" {key.key_id}: give the log's own key"
            )
        return key

    # ------------------------------------------------------------------------------------- writing

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

        Split so that :class:`~.auditbatch.AuditBatcher` does this CPU work on the event loop and only the
        COMMIT (the fsync, which releases the GIL) on its thread. Until :meth:`_finish`, the store stays
        locked.
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
                canonical_details(e.details),
            )
            for e in entries
        ]
        keyed = record_hmac(self.key)
        self._lock.acquire()
        try:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                last = db.execute(_HEAD).fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                values = []
                for row in rows:
                    digest = record_mac(keyed, seq, *row, prev)
                    values.append((seq, *row, prev, digest))
                    seq, prev = seq + 1, digest
                db.executemany(_INSERT, values)
                if not self._every_noted:  # the interval this writer keeps, for verifiers without one
                    db.execute(
                        "INSERT OR REPLACE INTO audit_meta (name, value) VALUES ('every', ?)",
                        (str(self.every),),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException:
            self._lock.release()
            raise
        self._staged_head = (values[-1][0], values[-1][-1])
        return [AuditRecord(*v) for v in values]

    def _finish(self) -> None:
        """Second half: COMMIT (rolled back if that fails), a checkpoint if one is due, unlock; any thread."""
        try:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._appended = self._every_noted = True
            seq, digest = self._staged_head
            if seq - self._last_checkpoint_seq() >= self.every:
                try:
                    self._checkpoint(seq, digest)
                except (OSError, sqlite3.Error) as exc:
                    # The records are committed: their callers must hear so. The next commit tries again,
                    # and verification reports the gap (checkpoint-overdue) if it lasts.
                    log.error("audit checkpoint at seq %d not written: %s", seq, exc)
        finally:
            self._lock.release()

    def _last_checkpoint_seq(self) -> int:
        if not self._last_cp_read:
            lines = read_checkpoints(self.checkpoint_file) or []
            found = None
            for text in reversed(lines):
                if text.strip():
                    try:
                        found = Checkpoint.parse(text)
                    except (ValueError, TypeError):
                        found = None
                    break
            self._last_cp, self._last_cp_read = found, True
        return self._last_cp.seq if self._last_cp is not None else 0

    def _checkpoint(self, seq: int, digest: str) -> Checkpoint:
        """Append a signed checkpoint for head ``(seq, digest)`` to the file (fsync'd), then count it in the
        database. Called with the lock held and no transaction open."""
        self._last_checkpoint_seq()
        last = self._last_cp
        # count == seq while the log is intact (seq starts at 1, no gaps); the checkpoint states it anyway so
        # a verifier need not trust that.
        unsigned = Checkpoint(
            n=(last.n + 1) if last else 1,
            seq=seq,
            hash=digest,
            count=seq,
            time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            every=self.every,
            key_id=self.key.key_id,
            prev=last.mac if last else GENESIS,
            mac="",
        )
        cp = Checkpoint(**{**unsigned.body(), "mac": unsigned.expected_mac(self.key)})
        path = self.checkpoint_file
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, cp.line().encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:  # the file's name must survive a crash too
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._db.execute("UPDATE audit_meta SET value = ? WHERE name = 'checkpoints'", (str(cp.n),))
        self._last_cp = cp
        return cp

    def checkpoint(self) -> Checkpoint | None:
        """Write a checkpoint at the current head now, unless the last one is there already (None then)."""
        with self._lock:
            row = self._db.execute(_HEAD).fetchone()
            if row is None or row[0] <= self._last_checkpoint_seq():
                return None
            return self._checkpoint(int(row[0]), str(row[1]))

    def close(self) -> None:
        """A final checkpoint (if this instance appended since the last one), then close."""
        if self._appended:
            try:
                self.checkpoint()
            finally:
                super().close()
        else:
            super().close()

    def consistent_with_checkpoints(self) -> str | None:
        """A quick check before serving (the last checkpoint only): None if the log still holds the record
        it signed, else what is wrong. Full verification is :meth:`verification`'s job."""
        lines = [t for t in (read_checkpoints(self.checkpoint_file) or []) if t.strip()]
        written = int(_meta(self._db).get("checkpoints", "0"))
        if len(lines) < written:
            return (
                f"the audit log says {written} checkpoints were written, {self.checkpoint_file} holds"
                f" {len(lines)}"
            )
        if not lines:
            return None
        try:
            cp = Checkpoint.parse(lines[-1])
        except (ValueError, TypeError) as exc:
            return f"the last line of {self.checkpoint_file} is not a checkpoint: {exc}"
        if cp.key_id != self.key.key_id or not hmac.compare_digest(cp.mac, cp.expected_mac(self.key)):
            return f"the last checkpoint in {self.checkpoint_file} is not signed with this log's key"
        with self._lock:
            row = self._db.execute("SELECT hash FROM audit WHERE seq = ?", (cp.seq,)).fetchone()
        if row is None:
            return f"checkpoint {cp.n} covers records up to {cp.seq}; the log ends before (truncated)"
        if row[0] != cp.hash:
            return f"record {cp.seq} is not the one checkpoint {cp.n} signed (rewritten)"
        return None

    # ------------------------------------------------------------------------------------- reading

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
        """The last ``(seq, hash)``."""
        with self._lock:
            row = self._db.execute(_HEAD).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def verification(
        self, expected_head: tuple[int, str] | None = None, *, anchor: bool = False
    ) -> Verification:
        """The chain and the checkpoint file, checked (:func:`verify_chain`).

        ``anchor`` (what ``/audit/verify`` asks): when the log verified intact and its verified head is past
        the last checkpoint, write a checkpoint there, so what the operator saw intact stays pinned (it
        shrinks the window in which the last records could go unnoticed); it is then in the answer's
        checkpoints. Never after a failed verification: a checkpoint must not bless a tampered log.
        """
        with self._lock:
            written = int(_meta(self._db).get("checkpoints", "0"))
            lines = read_checkpoints(self.checkpoint_file)
        found = verify_chain(
            self.records(), self.key, lines, written=written, every=self.every, expected_head=expected_head
        )
        found.checkpoint_file = str(self.checkpoint_file)
        if anchor and found.ok and found.head[0] > 0:
            with self._lock:
                if found.head[0] > self._last_checkpoint_seq():
                    written_now = self._checkpoint(*found.head)
                    if written_now is not None:
                        found.checkpoints.append(written_now)
        return found

    def verify(self, expected_head: tuple[int, str] | None = None) -> list[ChainProblem]:
        """Every problem :meth:`verification` finds (empty list: the log is intact)."""
        return self.verification(expected_head).problems

    def access_report(self, patient: str) -> list[AccessRow]:
        """Who read this patient's data (viewed, fetched, queried), when, from where and why, in order."""
        return [
            AccessRow(r.time, r.actor_facility, r.actor_user, r.action, r.target, r.outcome, r.reason)
            for r in self.records(patient=patient)
            if r.action in ACCESS_ACTIONS
        ]


def verify_data(
    audit_db: Path,
    *,
    key_file: Path | None = None,
    checkpoints: Path | None = None,
    every: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Verification:
    """Offline verification (``rhin audit verify``) of the log in ``audit_db``, read-only: nothing is
    created or written. The key as :class:`AuditSettings` finds it (``key_file`` given, else the
    environment, else ``audit.key`` beside the database); checkpoints beside it unless given; ``every``: the
    interval to expect before the first checkpoint (default: what the hub noted in the database).
    Raises :class:`AuditKeyError` (no key, an unkeyed log, the wrong key) or ``OSError``/``sqlite3.Error``.
    """
    if not audit_db.is_file():
        raise FileNotFoundError(f"no audit log at {audit_db}")
    key = (
        key_from_file(key_file, create=False)
        if key_file is not None
        else load_key(audit_db.parent / KEY_FILE, create=False, env=env)
    )
    db = sqlite3.connect(f"file:{audit_db}?mode=ro", uri=True)
    try:
        try:
            meta = _meta(db)
        except sqlite3.OperationalError:
            meta = {}
        if meta.get("chain") != CHAIN:
            raise AuditKeyError(
                f"{audit_db} is not a keyed audit log (written before issue 11, or not rhin's)"
            )
        if meta.get("key_id") != key.key_id:
            raise AuditKeyError(
                f"{audit_db} was written with audit key {meta.get('key_id')}; the key from {key.source} is"
                f" {key.key_id}"
            )
        rows = db.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")
        path = checkpoints if checkpoints is not None else audit_db.parent / CHECKPOINT_FILE
        found = verify_chain(
            (AuditRecord(*row) for row in rows),
            key,
            read_checkpoints(path),
            written=int(meta.get("checkpoints", "0")),
            every=every or int(meta.get("every", DEFAULT_CHECKPOINT_EVERY)),
        )
    finally:
        db.close()
    found.checkpoint_file = str(path)
    return found
