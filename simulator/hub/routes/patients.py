"""``GET /patients/{id}``, ``POST /links`` and ``DELETE /links/...``: who a patient is, and linking IDs.

Linking (ID-Link's 患者登録し両院のID番号を紐付け) is done by a user of a *disclosing* facility; it may link
its own local ID or another facility's. Joining IDs to an *existing* regional ID takes a facility already
linked to that patient (else the 404 of an unknown ID), and unlinking another facility's ID a facility
linked to the same patient: a link is what opens a patient to a facility. The local ID must have been fed
(ITI-8) first: 404 otherwise. ``regional_id`` null issues a new regional ID (or returns the existing link:
linking twice is idempotent); a local ID already linked elsewhere is 409.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..accounts import Session
from ..deps import Hub, User
from ..index import REGIONAL_NAMESPACE, IdentityError, LinkConflictError, UnknownPatientError
from ..service import HubServices, Refused, unknown_patient
from .fields import ID, FacilityCode, PathCode, PathID, StrictBody

__all__ = ["IdentifierView", "LinkReply", "LinkRequest", "LinkedView", "LocalRef", "PatientReply", "router"]

router = APIRouter(tags=["patients"])


class IdentifierView(BaseModel):
    facility: str
    namespace: str
    local_id: str


class PatientReply(BaseModel):
    regional_id: str
    identifiers: list[IdentifierView]


class LocalRef(StrictBody):
    facility: FacilityCode
    local_id: ID


class LinkRequest(StrictBody):
    """Link ``local_id`` at ``facility``, and ``others`` (the same patient elsewhere), to one regional ID."""

    facility: FacilityCode
    local_id: ID
    regional_id: ID | None = None
    others: list[LocalRef] = Field(default=[], max_length=100)


class LinkedView(BaseModel):
    facility: str
    local_id: str
    created: bool


class LinkReply(BaseModel):
    regional_id: str
    facility: str
    local_id: str
    created: bool
    others: list[LinkedView] = []


class UnlinkReply(BaseModel):
    unlinked: bool


@router.get("/patients/{regional_id}")
async def patient(regional_id: PathID, user: User, hub: Hub) -> PatientReply:
    try:
        hub.require_known_to(user.facility, regional_id)
    except Refused as exc:
        await hub.record(user, "patient-lookup", "failure", patient=regional_id, reason=exc.audit_reason)
        raise
    ids = []
    for namespace, local_id in hub.index.identifiers(REGIONAL_NAMESPACE, regional_id)[1:]:
        domain = hub.index.directory.get(namespace)
        facility = (domain.facility or "") if domain else ""
        ids.append(IdentifierView(facility=facility, namespace=namespace, local_id=local_id))
    await hub.record(user, "patient-lookup", "success", patient=regional_id)
    return PatientReply(regional_id=regional_id, identifiers=ids)


def _require_discloser(hub: HubServices, user: Session, action: str) -> None:
    if not hub.facility(user.facility).disclosing:
        raise Refused(403, "not-disclosing", f"only a disclosing facility's user may {action}")


async def _link_all(hub: HubServices, user: Session, body: LinkRequest) -> tuple[str, list[bool]]:
    """Link every reference of ``body``: the regional ID, and for each reference whether it was new."""
    _require_discloser(hub, user, "link patient IDs")
    if (
        body.regional_id is not None
        and hub.index.known(REGIONAL_NAMESPACE, body.regional_id)
        and user.facility not in hub.linked_facilities(body.regional_id)
    ):
        # Joining IDs to an existing patient takes a link to that patient already: otherwise a facility
        # could link a record of its own to anyone and gain a linked facility's access.
        raise unknown_patient(body.regional_id, "not-linked")
    pairs: list[tuple[str, str]] = []
    created: list[bool] = []
    for ref in [LocalRef(facility=body.facility, local_id=body.local_id), *body.others]:
        namespace = hub.facility(ref.facility).namespace
        before = hub.index.get(namespace, ref.local_id)
        if before is None:
            raise Refused(404, "unknown-local-id", f"{ref.local_id} at {ref.facility} was never fed (ITI-8)")
        pairs.append((namespace, ref.local_id))
        created.append(before.regional_id is None)
    try:
        regional = await run_in_threadpool(hub.index.link_many, pairs, body.regional_id)
    except LinkConflictError as exc:
        raise Refused(409, "link-conflict", str(exc)) from exc
    except UnknownPatientError as exc:
        raise Refused(404, "unknown-patient", str(exc)) from exc
    return regional, created


@router.post("/links", responses={403: {}, 404: {}, 409: {}})
async def link(body: LinkRequest, user: User, hub: Hub) -> LinkReply:
    refs = [(body.facility, body.local_id), *((r.facility, r.local_id) for r in body.others)]
    target = ",".join(f"{facility}|{local_id}" for facility, local_id in refs)
    try:
        regional, created = await _link_all(hub, user, body)
    except Refused as exc:
        await hub.record(
            user, "link", "failure", target=target, reason=exc.audit_reason, patient=body.regional_id or ""
        )
        raise
    await hub.record(user, "link", "success", patient=regional, target=target, details={"created": created})
    return LinkReply(
        regional_id=regional,
        facility=body.facility,
        local_id=body.local_id,
        created=created[0],
        others=[
            LinkedView(facility=r.facility, local_id=r.local_id, created=c)
            for r, c in zip(body.others, created[1:], strict=True)
        ],
    )


@router.delete("/links/{facility}/{local_id}")
async def unlink(facility: PathCode, local_id: PathID, user: User, hub: Hub) -> UnlinkReply:
    target = f"{facility}|{local_id}"
    try:
        _require_discloser(hub, user, "unlink patient IDs")
        info = hub.facility(facility)
        record = hub.index.get(info.namespace, local_id)
        if (
            facility != user.facility
            and record is not None
            and record.regional_id
            and user.facility not in hub.linked_facilities(record.regional_id)
        ):
            # Another facility's ID, of a patient the caller has no link to: not the caller's to undo.
            raise Refused(403, "not-linked", "unlink your own IDs, or those of a patient you have linked")
        done = await run_in_threadpool(hub.index.unlink, info.namespace, local_id)
    except (Refused, IdentityError) as exc:
        reason = exc.audit_reason if isinstance(exc, Refused) else "unknown-domain"
        await hub.record(user, "unlink", "failure", target=target, reason=reason)
        raise
    patient_id = record.regional_id if record and record.regional_id else ""
    await hub.record(user, "unlink", "success" if done else "no-op", patient=patient_id, target=target)
    return UnlinkReply(unlinked=done)
