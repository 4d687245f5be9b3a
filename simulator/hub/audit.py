"""The hub's audit trail: an append-only, hash-chained log in SQLite.

Regional networks must be able to tell a patient who looked at their data, when, from where and why (and
break-glass access is only acceptable because it is audited). The log is tamper-evident rather than
tamper-proof: each record's hash covers its fields and the previous record's hash, so editing, deleting or
reordering a row breaks the chain and :meth:`AuditLog.verify` names the first affected ``seq``. Deleting the
*last* rows cannot be seen from the chain alone; callers that care keep :meth:`AuditLog.head` elsewhere
and pass it to ``verify``.

Durability as in :mod:`.index`: WAL, ``synchronous=FULL``, one committed transaction per append. There is
deliberately no update or delete API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from simulator.hub.sqlstore import SQLiteStore

__all__ = ["ACCESS_ACTIONS", "GENESIS", "AccessRow", "AuditLog", "AuditRecord", "Problem"]

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


def _canonical_details(details: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(details or {}), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _hash(*fields: object) -> str:
    """SHA-256 over a JSON array of the fields: unambiguous (no separator games) and stable."""
    text = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"))
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
        stamp = time.isoformat(timespec="seconds")
        body = _canonical_details(details)
        with self._tx() as db:
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            fields = (seq, stamp, actor_facility, actor_user, action, patient, target, outcome, reason, body)
            record = AuditRecord(*fields, prev, _hash(*fields, prev))
            db.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*fields, prev, record.hash),
            )
        return record

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
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
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
