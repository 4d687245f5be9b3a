"""The CDA header (document, patient, author, custodian, recipient, encounter) around a narrative body."""

from __future__ import annotations

import datetime as dt
import functools
import random
import uuid
from collections.abc import Callable

from synthetic.documents.markup import addr, date_ts, esc, org_body, person_names, tel, ts
from synthetic.documents.narratives import discharge_summary, nursing_note, progress_note, referral_letter
from synthetic.documents.spec import (
    DEPARTMENT_CODES,
    DOCTOR_ID_ARC,
    DOCUMENT_TYPES,
    LOINC,
    DocumentKind,
    DocumentSpec,
)
from synthetic.documents.wording import Ctx, presenting_complaint
from synthetic.rng import stable_int


@functools.lru_cache(maxsize=4096)
def document_root(facility_code: str) -> str:
    """The document-ID root OID of a custodian (the choice is in the package docstring)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'rhin.cda.document.{facility_code}').int}"


def _template(kind: str) -> str:
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'rhin.cda.template.{kind}').int}"


_TEMPLATES: dict[str, str] = {kind: _template(kind) for kind in DOCUMENT_TYPES}


#: Document kind → the builder of its structured body.
NARRATIVES: dict[DocumentKind, Callable[[Ctx], str]] = {
    "discharge_summary": discharge_summary,
    "referral_letter": referral_letter,
    "progress_note": progress_note,
    "nursing_note": nursing_note,
}


def render_cda(spec: DocumentSpec) -> bytes:
    """Render one document as UTF-8 CDA R2 XML (with the XML declaration). Deterministic in ``spec``."""
    if spec.kind not in DOCUMENT_TYPES:
        raise ValueError(f"unknown document kind {spec.kind!r}")
    if spec.kind == "referral_letter" and spec.recipient is None:
        raise ValueError("a referral letter needs a recipient")
    ctx = _context(spec)
    body = NARRATIVES[spec.kind](ctx)
    parts = _header(spec)
    if spec.recipient is not None:
        dept = spec.recipient_department
        parts.append(
            '<informationRecipient typeCode="PRCP"><intendedRecipient>'
            + (
                f"<informationRecipient><name>{esc(dept)}　ご担当先生</name></informationRecipient>"
                if dept
                else ""
            )
            + f"<receivedOrganization>{org_body(spec.recipient)}</receivedOrganization>"
            "</intendedRecipient></informationRecipient>"
        )
    a = spec.author
    parts.append(
        f'<legalAuthenticator><time value="{ts(spec.time)}"/><signatureCode code="S"/>'
        f"<assignedEntity>{_author_id(spec)}"
        f"<assignedPerson>{person_names(a.family, a.given, a.family_kana, a.given_kana)}</assignedPerson>"
        "</assignedEntity></legalAuthenticator>"
    )
    if ctx.admitted is not None:
        high = f'<high value="{ts(ctx.discharged)}"/>' if ctx.discharged is not None else ""
        parts.append(
            "<componentOf><encompassingEncounter>"
            '<code code="IMP" codeSystem="2.16.840.1.113883.5.4" displayName="inpatient encounter"/>'
            f'<effectiveTime><low value="{ts(ctx.admitted)}"/>{high}</effectiveTime>'
            "</encompassingEncounter></componentOf>"
        )
    parts.append(f"<component><structuredBody>{body}</structuredBody></component></ClinicalDocument>\n")
    return "".join(parts).encode("utf-8", "replace")


def _context(spec: DocumentSpec) -> Ctx:
    """The facts every narrative shares; the wording generator is seeded from the document ID."""
    rng = random.Random(stable_int("cda-wording", spec.document_id))
    admitted, discharged = spec.admitted, spec.discharged
    if spec.kind == "discharge_summary":
        # A discharge summary always spans a stay: derive what is missing from the document time and day.
        discharged = discharged or spec.time
        admitted = admitted or discharged - dt.timedelta(days=max(spec.day - 1, 0))
    first = spec.diagnoses[0] if spec.diagnoses else None
    main = "原疾患" if first is None else f"{first.name}の疑い" if first.status == "suspected" else first.name
    return Ctx(
        spec=spec,
        rng=rng,
        main=main,
        complaint=presenting_complaint(main, rng),
        doctor=f"{spec.author.family}　{spec.author.given}",
        admitted=admitted,
        discharged=discharged,
    )


def _author_id(spec: DocumentSpec) -> str:
    return f'<id root="{DOCTOR_ID_ARC}{esc(spec.custodian.code)}" extension="{esc(spec.author.staff_id)}"/>'


def _header(spec: DocumentSpec) -> list[str]:
    """The declaration and the header up to the custodian: document, recordTarget, author, custodian."""
    code, title = DOCUMENT_TYPES[spec.kind]
    now = ts(spec.time)
    p, a, org = spec.patient, spec.author, spec.custodian
    sex = p.sex if p.sex in ("M", "F") else "UN"
    root = document_root(org.code)
    doc_id = esc(spec.document_id)
    return [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<realmCode code="JP"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        f'<templateId root="{_TEMPLATES[spec.kind]}"/>'
        f'<id root="{root}" extension="{doc_id}"/>'
        f'<code code="{code}" codeSystem="{LOINC}" codeSystemName="LOINC" displayName="{title}"/>'
        f"<title>{title}</title>"
        f'<effectiveTime value="{now}"/>'
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>'
        '<languageCode code="ja-JP"/>'
        f'<setId root="{root}" extension="{doc_id}"/><versionNumber value="1"/>',
        # recordTarget
        f'<recordTarget><patientRole><id root="{esc(p.id_oid)}" extension="{esc(p.local_id)}"/>'
        f"{addr(p.postcode, p.address)}{tel(p.phone)}<patient>"
        f"{person_names(p.family, p.given, p.family_kana, p.given_kana)}"
        f'<administrativeGenderCode code="{sex}" codeSystem="2.16.840.1.113883.5.1"/>'
        f'<birthTime value="{date_ts(p.birth_date)}"/></patient></patientRole></recordTarget>',
        # author
        f'<author><time value="{now}"/><assignedAuthor>{_author_id(spec)}'
        f'<code code="{esc(a.department_code)}" codeSystem="{DEPARTMENT_CODES}"'
        f' codeSystemName="SS-MIX2診療科" displayName="{esc(a.department_name)}"/>'
        f"<assignedPerson>{person_names(a.family, a.given, a.family_kana, a.given_kana)}</assignedPerson>"
        f"<representedOrganization>{org_body(org)}</representedOrganization></assignedAuthor></author>",
        # custodian
        "<custodian><assignedCustodian><representedCustodianOrganization>"
        f"{org_body(org)}</representedCustodianOrganization></assignedCustodian></custodian>",
    ]
