"""The consent papers: ``/patients/{id}/consents`` (form), ``…/additions`` (連携先追加), ``…/withdrawals``
(同意撤回), and reading the history.

They are registered only by a user of a facility where the patient has a linked local ID — the facility
that received the paper (``taken_at`` is the caller's) — whose viewer kind may administer consent at that
kind of facility (:data:`..facilities.CONSENT_ADMIN_KINDS`; 403 ``role-not-permitted`` otherwise). A
facility within the consent but not linked gets 403 ``not-linked``; any other facility the 404 of an unknown
patient. Reading the history needs the link too (any role). A document dated after today (the hub's clock)
is 422 ``dated-in-the-future``; a new form dated on or before the latest withdrawal 422
``dated-on-or-before-withdrawal``; a duplicate document ID 409; a document that contradicts the registered
ones 422 with the store's reason. Facility lists must name facilities of the network. Every refusal is
audited with its reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from synthetic.consent import ConsentState
from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal

from ..accounts import Session
from ..consents import (
    AlreadyWithdrawnError,
    ConsentError,
    DatedBeforeWithdrawalError,
    DuplicateDocumentError,
    NoConsentError,
)
from ..deps import Hub, User
from ..service import HubServices, Refused
from .fields import ID, FacilityCode, PathID, StrictBody

__all__ = [
    "AdditionRequest",
    "ConsentFormRequest",
    "ConsentHistoryReply",
    "ConsentReply",
    "ConsentView",
    "WithdrawalRequest",
    "router",
]

router = APIRouter(tags=["consent"])
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {403: {}, 404: {}, 409: {}, 422: {}}


class ConsentFormRequest(StrictBody):
    form_id: ID
    pattern: Literal["all", "all_except", "allow_list", "per_facility"]
    facilities: list[FacilityCode] = Field(default=[], max_length=2000)
    signed_on: dt.date
    emergency_allowed: bool = False


class AdditionRequest(StrictBody):
    form_id: ID
    base_form_id: ID
    facility: FacilityCode
    signed_on: dt.date


class WithdrawalRequest(StrictBody):
    form_id: ID
    base_form_id: ID
    withdrawn_on: dt.date


class ConsentView(BaseModel):
    form_id: str
    pattern: str
    facilities: list[str]
    signed_on: dt.date
    taken_at: str
    emergency_allowed: bool
    additions: list[dict[str, Any]]
    withdrawal: dict[str, Any] | None
    active_today: bool


class ConsentReply(BaseModel):
    regional_id: str
    current: ConsentView | None


class ConsentHistoryReply(BaseModel):
    regional_id: str
    documents: list[dict[str, Any]]
    current: ConsentView | None


def may_administer(hub: HubServices, user: Session, regional_id: str, *, write: bool = True) -> None:
    """Consent papers: the caller's facility must hold a linked local ID of the patient (it received the
    paper), and for a write the caller's viewer kind must be one that may administer consent."""
    state = hub.require_known_to(user.facility, regional_id)  # 404 for an unrelated facility
    if user.facility not in state.linked_facilities:
        raise Refused(
            403,
            "not-linked",
            "only a facility where the patient has a linked local ID (the one that received the paper)",
        )
    admins = hub.facilities.consent_administrators(user.facility)
    if write and user.viewer_kind not in admins:
        allowed = ", ".join(sorted(admins)) or "nobody"
        raise Refused(
            403,
            "role-not-permitted",
            f"a {user.viewer_kind} may not administer consent here (only {allowed})",
        )


def _known_facilities(hub: HubServices, codes: list[str]) -> None:
    unknown = sorted({c for c in codes if hub.facilities.get(c) is None})
    if unknown:
        raise Refused(422, "unknown-facility", f"not facilities of the network: {', '.join(unknown[:5])}")


async def _store(apply: Callable[[], ConsentState]) -> ConsentState:
    """Run ``apply`` (a consent store write) in a thread; the store's errors become their refusals."""
    try:
        return await run_in_threadpool(apply)
    except DuplicateDocumentError as exc:
        raise Refused(409, "duplicate-document", f"document {exc} is already registered") from exc
    except AlreadyWithdrawnError as exc:
        raise Refused(409, "already-withdrawn", f"form {exc} is already withdrawn") from exc
    except NoConsentError as exc:
        raise Refused(404, "no-consent", f"no consent form registered for {exc}") from exc
    except DatedBeforeWithdrawalError as exc:
        raise Refused(422, "dated-on-or-before-withdrawal", str(exc)) from exc
    except ConsentError as exc:
        raise Refused(422, type(exc).__name__, str(exc)) from exc


async def _change(
    hub: HubServices,
    user: Session,
    regional_id: str,
    action: str,
    form_id: str,
    dated: dt.date,
    apply: Callable[[], ConsentState],
) -> ConsentReply:
    """One consent paper: checked, applied, audited either way; the consent in force after it."""
    try:
        may_administer(hub, user, regional_id)
        # A paper cannot be signed tomorrow: a future date is a typing error (2099 for 2019) that would
        # make the document current and block a withdrawal dated today.
        if dated > hub.local_now().date():
            raise Refused(422, "dated-in-the-future", f"{form_id} is dated {dated}, after today")
        state = await _store(apply)
    except Refused as exc:
        await hub.record(
            user, action, "failure", patient=regional_id, target=form_id, reason=exc.audit_reason
        )
        raise
    await hub.record(user, action, "success", patient=regional_id, target=form_id)
    return ConsentReply(regional_id=regional_id, current=consent_view(state, hub.local_now().date()))


@router.post("/patients/{regional_id}/consents", status_code=201, responses=WRITE_RESPONSES)
async def register_consent(
    regional_id: PathID, body: ConsentFormRequest, user: User, hub: Hub
) -> ConsentReply:
    form = ConsentForm(
        body.form_id,
        -1,
        body.pattern,
        body.signed_on,
        user.facility,
        tuple(body.facilities),
        body.emergency_allowed,
    )

    def apply() -> ConsentState:
        _known_facilities(hub, body.facilities)
        return hub.consents.register(regional_id, form)

    return await _change(hub, user, regional_id, "consent-register", body.form_id, body.signed_on, apply)


@router.post("/patients/{regional_id}/consents/additions", status_code=201, responses=WRITE_RESPONSES)
async def add_facility(regional_id: PathID, body: AdditionRequest, user: User, hub: Hub) -> ConsentReply:
    addition = ConsentAddition(
        body.form_id, -1, body.base_form_id, body.facility, body.signed_on, user.facility
    )

    def apply() -> ConsentState:
        _known_facilities(hub, [body.facility])
        return hub.consents.add_facility(regional_id, addition)

    return await _change(hub, user, regional_id, "consent-add", body.form_id, body.signed_on, apply)


@router.post("/patients/{regional_id}/consents/withdrawals", status_code=201, responses=WRITE_RESPONSES)
async def withdraw(regional_id: PathID, body: WithdrawalRequest, user: User, hub: Hub) -> ConsentReply:
    withdrawal = ConsentWithdrawal(body.form_id, -1, body.base_form_id, body.withdrawn_on, user.facility)
    return await _change(
        hub,
        user,
        regional_id,
        "consent-withdraw",
        body.form_id,
        body.withdrawn_on,
        lambda: hub.consents.withdraw(regional_id, withdrawal),
    )


@router.get("/patients/{regional_id}/consents", responses={403: {}, 404: {}})
async def consent_history(regional_id: PathID, user: User, hub: Hub) -> ConsentHistoryReply:
    try:
        may_administer(hub, user, regional_id, write=False)
    except Refused as exc:
        await hub.record(user, "consent-read", "failure", patient=regional_id, reason=exc.audit_reason)
        raise
    docs = hub.consents.history(regional_id)
    await hub.record(user, "consent-read", "success", patient=regional_id)
    return ConsentHistoryReply(
        regional_id=regional_id,
        documents=[{"seq": d.seq, "kind": d.kind, **_document_json(d.document)} for d in docs],
        current=consent_view(hub.consents.consent(regional_id), hub.local_now().date()),
    )


def consent_view(state: ConsentState | None, today: dt.date) -> ConsentView | None:
    """The consent in force as the API shows it (None: no form registered)."""
    if state is None:
        return None
    form = state.form
    withdrawal = state.withdrawal
    return ConsentView(
        form_id=form.form_id,
        pattern=form.pattern,
        facilities=list(form.facilities),
        signed_on=form.signed_on,
        taken_at=form.taken_at,
        emergency_allowed=form.emergency_allowed,
        additions=[
            {"form_id": a.form_id, "facility": a.facility_code, "signed_on": a.signed_on.isoformat()}
            for a in state.additions
        ],
        withdrawal=None
        if withdrawal is None
        else {
            "form_id": withdrawal.form_id,
            "withdrawn_on": withdrawal.withdrawn_on.isoformat(),
            "taken_at": withdrawal.taken_at,
        },
        active_today=state.active(today),
    )


def _document_json(doc: ConsentForm | ConsentAddition | ConsentWithdrawal) -> dict[str, Any]:
    if isinstance(doc, ConsentForm):
        return {
            "form_id": doc.form_id,
            "pattern": doc.pattern,
            "facilities": list(doc.facilities),
            "signed_on": doc.signed_on.isoformat(),
            "taken_at": doc.taken_at,
            "emergency_allowed": doc.emergency_allowed,
        }
    if isinstance(doc, ConsentAddition):
        return {
            "form_id": doc.form_id,
            "base_form_id": doc.base_form_id,
            "facility": doc.facility_code,
            "signed_on": doc.signed_on.isoformat(),
            "taken_at": doc.taken_at,
        }
    return {
        "form_id": doc.form_id,
        "base_form_id": doc.base_form_id,
        "withdrawn_on": doc.withdrawn_on.isoformat(),
        "taken_at": doc.taken_at,
    }
