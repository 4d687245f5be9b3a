"""What PIX and PDQ decide and audit whatever the wire: HL7 v2 over MLLP (:mod:`.pixpdq`) and HL7 v3 over
SOAP (:mod:`.v3`) call these, so a patient fed over one is found over the other and both leave the same
audit records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .audit import AuditEntry
from .auditbatch import AuditBatcher
from .index import Domain, DomainDirectory, IndexRecord, PatientIndex, SearchCriteria

__all__ = ["Hit", "Note", "audit_note", "feed_domain_refusal", "fold_hits", "pix_ids"]


@dataclass(frozen=True)
class Hit:
    record: IndexRecord
    ids: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Note:
    """What one message did, filled in while it is handled: the reply's clock and its audit record(s)."""

    now: datetime
    action: str = "unsupported"
    code: str = "AA"  # MSA-1
    status: str = ""  # QAK-2 for queries
    reason: str = ""  # MSA-3 of a refusal
    patient: str = ""
    target: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    hits: list[tuple[str, str]] | None = None  # PDQ: (regional ID or "", first "<domain>|<ID>") per person

    def refused(self, code: str, reason: str) -> None:
        """The message was refused: MSA-1 (or acknowledgement typeCode) ``code``, with its text."""
        self.code, self.reason = code, reason


async def audit_note(audit: AuditBatcher, note: Note, actor: str, user: str, kind: str, control: str) -> None:
    """A message's audit record(s), as :mod:`.pixpdq`'s docstring says (v2 and v3 alike)."""
    details = {"type": kind, "control": control}
    if note.status:
        details["status"] = note.status
    details.update(note.details)

    def entry(patient: str, target: str, extra: dict[str, Any]) -> AuditEntry:
        return AuditEntry(note.now, actor, user, note.action, note.code, patient, target, note.reason, extra)

    if note.hits is None:
        await audit.record(entry(note.patient, note.target, details))
        return
    hit = {k: details[k] for k in ("type", "control", "tag") if k in details} | {"role": "hit"}
    entries = [entry(patient, target, hit) for patient, target in note.hits]
    entries.append(entry("", "", details | {"role": "summary"}))
    await audit.record_many(entries)


def feed_domain_refusal(directory: DomainDirectory, ns: str, oid: str, own: Domain) -> str:
    """Why an identifier of a feed from ``own`` named by (``ns``, ``oid``) is refused ("" if it is in the
    sender's own domain): unresolvable, unknown, or another facility's (ITI8-019, one source per domain)."""
    if not ns and not oid:
        return "the assigning authority could not be resolved (empty CX.4)"
    domain = directory.resolve(ns, oid)
    if domain is None:
        return f"unknown assigning authority {ns or oid!r}"
    if domain != own:
        return f"{own.facility} may not assign IDs in domain {domain.namespace}"
    return ""


def pix_ids(
    found: Sequence[tuple[str, str]], query: tuple[str, str], wanted: set[str]
) -> list[tuple[str, str]]:
    """A PIX answer: the patient's IDs but the queried one, only in ``wanted`` domains if any are named."""
    return [i for i in found if i != query and (not wanted or i[0] in wanted)]


def fold_hits(index: PatientIndex, criteria: SearchCriteria, wanted: set[str]) -> list[Hit]:
    """A PDQ's matches, one per person (records linked to one regional patient folded together), each with
    its IDs in the ``wanted`` domains (all if none named); a person with none there is left out."""
    hits, seen = [], set()
    for record in index.search(criteria):
        key = record.regional_id or f"{record.domain}|{record.local_id}"
        if key in seen:
            continue
        seen.add(key)
        ids = index.identifiers(record.domain, record.local_id)
        if wanted:
            ids = [i for i in ids if i[0] in wanted]
            if not ids:
                continue
        hits.append(Hit(record, tuple(ids)))
    return hits
