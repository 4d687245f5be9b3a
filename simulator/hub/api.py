"""The hub's HTTP API (FastAPI; OpenAPI at ``/openapi.json``): the app, and what every route shares.

The routes are :mod:`.routes`' routers, one per concern (auth, patients and links, consent, emergency,
audit, records); each module's docstring states its choices where the sources leave room, and each choice
is tested. Every route authenticates with a bearer token from ``POST /auth/login`` (facility + user +
password, the seed network's login), except the audit routes, which take the hub operator's token
(``admin.token`` in the hub's data directory). Every state change and every refusal of one is audited
before the answer is sent. Shared by all of them, and so here:

* **Who may know a patient exists**: every route that names a regional ID answers a facility that is not
  linked to the patient, not within the consent in force and holds no live grant under it exactly as for
  an ID that does not exist (404 ``unknown-patient``); the audit record says ``not-related``
  (:meth:`.service.HubServices.require_known_to`).
* **Errors** are ``{"detail": {"reason", "message"}}``; a request that does not match the schema is 422
  ``invalid-request`` with ``errors`` (their locations, never the values), and a refused write is audited.
* **Request bodies** are limited before they are read (:class:`BodyLimit`, 413 ``body-too-large``): the
  hub takes no document uploads (records stay behind the gateways), so one limit serves every route.
* **Refusals before any route logic** — 401 for a missing, malformed or unknown token, 413, 400 — are
  audited through :class:`.service.RefusalAudit` (aggregated in a flood).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .accounts import Session
from .records import Gateways
from .routes import ROUTERS
from .routes.auth import LOGIN_QUEUE
from .service import HubServices, RefusalAudit, Refused

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


def _refused_json(exc: Refused) -> JSONResponse:
    return JSONResponse(
        {"detail": {"reason": exc.reason, "message": exc.message}}, exc.status, headers=exc.headers
    )


def create_app(
    hub: HubServices,
    gateways: Gateways | None = None,
    routers: Sequence[APIRouter] = (),
    login_queue: int = LOGIN_QUEUE,
) -> FastAPI:
    """The hub's FastAPI application over ``hub``'s stores, its record routes over ``gateways``: every
    router of :data:`.routes.ROUTERS`, then ``routers`` (one more concern), behind the body limit and the
    error answers every route shares. ``login_queue``: logins that may wait for the password check
    (:data:`.routes.auth.LOGIN_QUEUE`)."""
    app = FastAPI(
        title="rhin reference hub",
        version="1",
        description="ID-Link-style regional hub: login, patient linking, consent, emergency access, "
        "audit and the record timeline and fetch. Errors are {detail: {reason, message}}.",
    )
    app.state.hub = hub
    app.state.gateways = gateways or Gateways({})
    app.state.refusals = RefusalAudit(hub.record, clock=hub.clock)
    app.state.login_queue = login_queue
    app.add_middleware(BodyLimit, limit=DEFAULT_BODY_LIMIT, refused=_body_refused)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    for router in (*ROUTERS, *routers):
        app.include_router(router)
    return app


# ------------------------------------------------------------------------------------------- error answers


async def _note_refusal(request: Request, status: int, reason: str) -> None:
    """401/400/413 refusals that no route audits itself (login audits its own)."""
    if request.url.path == "/auth/login" and status == 401:
        return
    address = request.client.host if request.client else ""
    target = f"{request.method} {request.url.path}"[:300]
    refusals: RefusalAudit = request.app.state.refusals
    await refusals.note(("", ""), f"http-{status}", reason, address, target)


async def _body_refused(scope: Scope, status: int, reason: str) -> None:
    await _note_refusal(Request(scope), status, reason)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    if exc.status == 401:  # a missing or bad token: no route got to audit it (400s from routes do)
        await _note_refusal(request, exc.status, exc.audit_reason)
    return _refused_json(exc)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        await _audit_refused_write(request.app.state.hub, request, errors)
    else:
        await _note_refusal(request, 422, "invalid-request")
    return JSONResponse(
        {
            "detail": {"reason": "invalid-request", "message": "request does not match the schema"},
            "errors": errors,
        },
        422,
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reason = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large", 400: "bad-request"}.get(
        exc.status_code, "http-error"
    )
    if exc.status_code in (400, 413):
        await _note_refusal(request, exc.status_code, reason)
    return JSONResponse(
        {"detail": {"reason": reason, "message": str(exc.detail)}}, exc.status_code, headers=exc.headers
    )


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
