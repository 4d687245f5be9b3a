"""``POST /patients/{id}/emergency``: break-glass access.

Requested by the viewing facility's user for that facility, with a reason, for 1–1,440 minutes from now;
refused (403) unless the patient's consent allows emergency use and is in force (404 instead, when the
refused caller may not know the patient). The grant belongs to the form in force: a withdrawal or a
replacing form ends it for good (:mod:`..policy`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from synthetic.clock import JST

from ..accounts import Session
from ..consents import EmergencyNotAllowedError, NoConsentError
from ..deps import Hub, User
from ..policy import EmergencyGrant, may_know
from ..service import HubServices, Refused, unknown_patient
from .fields import PathID, StrictBody

__all__ = ["EmergencyReply", "EmergencyRequest", "router"]

router = APIRouter(tags=["consent"])


class EmergencyRequest(StrictBody):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    minutes: Annotated[int, Field(ge=1, le=1440)] = 60


class EmergencyReply(BaseModel):
    regional_id: str
    viewer_facility: str
    user_id: str
    reason: str
    start: dt.datetime  # JST, with its +09:00 offset
    end: dt.datetime


async def _grant(
    hub: HubServices, user: Session, regional_id: str, reason: str, start: dt.datetime, end: dt.datetime
) -> EmergencyGrant:
    """The grant, or the refusal: 404 for a caller who may not know the patient, else 403."""
    state, _ = hub.patient(regional_id, start.date())
    known = may_know(state, user.facility, start)
    try:
        return await run_in_threadpool(
            hub.consents.grant_emergency, regional_id, user.facility, user.user_id, reason, start, end
        )
    except NoConsentError as exc:
        if not known:
            raise unknown_patient(regional_id, "no-consent") from exc
        raise Refused(403, "no-consent", f"no consent form registered for {exc}") from exc
    except EmergencyNotAllowedError as exc:
        if not known:
            raise unknown_patient(regional_id, "emergency-not-allowed") from exc
        raise Refused(403, "emergency-not-allowed", str(exc)) from exc


@router.post("/patients/{regional_id}/emergency", status_code=201, responses={403: {}, 404: {}})
async def emergency(regional_id: PathID, body: EmergencyRequest, user: User, hub: Hub) -> EmergencyReply:
    start = hub.local_now().replace(microsecond=0)
    end = start + dt.timedelta(minutes=body.minutes)
    try:
        grant = await _grant(hub, user, regional_id, body.reason, start, end)
    except Refused as exc:
        await hub.record(
            user,
            "emergency-grant",
            "failure",
            patient=regional_id,
            reason=exc.audit_reason,
            details={"stated_reason": body.reason},
        )
        raise
    await hub.record(
        user,
        "emergency-grant",
        "success",
        patient=regional_id,
        reason=grant.reason,
        details={"start": _jst(start).isoformat(), "end": _jst(end).isoformat()},
    )
    return EmergencyReply(
        regional_id=regional_id,
        viewer_facility=grant.viewer_facility,
        user_id=grant.user_id,
        reason=grant.reason,
        start=_jst(grant.start),
        end=_jst(grant.end),
    )


def _jst(naive: dt.datetime) -> dt.datetime:
    """The consent store keeps naive JST (what the policy compares); answers carry the +09:00 offset."""
    return naive.replace(tzinfo=JST)
