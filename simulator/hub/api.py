"""The hub's HTTP API (FastAPI; OpenAPI at ``/openapi.json``): login, linking, consent, emergency, audit.

The record routes (timeline, fetch) are in :mod:`.records` and mounted on the same app. Every route
authenticates with a bearer token from ``POST /auth/login`` (facility + user + password, the seed network's
login), except the audit routes, which take the hub operator's token (``admin.token`` in the hub's data
directory). Every state change and every refusal of one is audited before the answer is sent.

Choices where the sources leave room (each is tested):

* **Login failures** answer 401 ``invalid-credentials`` for an unknown user and a wrong password alike (no
  user enumeration: same body, one scrypt either way, throttled alike — see :mod:`.accounts`); the audit
  record keeps the true reason and the source address. ``retry-later`` is 429 and ``locked`` 423, both
  with ``Retry-After``.
* **Who may know a patient exists**: every route that names a regional ID answers a facility that is not
  linked to the patient, not within the consent in force and holds no live grant under it exactly as for
  an ID that does not exist (404 ``unknown-patient``); the audit record says ``not-related``.
* **Linking** (ID-Link's 患者登録し両院のID番号を紐付け) is done by a user of a *disclosing* facility; it may
  link its own local ID or another facility's. Joining IDs to an *existing* regional ID takes a facility
  already linked to that patient (else the 404 of an unknown ID), and unlinking another facility's ID a
  facility linked to the same patient: a link is what opens a patient to a facility. The local ID must
  have been fed (ITI-8) first: 404 otherwise.
  ``regional_id`` null issues a new regional ID (or returns the existing link: linking twice is idempotent);
  a local ID already linked elsewhere is 409.
* **Consent documents** (form, 連携先追加, 同意撤回) are registered only by a user of a facility where the
  patient has a linked local ID — the facility that received the paper (``taken_at`` is the caller's) —
  whose viewer kind may administer consent at that kind of facility (:data:`.facilities.CONSENT_ADMIN_KINDS`:
  physicians and clerks at hospitals and clinics, dentists, pharmacists, and physicians and nurses at care
  facilities; 403 ``role-not-permitted`` otherwise). A facility within the consent but not
  linked gets 403 ``not-linked``; any other facility the 404 of an unknown patient. Reading the history
  needs the link too (any role). A new form dated on or before the latest withdrawal is 422
  ``dated-on-or-before-withdrawal``. Every refusal is audited with its reason. Facility lists must name
  facilities of the network. A duplicate document ID is 409; a document that contradicts the registered
  ones (dates, wrong base form, pattern) is 422 with the store's reason.
* **Dates**: a consent document dated after today (the hub's clock) is refused, 422 ``dated-in-the-future``:
  a paper cannot be signed tomorrow, and a mistyped year would otherwise become the current form and block a
  withdrawal dated today.
* **Emergency access** is requested by the viewing facility's user for that facility, with a reason, for
  1–1,440 minutes from now; refused (403) unless the patient's consent allows emergency use and is in force
  (404 instead, when the refused caller may not know the patient). The grant belongs to the form in force:
  a withdrawal or a replacing form ends it for good (:mod:`.policy`).
* **Request bodies** are limited before they are read (:class:`BodyLimit`, 413 ``body-too-large``): the
  hub takes no document uploads (records stay behind the gateways), so one limit serves every route.
* **Refusals before any route logic** — 401 for a missing, malformed or unknown token, 413, 400 — are
  audited through :class:`.service.RefusalAudit` (aggregated in a flood).
* **Access report** (who saw a patient's data): the hub operator, or a user of a facility linked to the
  patient. Reading it is itself audited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synthetic.clock import JST
from synthetic.consent import ConsentState
from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal

from .accounts import Refusal, Session
from .audit import AuditRecord
from .consents import (
    AlreadyWithdrawnError,
    ConsentError,
    DatedBeforeWithdrawalError,
    DuplicateDocumentError,
    EmergencyNotAllowedError,
    UnknownPatientError,
)
from .deps import Credentials, User, is_operator, require_operator, session_for
from .index import REGIONAL_NAMESPACE, IdentityError, LinkConflictError
from .index import UnknownPatientError as UnknownRecordError
from .policy import may_know
from .records import Gateways, install_record_routes
from .service import HubServices, RefusalAudit, Refused, unknown_patient

__all__ = ["DEFAULT_BODY_LIMIT", "BodyLimit", "create_app"]

DEFAULT_BODY_LIMIT = 256 * 1024
"""Bytes a request body may have. The largest legitimate one is a consent form naming every facility of a
full world (2,000 codes of ≤ 16 characters: under 50 KiB as JSON); a quarter of a MiB leaves room and
still keeps a flood of bodies from costing the hub memory."""


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a body grows past the limit; an HTTPException, so that FastAPI's body
    parsing lets it through (it turns other exceptions into a 400) and the app's handler answers 413."""


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over ``limit`` bytes, before it is read.

    A declared ``Content-Length`` over the limit is answered at once without reading a byte; a chunked or
    lying body is counted as it arrives and refused as soon as it passes the limit. ``refused`` is awaited
    for every 413 answered here (the audit).
    """

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_BODY_LIMIT, refused: Any = None) -> None:
        self.app = app
        self.limit = limit
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            status, reason = (413, "body-too-large") if declared.isdigit() else (400, "bad-content-length")
            if self.refused is not None:
                await self.refused(scope, status, reason)
            body = json.dumps(
                {"detail": {"reason": reason, "message": f"request bodies are limited to {self.limit} bytes"}}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(413, f"request bodies are limited to {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


ID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._\-]*$")]
FacilityCode = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z]+$")]
PathID = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._\-]*$")]
PathCode = Annotated[str, Path(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    facility: FacilityCode
    user_id: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class LoginReply(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    expires: dt.datetime
    facility: str
    user_id: str
    viewer_kind: str


class Identifier(BaseModel):
    facility: str
    namespace: str
    local_id: str


class PatientReply(BaseModel):
    regional_id: str
    identifiers: list[Identifier]


class LocalRef(Strict):
    facility: FacilityCode
    local_id: ID


class LinkRequest(Strict):
    """Link ``local_id`` at ``facility``, and ``others`` (the same patient elsewhere), to one regional ID."""

    facility: FacilityCode
    local_id: ID
    regional_id: ID | None = None
    others: Annotated[list[LocalRef], Field(max_length=100)] = []


class LinkedRef(BaseModel):
    facility: str
    local_id: str
    created: bool


class LinkReply(BaseModel):
    regional_id: str
    facility: str
    local_id: str
    created: bool
    others: list[LinkedRef] = []


class UnlinkReply(BaseModel):
    unlinked: bool


class ConsentFormRequest(Strict):
    form_id: ID
    pattern: Literal["all", "all_except", "allow_list", "per_facility"]
    facilities: Annotated[list[FacilityCode], Field(max_length=2000)] = []
    signed_on: dt.date
    emergency_allowed: bool = False


class AdditionRequest(Strict):
    form_id: ID
    base_form_id: ID
    facility: FacilityCode
    signed_on: dt.date


class WithdrawalRequest(Strict):
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


class ConsentHistory(BaseModel):
    regional_id: str
    documents: list[dict[str, Any]]
    current: ConsentView | None


class EmergencyRequest(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    minutes: Annotated[int, Field(ge=1, le=1440)] = 60


class EmergencyReply(BaseModel):
    regional_id: str
    viewer_facility: str
    user_id: str
    reason: str
    start: dt.datetime  # JST, with its +09:00 offset
    end: dt.datetime


class AccessRowView(BaseModel):
    time: str
    facility: str
    user: str
    action: str
    target: str
    outcome: str
    reason: str


class AccessReport(BaseModel):
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


class Health(BaseModel):
    status: Literal["ok"]
    facilities: int
    patients: int


def _refused_json(exc: Refused) -> JSONResponse:
    return JSONResponse(
        {"detail": {"reason": exc.reason, "message": exc.message}}, exc.status, headers=exc.headers
    )


def _consent_view(state: ConsentState | None, today: dt.date) -> ConsentView | None:
    if state is None:
        return None
    form = state.form
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
        if state.withdrawal is None
        else {
            "form_id": state.withdrawal.form_id,
            "withdrawn_on": state.withdrawal.withdrawn_on.isoformat(),
            "taken_at": state.withdrawal.taken_at,
        },
        active_today=state.active(today),
    )


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


def create_app(hub: HubServices, gateways: Gateways | None = None) -> FastAPI:
    """The hub's FastAPI application over ``hub``'s stores, with the record routes over ``gateways``."""
    app = FastAPI(
        title="rhin reference hub",
        version="1",
        description="ID-Link-style regional hub: login, patient linking, consent, emergency access, "
        "audit and the record timeline and fetch. Errors are {detail: {reason, message}}.",
    )
    app.state.hub = hub
    refusals = RefusalAudit(hub.record, clock=hub.clock)
    app.state.refusals = refusals

    async def note_refusal(request: Request, status: int, reason: str) -> None:
        """401/400/413 refusals that no route audits itself (login audits its own)."""
        if request.url.path == "/auth/login" and status == 401:
            return
        address = request.client.host if request.client else ""
        target = f"{request.method} {request.url.path}"[:300]
        await refusals.note(("", ""), f"http-{status}", reason, address, target)

    async def body_refused(scope: Scope, status: int, reason: str) -> None:
        await note_refusal(Request(scope), status, reason)

    app.add_middleware(BodyLimit, limit=DEFAULT_BODY_LIMIT, refused=body_refused)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        if exc.status == 401:  # a missing or bad token: no route got to audit it (400s from routes do)
            await note_refusal(request, exc.status, exc.audit_reason)
        return _refused_json(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await _audit_refused_write(hub, request, errors)
        else:
            await note_refusal(request, 422, "invalid-request")
        return JSONResponse(
            {
                "detail": {"reason": "invalid-request", "message": "request does not match the schema"},
                "errors": errors,
            },
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large", 400: "bad-request"}.get(
            exc.status_code, "http-error"
        )
        if exc.status_code in (400, 413):
            await note_refusal(request, exc.status_code, reason)
        return JSONResponse(
            {"detail": {"reason": reason, "message": str(exc.detail)}}, exc.status_code, headers=exc.headers
        )

    # ----------------------------------------------------------------------------------- health / auth

    @app.get("/health", tags=["hub"])
    async def health() -> Health:
        return Health(status="ok", facilities=len(hub.facilities), patients=hub.index.count())

    @app.post(
        "/auth/login",
        tags=["auth"],
        responses={
            401: {"description": "invalid credentials"},
            423: {"description": "locked"},
            429: {"description": "retry later"},
        },
    )
    async def login(body: LoginRequest, request: Request) -> LoginReply:
        now = hub.now()
        address = request.client.host if request.client else ""
        # A user the world enrols but who never logged in is hashed and stored by this login, if right
        # (see facilities.py); the enrolment is passed in so that it costs one hash, like any attempt.
        enrolment = hub.facilities.enrolment(body.facility, body.user_id)
        result = await run_in_threadpool(
            lambda: hub.accounts.login(
                body.facility, body.user_id, body.password, now, address=address, enrolment=enrolment
            )
        )
        if isinstance(result, Refusal):
            await hub.record(
                (body.facility, body.user_id),
                "login",
                "failure",
                reason=result.reason,
                details={"address": address},
            )
            wait = str(max(1, int(result.retry_after.total_seconds() + 0.999))) if result.retry_after else "1"
            if result.reason == "locked":
                raise Refused(423, "locked", "account locked after repeated failures", {"Retry-After": wait})
            if result.reason == "retry-later":
                raise Refused(
                    429, "retry-later", "too many failures: wait before retrying", {"Retry-After": wait}
                )
            raise Refused(401, "invalid-credentials", "facility, user or password is wrong")
        await hub.record(result, "login", "success", details={"viewer_kind": result.viewer_kind})
        return LoginReply(
            token=result.token,
            expires=result.expires,
            facility=result.facility,
            user_id=result.user_id,
            viewer_kind=result.viewer_kind,
        )

    @app.post("/auth/logout", status_code=204, tags=["auth"])
    async def logout(user: User, creds: Credentials) -> Response:
        assert creds is not None  # session() passed
        await run_in_threadpool(hub.accounts.logout, creds.credentials)
        await hub.record(user, "logout", "success")
        return Response(status_code=204)

    # ----------------------------------------------------------------------------------- patients / links

    @app.get("/patients/{regional_id}", tags=["patients"])
    async def patient(regional_id: PathID, user: User) -> PatientReply:
        try:
            hub.require_known_to(user.facility, regional_id)
        except Refused as exc:
            await hub.record(user, "patient-lookup", "failure", patient=regional_id, reason=exc.audit_reason)
            raise
        ids = []
        for namespace, local_id in hub.index.identifiers(REGIONAL_NAMESPACE, regional_id)[1:]:
            domain = hub.index.directory.get(namespace)
            ids.append(
                Identifier(
                    facility=(domain.facility or "") if domain else "", namespace=namespace, local_id=local_id
                )
            )
        await hub.record(user, "patient-lookup", "success", patient=regional_id)
        return PatientReply(regional_id=regional_id, identifiers=ids)

    def _require_discloser(user: Session, action: str) -> None:
        if not hub.facility(user.facility).disclosing:
            raise Refused(403, "not-disclosing", f"only a disclosing facility's user may {action}")

    @app.post("/links", tags=["patients"], responses={403: {}, 404: {}, 409: {}})
    async def link(body: LinkRequest, user: User) -> LinkReply:
        refs = [LocalRef(facility=body.facility, local_id=body.local_id), *body.others]
        target = ",".join(f"{r.facility}|{r.local_id}" for r in refs)
        try:
            _require_discloser(user, "link patient IDs")
            if (
                body.regional_id is not None
                and hub.index.known(REGIONAL_NAMESPACE, body.regional_id)
                and user.facility not in hub.linked_facilities(body.regional_id)
            ):
                # Joining IDs to an existing patient takes a link to that patient already: otherwise a
                # facility could link a record of its own to anyone and gain a linked facility's access.
                raise unknown_patient(body.regional_id, "not-linked")
            pairs: list[tuple[str, str]] = []
            created: list[bool] = []
            for ref in refs:
                namespace = hub.facility(ref.facility).namespace
                before = hub.index.get(namespace, ref.local_id)
                if before is None:
                    raise Refused(
                        404, "unknown-local-id", f"{ref.local_id} at {ref.facility} was never fed (ITI-8)"
                    )
                pairs.append((namespace, ref.local_id))
                created.append(before.regional_id is None)
            try:
                regional = await run_in_threadpool(hub.index.link_many, pairs, body.regional_id)
            except LinkConflictError as exc:
                raise Refused(409, "link-conflict", str(exc)) from exc
            except UnknownRecordError as exc:
                raise Refused(404, "unknown-patient", str(exc)) from exc
        except Refused as exc:
            await hub.record(
                user,
                "link",
                "failure",
                target=target,
                reason=exc.audit_reason,
                patient=body.regional_id or "",
            )
            raise
        await hub.record(
            user, "link", "success", patient=regional, target=target, details={"created": created}
        )
        return LinkReply(
            regional_id=regional,
            facility=body.facility,
            local_id=body.local_id,
            created=created[0],
            others=[
                LinkedRef(facility=r.facility, local_id=r.local_id, created=c)
                for r, c in zip(body.others, created[1:], strict=True)
            ],
        )

    @app.delete("/links/{facility}/{local_id}", tags=["patients"])
    async def unlink(facility: PathCode, local_id: PathID, user: User) -> UnlinkReply:
        target = f"{facility}|{local_id}"
        try:
            _require_discloser(user, "unlink patient IDs")
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

    # ----------------------------------------------------------------------------------- consent

    def _may_administer(user: Session, regional_id: str, *, write: bool = True) -> None:
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

    def _known_facilities(codes: list[str]) -> None:
        unknown = sorted({c for c in codes if hub.facilities.get(c) is None})
        if unknown:
            raise Refused(422, "unknown-facility", f"not facilities of the network: {', '.join(unknown[:5])}")

    async def _consent_change(
        user: Session, regional_id: str, action: str, form_id: str, dated: dt.date, apply: Any
    ) -> ConsentState:
        try:
            _may_administer(user, regional_id)
            # A paper cannot be signed tomorrow: a future date is a typing error (2099 for 2019) that would
            # make the document current and block a withdrawal dated today.
            if dated > hub.local_now().date():
                raise Refused(422, "dated-in-the-future", f"{form_id} is dated {dated}, after today")
            try:
                state: ConsentState = await run_in_threadpool(apply)
            except DuplicateDocumentError as exc:
                raise Refused(409, "duplicate-document", f"document {exc} is already registered") from exc
            except AlreadyWithdrawnError as exc:
                raise Refused(409, "already-withdrawn", f"form {exc} is already withdrawn") from exc
            except UnknownPatientError as exc:
                raise Refused(404, "no-consent", f"no consent form registered for {exc}") from exc
            except DatedBeforeWithdrawalError as exc:
                raise Refused(422, "dated-on-or-before-withdrawal", str(exc)) from exc
            except ConsentError as exc:
                raise Refused(422, type(exc).__name__, str(exc)) from exc
        except Refused as exc:
            await hub.record(
                user, action, "failure", patient=regional_id, target=form_id, reason=exc.audit_reason
            )
            raise
        await hub.record(user, action, "success", patient=regional_id, target=form_id)
        return state

    @app.post(
        "/patients/{regional_id}/consents",
        status_code=201,
        tags=["consent"],
        responses={403: {}, 404: {}, 409: {}, 422: {}},
    )
    async def register_consent(regional_id: PathID, body: ConsentFormRequest, user: User) -> ConsentReply:
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
            _known_facilities(body.facilities)
            return hub.consents.register(regional_id, form)

        state = await _consent_change(
            user, regional_id, "consent-register", body.form_id, body.signed_on, apply
        )
        return ConsentReply(regional_id=regional_id, current=_consent_view(state, hub.local_now().date()))

    @app.post(
        "/patients/{regional_id}/consents/additions",
        status_code=201,
        tags=["consent"],
        responses={403: {}, 404: {}, 409: {}, 422: {}},
    )
    async def add_facility(regional_id: PathID, body: AdditionRequest, user: User) -> ConsentReply:
        addition = ConsentAddition(
            body.form_id, -1, body.base_form_id, body.facility, body.signed_on, user.facility
        )

        def apply() -> ConsentState:
            _known_facilities([body.facility])
            return hub.consents.add_facility(regional_id, addition)

        state = await _consent_change(user, regional_id, "consent-add", body.form_id, body.signed_on, apply)
        return ConsentReply(regional_id=regional_id, current=_consent_view(state, hub.local_now().date()))

    @app.post(
        "/patients/{regional_id}/consents/withdrawals",
        status_code=201,
        tags=["consent"],
        responses={403: {}, 404: {}, 409: {}, 422: {}},
    )
    async def withdraw(regional_id: PathID, body: WithdrawalRequest, user: User) -> ConsentReply:
        withdrawal = ConsentWithdrawal(body.form_id, -1, body.base_form_id, body.withdrawn_on, user.facility)
        state = await _consent_change(
            user,
            regional_id,
            "consent-withdraw",
            body.form_id,
            body.withdrawn_on,
            lambda: hub.consents.withdraw(regional_id, withdrawal),
        )
        return ConsentReply(regional_id=regional_id, current=_consent_view(state, hub.local_now().date()))

    @app.get("/patients/{regional_id}/consents", tags=["consent"], responses={403: {}, 404: {}})
    async def consent_history(regional_id: PathID, user: User) -> ConsentHistory:
        try:
            _may_administer(user, regional_id, write=False)
        except Refused as exc:
            await hub.record(user, "consent-read", "failure", patient=regional_id, reason=exc.audit_reason)
            raise
        docs = hub.consents.history(regional_id)
        await hub.record(user, "consent-read", "success", patient=regional_id)
        return ConsentHistory(
            regional_id=regional_id,
            documents=[{"seq": d.seq, "kind": d.kind, **_document_json(d.document)} for d in docs],
            current=_consent_view(hub.consents.consent(regional_id), hub.local_now().date()),
        )

    # ----------------------------------------------------------------------------------- emergency

    @app.post(
        "/patients/{regional_id}/emergency", status_code=201, tags=["consent"], responses={403: {}, 404: {}}
    )
    async def emergency(regional_id: PathID, body: EmergencyRequest, user: User) -> EmergencyReply:
        start = hub.local_now().replace(microsecond=0)
        end = start + dt.timedelta(minutes=body.minutes)
        try:
            state, _ = hub.patient(regional_id, start.date())
            known = may_know(state, user.facility, start)
            try:
                grant = await run_in_threadpool(
                    hub.consents.grant_emergency,
                    regional_id,
                    user.facility,
                    user.user_id,
                    body.reason,
                    start,
                    end,
                )
            except UnknownPatientError as exc:
                if not known:
                    raise unknown_patient(regional_id, "no-consent") from exc
                raise Refused(403, "no-consent", f"no consent form registered for {exc}") from exc
            except EmergencyNotAllowedError as exc:
                if not known:
                    raise unknown_patient(regional_id, "emergency-not-allowed") from exc
                raise Refused(403, "emergency-not-allowed", str(exc)) from exc
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

    # ----------------------------------------------------------------------------------- audit

    @app.get("/patients/{regional_id}/access-report", tags=["audit"], responses={403: {}, 404: {}})
    async def access_report(regional_id: PathID, creds: Credentials) -> AccessReport:
        who: tuple[str, str]
        if is_operator(hub, creds):
            who = ("hub", "operator")
            hub.require_patient(regional_id)
        else:
            user = session_for(hub, creds)
            who = (user.facility, user.user_id)
            try:
                state = hub.require_known_to(user.facility, regional_id)
                if user.facility not in state.linked_facilities:
                    raise Refused(
                        403, "not-linked", "only the hub operator or a facility linked to the patient"
                    )
            except Refused as exc:
                await hub.record(
                    user, "access-report", "failure", patient=regional_id, reason=exc.audit_reason
                )
                raise
        rows = hub.audit_log.access_report(regional_id)
        await hub.record(who, "access-report", "success", patient=regional_id)
        return AccessReport(
            regional_id=regional_id, rows=[AccessRowView(**dataclasses.asdict(r)) for r in rows]
        )

    @app.get("/audit", tags=["audit"], dependencies=[Depends(require_operator)], responses={401: {}})
    async def audit(
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

    @app.get("/audit/verify", tags=["audit"], dependencies=[Depends(require_operator)], responses={401: {}})
    async def verify() -> VerifyReply:
        # The same code as `rhin audit verify` (offline): the keyed chain and the checkpoint file; an intact
        # log's verified head is then anchored by a checkpoint (AuditLog.verification). A thread, so a long
        # log does not stall the loop (writers wait for the store's lock as for any reader).
        found = await asyncio.to_thread(hub.audit_log.verification, anchor=True)
        return VerifyReply(**found.as_json())

    install_record_routes(app, hub, gateways)
    return app


async def _audit_refused_write(hub: HubServices, request: Request, errors: list[dict[str, Any]]) -> None:
    """A write refused by the schema (422) is still an attempt to change something: audit who tried what.

    Action ``rejected-request``, outcome ``failure``, reason ``invalid-request``, target ``METHOD path``,
    patient the path's regional ID if any, details the offending fields (their locations, never their
    values: a malformed body may carry a password). The actor is the bearer token's user when it is a live
    session, else ``("", "")``: the schema ran before any login could be checked.
    """
    who: Session | tuple[str, str] = ("", "")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        found = hub.accounts.session(token.strip(), hub.now())
        if found is not None:
            who = found
    fields = sorted({".".join(str(part) for part in e["loc"]) for e in errors})
    await hub.record(
        who,
        "rejected-request",
        "failure",
        patient=str(request.path_params.get("regional_id", ""))[:64],
        target=f"{request.method} {request.url.path}"[:300],
        reason="invalid-request",
        details={"fields": ",".join(fields)[:1000]},
    )


def _jst(naive: dt.datetime) -> dt.datetime:
    """The consent store keeps naive JST (what the policy compares); answers carry the +09:00 offset."""
    return naive.replace(tzinfo=JST)


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
