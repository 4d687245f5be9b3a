"""``GET /patients/{id}/access-report`` (who saw a patient's data), ``GET /audit`` and ``/audit/verify``.

The access report is for the hub operator, or a user of a facility linked to the patient; reading it is
itself audited. The log and its verification take the operator's token only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from ..audit import AuditRecord
from ..deps import Credentials, Hub, is_operator, require_operator, session_for
from ..service import HubServices, Refused
from .fields import PathID

__all__ = ["AccessReportReply", "AccessRowView", "AuditRecordView", "AuditReply", "VerifyReply", "router"]

router = APIRouter(tags=["audit"])


class AccessRowView(BaseModel):
    time: str
    facility: str
    user: str
    action: str
    target: str
    outcome: str
    reason: str


class AccessReportReply(BaseModel):
    regional_id: str
    rows: list[AccessRowView]


class AuditRecordView(BaseModel):
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


class AuditReply(BaseModel):
    records: list[AuditRecordView]


class VerifyReply(BaseModel):
    """:meth:`.audit.Verification.as_json`: the first 100 problems, their counts by issue, every issue
    found, the head, and the checkpoints the verification checked the log against."""

    ok: bool
    problems: list[dict[str, Any]]
    problem_count: int
    problem_counts: dict[str, int]
    issues: list[str]
    head: dict[str, Any]
    records: int
    checkpoints: dict[str, Any]


async def _report_reader(hub: HubServices, creds: Credentials, regional_id: str) -> tuple[str, str]:
    """Who reads the report: the operator, or a user of a facility linked to the patient (else refused,
    and the refusal audited)."""
    if is_operator(hub, creds):
        hub.require_patient(regional_id)
        return ("hub", "operator")
    user = session_for(hub, creds)
    try:
        state = hub.require_known_to(user.facility, regional_id)
        if user.facility not in state.linked_facilities:
            raise Refused(403, "not-linked", "only the hub operator or a facility linked to the patient")
    except Refused as exc:
        await hub.record(user, "access-report", "failure", patient=regional_id, reason=exc.audit_reason)
        raise
    return (user.facility, user.user_id)


@router.get("/patients/{regional_id}/access-report", responses={403: {}, 404: {}})
async def access_report(regional_id: PathID, creds: Credentials, hub: Hub) -> AccessReportReply:
    who = await _report_reader(hub, creds, regional_id)
    rows = hub.audit_log.access_report(regional_id)
    await hub.record(who, "access-report", "success", patient=regional_id)
    return AccessReportReply(
        regional_id=regional_id, rows=[AccessRowView(**dataclasses.asdict(r)) for r in rows]
    )


@router.get("/audit", dependencies=[Depends(require_operator)], responses={401: {}})
async def audit(
    hub: Hub,
    patient: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> AuditReply:
    if since is not None and since.tzinfo is not None:
        since = since.astimezone(hub.now().tzinfo).replace(tzinfo=None)
    records = hub.audit_log.records(patient=patient, since=since)
    if action is not None:
        records = [r for r in records if r.action == action]
    return AuditReply(records=[_record_view(r) for r in records[-limit:]])


@router.get("/audit/verify", dependencies=[Depends(require_operator)], responses={401: {}})
async def verify(hub: Hub) -> VerifyReply:
    # The same code as `rhin audit verify` (offline): the keyed chain and the checkpoint file; an intact
    # log's verified head is then anchored by a checkpoint (AuditLog.verification). A thread, so a long
    # log does not stall the loop (writers wait for the store's lock as for any reader).
    found = await asyncio.to_thread(hub.audit_log.verification, anchor=True)
    return VerifyReply(**found.as_json())


def _record_view(r: AuditRecord) -> AuditRecordView:
    return AuditRecordView(
        seq=r.seq,
        time=r.time,
        actor_facility=r.actor_facility,
        actor_user=r.actor_user,
        action=r.action,
        patient=r.patient,
        target=r.target,
        outcome=r.outcome,
        reason=r.reason,
        details=r.details,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )
