"""The hub's consent documents, emergency grants and facility links, in SQLite, giving ``PatientState``.

The store keeps the paper trail (同意書, 連携先追加の同意書, 同意撤回届) as documents in arrival order and
derives the access state from it; the access decision itself stays in :func:`.policy.may_view` and
:meth:`synthetic.consent.ConsentState.covers`, so nothing here re-implements coverage.

Decisions where practice leaves room (each refusal raises a :class:`ConsentError` subclass):

* **A new form supersedes** the patient's current one (re-enrolment, a changed pattern or list). From its
  signing date on it alone counts; earlier dates still see the form that was current then. Its signing
  date must not be before the current form's (no back-dated replacements), and must be *after* the latest
  withdrawal (:class:`DatedBeforeWithdrawalError`): a consent after a withdrawal is a new paper signed after
  it, and one dated on or before would bring back access the withdrawal ended.
* **Additions only to ``per_facility`` forms.** ``covers`` ignores additions for the other patterns, so an
  addition would be silently ineffective: an ``allow_list`` patient signs a new form instead.
  An addition must be dated on or after its form, the form must not be withdrawn, and the facility must not
  already be covered.
* **Withdrawal** needs a known patient with a form that is not already withdrawn, dated on or after the
  form's signing; it is effective from its date (and ends emergency access too, per ``may_view``).
* **Emergency grants** need a non-empty reason, ``start < end``, and a form allowing emergency use that is
  signed and not withdrawn at ``start``; otherwise :class:`EmergencyNotAllowedError`. Each grant records the
  form it was given under (``form_id``): :func:`.policy.may_view` honours it only while that form is the
  one in force and not withdrawn.
* **Links** (regional patient ↔ facility that linked its local ID) are independent of consent: linking is
  the PIX side; ``may_view`` requires both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simulator.hub.sqlstore import SQLiteStore
from synthetic.consent import ConsentState
from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal

from .policy import EmergencyGrant, PatientState

__all__ = [
    "AlreadyWithdrawnError",
    "ConsentError",
    "ConsentStore",
    "DatedBeforeWithdrawalError",
    "Document",
    "DuplicateDocumentError",
    "EmergencyNotAllowedError",
    "InvalidDocumentError",
    "NoConsentError",
    "NotPerFacilityError",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    patient TEXT NOT NULL,
    kind TEXT NOT NULL,
    doc_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_patient ON documents (patient, seq);
CREATE TABLE IF NOT EXISTS grants (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    patient TEXT NOT NULL,
    viewer_facility TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT NOT NULL,
    form_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS grants_patient ON grants (patient);
CREATE TABLE IF NOT EXISTS links (
    patient TEXT NOT NULL,
    facility TEXT NOT NULL,
    PRIMARY KEY (patient, facility)
);
"""

DocKind = Literal["form", "addition", "withdrawal"]
AnyDocument = ConsentForm | ConsentAddition | ConsentWithdrawal


class ConsentError(Exception):
    """Root of the store's refusals."""


class NoConsentError(ConsentError):
    """No consent form is registered for this patient."""


class DuplicateDocumentError(ConsentError):
    """A document with this ID is already registered."""


class InvalidDocumentError(ConsentError):
    """The document contradicts what is registered (dates, base form, already covered...)."""


class DatedBeforeWithdrawalError(InvalidDocumentError):
    """A new form dated on or before the patient's latest withdrawal (it would undo the withdrawal)."""


class NotPerFacilityError(ConsentError):
    """連携先追加 is only meaningful on a per_facility form; other patterns need a new form."""


class AlreadyWithdrawnError(ConsentError):
    """The current form is already withdrawn."""


class EmergencyNotAllowedError(ConsentError):
    """The patient's consent does not allow emergency viewing at that time (or the request is malformed)."""


@dataclass(frozen=True, slots=True)
class Document:
    seq: int
    kind: DocKind
    document: AnyDocument


def _encode(doc: AnyDocument) -> str:
    return json.dumps(dataclasses.asdict(doc), ensure_ascii=False, sort_keys=True, default=dt.date.isoformat)


def _decode(kind: str, body: str) -> AnyDocument:
    data = json.loads(body)
    if kind == "form":
        data["signed_on"] = dt.date.fromisoformat(data["signed_on"])
        data["facilities"] = tuple(data["facilities"])
        return ConsentForm(**data)
    if kind == "addition":
        data["signed_on"] = dt.date.fromisoformat(data["signed_on"])
        return ConsentAddition(**data)
    data["withdrawn_on"] = dt.date.fromisoformat(data["withdrawn_on"])
    return ConsentWithdrawal(**data)


class ConsentStore(SQLiteStore):
    """Consent documents, grants and links on one SQLite file; each operation is one transaction."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(grants)")}
        if "form_id" not in columns:  # a store from before grants were bound to their form
            self._db.execute("ALTER TABLE grants ADD COLUMN form_id TEXT NOT NULL DEFAULT ''")

    # -------------------------------------------------------------------------------------- reading

    @staticmethod
    def _documents(db: sqlite3.Connection, patient: str) -> list[Document]:
        rows = db.execute(
            "SELECT seq, kind, body FROM documents WHERE patient=? ORDER BY seq", (patient,)
        ).fetchall()
        return [Document(seq, kind, _decode(kind, body)) for seq, kind, body in rows]

    @staticmethod
    def _consent(docs: list[Document], on: dt.date | None) -> ConsentState | None:
        """The consent in force: the last form signed by ``on`` (or the last form at all), with its papers."""
        forms = [d.document for d in docs if isinstance(d.document, ConsentForm)]
        if not forms:
            return None
        form = forms[-1]
        if on is not None:
            # The form current on ``on``; before any is signed, the first (may_view: not-yet-signed).
            form = next((f for f in reversed(forms) if f.signed_on <= on), forms[0])
        additions = tuple(
            d.document
            for d in docs
            if isinstance(d.document, ConsentAddition) and d.document.base_form_id == form.form_id
        )
        withdrawal = next(
            (
                d.document
                for d in docs
                if isinstance(d.document, ConsentWithdrawal) and d.document.base_form_id == form.form_id
            ),
            None,
        )
        return ConsentState(form, additions, withdrawal)

    def history(self, patient: str) -> list[Document]:
        """Every consent document of the patient, in the order registered."""
        with self._lock:
            return self._documents(self._db, patient)

    def consent(self, patient: str, on: dt.date | None = None) -> ConsentState | None:
        """The patient's consent (current, or the one in force on ``on``); None if no form."""
        return self._consent(self.history(patient), on)

    def state(self, patient: str, on: dt.date | None = None) -> PatientState:
        """What :func:`.policy.may_view` needs: consent (as on ``on``, default current), links and grants."""
        with self._lock:
            docs = self._documents(self._db, patient)
            linked = frozenset(
                r[0] for r in self._db.execute("SELECT facility FROM links WHERE patient=?", (patient,))
            )
            grants = tuple(
                EmergencyGrant(
                    f, u, reason, dt.datetime.fromisoformat(s), dt.datetime.fromisoformat(e), form_id
                )
                for f, u, reason, s, e, form_id in self._db.execute(
                    "SELECT viewer_facility, user_id, reason, start, end, form_id FROM grants"
                    " WHERE patient=? ORDER BY seq",
                    (patient,),
                )
            )
        return PatientState(self._consent(docs, on), linked, grants)

    # -------------------------------------------------------------------------------------- writing

    def _insert(self, db: sqlite3.Connection, patient: str, kind: DocKind, doc: AnyDocument) -> None:
        if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (doc.form_id,)).fetchone():
            raise DuplicateDocumentError(doc.form_id)
        db.execute(
            "INSERT INTO documents (patient, kind, doc_id, body) VALUES (?,?,?,?)",
            (patient, kind, doc.form_id, _encode(doc)),
        )

    def _current(self, db: sqlite3.Connection, patient: str) -> ConsentState:
        current = self._consent(self._documents(db, patient), None)
        if current is None:
            raise NoConsentError(patient)
        return current

    def register(self, patient: str, form: ConsentForm) -> ConsentState:
        """Register a consent form; it supersedes any current form from its signing date on."""
        if form.pattern == "all" and form.facilities:
            raise InvalidDocumentError(f"{form.form_id}: pattern 'all' takes no facility list")
        if form.pattern in ("allow_list", "per_facility") and not form.facilities:
            raise InvalidDocumentError(
                f"{form.form_id}: pattern {form.pattern!r} needs at least one facility"
            )
        with self._tx() as db:
            docs = self._documents(db, patient)
            current = self._consent(docs, None)
            if current is not None and form.signed_on < current.form.signed_on:
                raise InvalidDocumentError(
                    f"{form.form_id}: signed {form.signed_on}, before the current form {current.form.form_id}"
                )
            latest = max(
                (d.document.withdrawn_on for d in docs if isinstance(d.document, ConsentWithdrawal)),
                default=None,
            )
            if latest is not None and form.signed_on <= latest:
                raise DatedBeforeWithdrawalError(
                    f"{form.form_id}: signed {form.signed_on}, on or before the withdrawal of {latest}"
                )
            self._insert(db, patient, "form", form)
        return ConsentState(form)

    def add_facility(self, patient: str, addition: ConsentAddition) -> ConsentState:
        """連携先追加の同意書: one more facility on a per_facility form."""
        with self._tx() as db:
            current = self._current(db, patient)
            form = current.form
            if addition.base_form_id != form.form_id:
                raise InvalidDocumentError(f"{addition.form_id}: base {addition.base_form_id} is not current")
            if form.pattern != "per_facility":
                raise NotPerFacilityError(f"{form.form_id} is {form.pattern!r}; register a new form instead")
            if current.withdrawal is not None:
                raise AlreadyWithdrawnError(
                    f"{form.form_id} was withdrawn on {current.withdrawal.withdrawn_on}"
                )
            if addition.signed_on < form.signed_on:
                raise InvalidDocumentError(f"{addition.form_id}: signed before its form")
            if addition.facility_code in form.facilities or any(
                a.facility_code == addition.facility_code for a in current.additions
            ):
                raise InvalidDocumentError(f"{addition.form_id}: {addition.facility_code} is already covered")
            self._insert(db, patient, "addition", addition)
        return ConsentState(form, (*current.additions, addition))

    def withdraw(self, patient: str, withdrawal: ConsentWithdrawal) -> ConsentState:
        """同意撤回届: sharing ends from its date (inclusive)."""
        with self._tx() as db:
            current = self._current(db, patient)
            if withdrawal.base_form_id != current.form.form_id:
                raise InvalidDocumentError(
                    f"{withdrawal.form_id}: base {withdrawal.base_form_id} is not current"
                )
            if current.withdrawal is not None:
                raise AlreadyWithdrawnError(current.form.form_id)
            if withdrawal.withdrawn_on < current.form.signed_on:
                raise InvalidDocumentError(f"{withdrawal.form_id}: dated before its form")
            self._insert(db, patient, "withdrawal", withdrawal)
        return ConsentState(current.form, current.additions, withdrawal)

    def grant_emergency(
        self,
        patient: str,
        viewer_facility: str,
        user_id: str,
        reason: str,
        start: dt.datetime,
        end: dt.datetime,
    ) -> EmergencyGrant:
        """Break-glass: a time-limited grant, only where the patient's consent allows emergency viewing."""
        if not reason.strip():
            raise EmergencyNotAllowedError("a reason is required")
        if not start < end:
            raise EmergencyNotAllowedError("the grant must end after it starts")
        with self._tx() as db:
            docs = self._documents(db, patient)
            consent = self._consent(docs, start.date())
            if consent is None:
                raise NoConsentError(patient)
            if not consent.form.emergency_allowed or not consent.active(start.date()):
                raise EmergencyNotAllowedError(
                    f"{patient}: consent does not allow emergency viewing at {start}"
                )
            current = self._consent(docs, None)
            if current is None or current.form.form_id != consent.form.form_id:
                # A form signed after ``start`` already replaces this one: a grant under it would be void.
                raise EmergencyNotAllowedError(f"{patient}: a later consent form replaces the one in force")
            form_id = consent.form.form_id
            grant = EmergencyGrant(viewer_facility, user_id, reason.strip(), start, end, form_id)
            db.execute(
                "INSERT INTO grants (patient, viewer_facility, user_id, reason, start, end, form_id)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    patient,
                    viewer_facility,
                    user_id,
                    grant.reason,
                    start.isoformat(),
                    end.isoformat(),
                    form_id,
                ),
            )
        return grant

    def link(self, patient: str, facility: str) -> bool:
        """Record that ``facility`` linked its local ID to the patient; True if new."""
        with self._tx() as db:
            return db.execute("INSERT OR IGNORE INTO links VALUES (?, ?)", (patient, facility)).rowcount == 1

    def unlink(self, patient: str, facility: str) -> bool:
        """Remove a link (the facility's record was unlinked or merged away); True if it existed."""
        with self._tx() as db:
            return (
                db.execute("DELETE FROM links WHERE patient=? AND facility=?", (patient, facility)).rowcount
                == 1
            )
