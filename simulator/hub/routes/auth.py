"""``/health``, ``POST /auth/login`` and ``/auth/logout``: who the caller is, and whether the hub is up.

Login failures answer 401 ``invalid-credentials`` for an unknown user and a wrong password alike (no user
enumeration: same body, one scrypt either way, throttled alike — :mod:`..accounts`); the audit record keeps
the true reason and the source address. ``retry-later`` is 429 and ``locked`` 423, both with
``Retry-After``.

A login waits for the hub's password worker (one process: hashes run one at a time) in a thread of its
own limiter (:data:`LOGIN_THREADS`), not in anyio's shared pool: a burst of logins then queues for those
few threads without taking the tokens every other request's thread work needs. At most
:data:`LOGIN_QUEUE` logins wait for a thread: one more is answered 503 ``busy`` at once, with
``Retry-After: 1``, and audited as the hub audits every flood (:class:`..service.RefusalAudit`: the first
``busy`` failure per address and 10 s in full, the rest counted in a ``refusals-summary``) — a flood of
logins otherwise holds one request per login without end, each waiting its place × ~40 ms of scrypt.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..accounts import Refusal
from ..deps import Credentials, Hub, User
from ..service import RefusalAudit, Refused
from .fields import FacilityCode, StrictBody

__all__ = [
    "LOGIN_QUEUE",
    "LOGIN_THREADS",
    "HealthReply",
    "LoginReply",
    "LoginRequest",
    "login_threads",
    "router",
]

router = APIRouter()

LOGIN_THREADS: Final = 4
"""Logins in threads at once: more than the one password worker can hash, so the next login's own database
work overlaps a hash; a burst's other logins wait for a thread without holding one."""


LOGIN_QUEUE: Final = 1024
"""Logins waiting for a login thread at most (the default of ``create_app``'s ``login_queue``): ~40 s of
hashing at ~40 ms each, far beyond any realistic burst (a login of a ×400 load run waited at most ~540
hashes)."""


def login_threads(request: Request) -> anyio.CapacityLimiter:
    """The app's login limiter (made on first use, in the app's event loop)."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "login_threads", None)
    if limiter is None:
        limiter = request.app.state.login_threads = anyio.CapacityLimiter(LOGIN_THREADS)
    return limiter


class LoginRequest(StrictBody):
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


class HealthReply(BaseModel):
    status: Literal["ok"]
    facilities: int
    patients: int


@router.get("/health", tags=["hub"])
async def health(hub: Hub) -> HealthReply:
    return HealthReply(status="ok", facilities=len(hub.facilities), patients=hub.index.count())


@router.post(
    "/auth/login",
    tags=["auth"],
    responses={
        401: {"description": "invalid credentials"},
        423: {"description": "locked"},
        429: {"description": "retry later"},
        503: {"description": "too many logins waiting: retry after the Retry-After seconds"},
    },
)
async def login(body: LoginRequest, request: Request, hub: Hub) -> LoginReply:
    now = hub.now()
    address = request.client.host if request.client else ""
    limiter = login_threads(request)
    if limiter.statistics().tasks_waiting >= request.app.state.login_queue:
        refusals: RefusalAudit = request.app.state.refusals  # a flood: counted per address and window
        await refusals.note((body.facility, body.user_id), "login", "busy", address, "")
        raise Refused(503, "busy", "too many logins waiting for the password check", {"Retry-After": "1"})
    # A user the world enrols but who never logged in is hashed and stored by this login, if right
    # (see facilities.py); the enrolment is passed in so that it costs one hash, like any attempt.
    enrolment = hub.facilities.enrolment(body.facility, body.user_id)
    result = await anyio.to_thread.run_sync(
        lambda: hub.accounts.login(
            body.facility, body.user_id, body.password, now, address=address, enrolment=enrolment
        ),
        limiter=limiter,
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


@router.post("/auth/logout", status_code=204, tags=["auth"])
async def logout(user: User, creds: Credentials, hub: Hub) -> Response:
    assert creds is not None  # session() passed
    await run_in_threadpool(hub.accounts.logout, creds.credentials)
    await hub.record(user, "logout", "success")
    return Response(status_code=204)
