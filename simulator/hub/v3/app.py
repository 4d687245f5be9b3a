"""The v3 endpoints over HTTP: one FastAPI router (:func:`router`), the app that serves it, and the TLS
protocol that tells the router which facility's certificate a request came with.

**Sender authentication (the choice).** The hub's JSON API listens on plain HTTP (its callers carry bearer
tokens), so the SOAP endpoints get **their own listener** (``soap`` in :func:`~..server.run_hub`'s addresses):
HTTPS with the network CA's client certificates required, as MLLP over TLS — the same ``pki/`` files, the
same rule that the facility a message names (``sender/device/id``, :mod:`.messages`) must be the certificate's
subject CN (:func:`simulator.pki.facility_of`), else AR. A connection without a certificate from the network
CA never completes its handshake, and the failure is audited (``rejected-connection``, transport
``soap-tls``: :func:`observe_handshakes`). With ``plain_mllp`` (a hub under test without TLS) the SOAP
listener is plain HTTP too, and ``sender/device/id`` is trusted as sent, like MSH-4 on plain MLLP.

Paths: ``/pixv3/feed`` (PIX Manager, ITI-44), ``/pixv3/query`` (PIX Manager, ITI-45), ``/pdqv3`` (PDQ
Supplier, ITI-47); each answers ``GET ?wsdl`` with its WSDL. Bodies are bounded before they are read by the
hub's :class:`~..api.BodyLimit` (413, HTTP-level: the SOAP layer never sees such a body); a body that is
read is parsed only by :mod:`.xmlsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from simulator.pki import facility_of

from ..api import DEFAULT_BODY_LIMIT, BodyLimit
from ..mllp import _observed
from ..service import HubServices
from .soap import SOAP_MEDIA, SoapFault, fault_envelope, read_envelope, reply_envelope
from .transactions import V3Hub
from .wsdl import ACTORS, wsdl

__all__ = ["PATHS", "CertifiedHttpTools", "SoapEndpoints", "create_soap_app", "observe_handshakes", "router"]

PATHS: Final = {"pix-feed": "/pixv3/feed", "pix-query": "/pixv3/query", "pdq": "/pdqv3"}
"""Endpoint key (:data:`.wsdl.ACTORS`) → path."""
_MEDIA: Final = f"{SOAP_MEDIA}; charset=utf-8"
_MEDIA_HEADER: Final = _MEDIA.encode()
_FACILITY_KEY: Final = "rhin_facility"
log = logging.getLogger(__name__)


class _Corked:
    """A connection's transport whose writes within one turn of the loop go out as one write.

    uvicorn writes a reply's head and its body separately; over TLS that is two TLS records and two
    ``send`` calls per reply, which cost the hub as much CPU as parsing the request (measured with py-spy
    under bench_pixv3). Joined, a reply is one record and one call, as the MLLP listener's replies are.
    ``close`` sends what is pending first; everything else is the transport's own.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CertifiedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the ASGI ``tls`` extension to each request's scope with the
    verified client certificate's subject (``client_cert_name``) and the facility it speaks for, its
    replies written through :class:`_Corked`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Corked(transport, self.loop)  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        self._peer_facility = facility_of(ssl_object.getpeercert()) if ssl_object is not None else None
        self._tls = ssl_object is not None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls:
            name = f"CN={self._peer_facility}" if self._peer_facility else None
            self.scope["extensions"] = {
                "tls": {
                    "client_cert_name": name,
                    _FACILITY_KEY: self._peer_facility,
                    "client_cert_error": None,
                }
            }


def _peer(scope: Scope) -> tuple[bool, str | None]:
    """(over TLS?, the certificate's facility) from the ``tls`` extension :class:`CertifiedHttpTools` adds."""
    tls = (scope.get("extensions") or {}).get("tls")
    if tls is None:
        return False, None
    return True, tls.get(_FACILITY_KEY)


class SoapEndpoints:
    """Pure ASGI: a POST to one of :data:`PATHS` is answered here; every other request (``GET ?wsdl``, other
    methods, other paths) goes on to ``fallback``, the FastAPI app with the same routes, so 404/405 and the
    WSDLs are FastAPI's as before.

    Why not a route: FastAPI's middleware stack and router (exception middlewares, telemetry, route matching,
    Request and Response objects) cost about as much CPU per ITI-45 as the transaction itself, and a SOAP
    endpoint needs none of it — it reads the body, answers SOAP and catches its own errors. The reply is the
    same bytes with the same headers (content-length, content-type) as a Starlette Response.
    """

    def __init__(self, hub: V3Hub, fallback: ASGIApp, *, require_tls: bool = True) -> None:
        self.hub, self.fallback, self.require_tls = hub, fallback, require_tls
        self._actions = {path: _actions(actor) for actor, path in PATHS.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        actions = self._actions.get(scope["path"]) if scope["type"] == "http" else None
        if actions is None or scope["method"] != "POST":
            await self.fallback(scope, receive, send)
            return
        chunks = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:  # the body limit's 413, answered as the FastAPI app answers it
            await (await http_exception_handler(Request(scope), exc))(scope, receive, send)
            return
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        data = b"".join(chunks)
        status, body = await _answer(
            self.hub, self.require_tls, scope, content_type.decode("latin-1"), data, actions
        )
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", _MEDIA_HEADER)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _answer(hub: V3Hub, require_tls: bool, scope: Scope, content_type: str, data: bytes,
                  actions: frozenset[str]) -> tuple[int, bytes]:  # fmt: skip
    """(HTTP status, SOAP envelope) for one POSTed body."""
    tls, facility = _peer(scope)
    try:
        if require_tls and not tls:
            raise SoapFault("Sender", "the v3 endpoints take HTTPS with a facility certificate", status=403)
        soap = read_envelope(content_type, data, actions)
    except SoapFault as fault:
        return fault.status, fault_envelope(fault)
    try:
        response, payload = await hub.handle(soap, tls, facility)
        return 200, reply_envelope(response, payload, soap.message_id)
    except Exception:  # a bug must still answer in SOAP, and say nothing of the hub's insides
        log.exception("v3 %s failed", soap.action)
        internal = SoapFault("Receiver", "internal error", status=500, relates_to=soap.message_id)
        return 500, fault_envelope(internal)


def _actions(actor: str) -> frozenset[str]:
    return frozenset(f"urn:hl7-org:v3:{op}" for op in ACTORS[actor][1])


def router(hub: V3Hub, *, require_tls: bool = True) -> APIRouter:
    """The three v3 endpoints over ``hub`` as FastAPI routes (:func:`create_soap_app` puts
    :class:`SoapEndpoints` in front of them for the POSTs). ``require_tls``: a request that did not come over
    TLS with a client certificate is refused with a Sender fault (403) — the JSON API's plain port must not
    become a way round the certificate."""
    api = APIRouter()
    for actor, path in PATHS.items():
        api.add_route(
            path, _post(hub, _actions(actor), require_tls), methods=["POST"], include_in_schema=False
        )
        api.add_route(path, _get(actor), methods=["GET"], include_in_schema=False)
    return api


def _post(hub: V3Hub, actions: frozenset[str], require_tls: bool) -> Any:
    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        data = await request.body()
        status, body = await _answer(hub, require_tls, request.scope, content_type, data, actions)
        return Response(body, status_code=status, media_type=_MEDIA)

    return endpoint


def _get(actor: str) -> Any:
    async def endpoint(request: Request) -> Response:
        if "wsdl" not in request.query_params:
            return Response(b"GET serves only ?wsdl\n", status_code=404, media_type="text/plain")
        address = str(request.url.replace(query=""))
        return Response(wsdl(actor, address), media_type="text/xml; charset=utf-8")

    return endpoint


def observe_handshakes(
    ctx: ssl.SSLContext, refused: Callable[[str], Coroutine[Any, Any, None]]
) -> ssl.SSLContext:
    """``ctx`` reporting every failed TLS handshake (no certificate, another CA's, plain HTTP) to ``refused``
    (the hub audits ``rejected-connection``, transport ``soap-tls``), as MLLP's listener does: uvicorn drops
    such connections before any request exists. The reports run as tasks on the running loop."""
    tasks: set[asyncio.Task[None]] = set()

    def failed(reason: str) -> None:
        log.warning("SOAP: TLS handshake refused: %s", reason)
        task = asyncio.get_running_loop().create_task(refused(f"TLS handshake failed: {reason}"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return _observed(ctx, failed)


def create_soap_app(services: HubServices, *, require_tls: bool = True) -> ASGIApp:
    """The SOAP listener's app: :class:`SoapEndpoints` over the hub's index, audit and clock in front of the
    FastAPI app with the same routes (WSDLs, 404, 405), bodies bounded before either reads them."""
    app = FastAPI(title="rhin hub PIXv3/PDQv3", docs_url=None, redoc_url=None, openapi_url=None)
    hub = V3Hub(services.index, audit=services.audit, clock=services.clock)
    app.state.v3 = hub
    app.include_router(router(hub, require_tls=require_tls))
    return BodyLimit(SoapEndpoints(hub, app, require_tls=require_tls), limit=DEFAULT_BODY_LIMIT)
