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
from fastapi.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from simulator.pki import facility_of

from ..api import DEFAULT_BODY_LIMIT, BodyLimit
from ..mllp import _observed
from ..service import HubServices
from .soap import SOAP_MEDIA, SoapFault, fault_envelope, read_envelope, reply_envelope
from .transactions import V3Hub
from .wsdl import ACTORS, wsdl

__all__ = ["PATHS", "CertifiedHttpTools", "create_soap_app", "observe_handshakes", "router"]

PATHS: Final = {"pix-feed": "/pixv3/feed", "pix-query": "/pixv3/query", "pdq": "/pdqv3"}
"""Endpoint key (:data:`.wsdl.ACTORS`) → path."""
_MEDIA: Final = f"{SOAP_MEDIA}; charset=utf-8"
_FACILITY_KEY: Final = "rhin_facility"
log = logging.getLogger(__name__)


class CertifiedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the ASGI ``tls`` extension to each request's scope with the
    verified client certificate's subject (``client_cert_name``) and the facility it speaks for."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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


def _peer(request: Request) -> tuple[bool, str | None]:
    """(over TLS?, the certificate's facility) from the ``tls`` extension :class:`CertifiedHttpTools` adds."""
    tls = (request.scope.get("extensions") or {}).get("tls")
    if tls is None:
        return False, None
    return True, tls.get(_FACILITY_KEY)


def router(hub: V3Hub, *, require_tls: bool = True) -> APIRouter:
    """The three v3 endpoints over ``hub``. ``require_tls``: a request that did not come over TLS with a
    client certificate is refused with a Sender fault (403) — the JSON API's plain port must not become a way
    round the certificate."""
    api = APIRouter()
    for actor, path in PATHS.items():
        actions = frozenset(f"urn:hl7-org:v3:{op}" for op in ACTORS[actor][1])
        # Plain Starlette routes: the endpoints read the body themselves, so FastAPI's parameter machinery
        # would only cost time (~15 % of an ITI-45's server CPU).
        api.add_route(path, _post(hub, actions, require_tls), methods=["POST"], include_in_schema=False)
        api.add_route(path, _get(actor), methods=["GET"], include_in_schema=False)
    return api


def _post(hub: V3Hub, actions: frozenset[str], require_tls: bool) -> Any:
    async def endpoint(request: Request) -> Response:
        tls, facility = _peer(request)
        try:
            if require_tls and not tls:
                raise SoapFault(
                    "Sender", "the v3 endpoints take HTTPS with a facility certificate", status=403
                )
            soap = read_envelope(request.headers.get("content-type", ""), await request.body(), actions)
        except SoapFault as fault:
            return Response(fault_envelope(fault), status_code=fault.status, media_type=_MEDIA)
        try:
            response, payload = await hub.handle(soap, tls, facility)
        except Exception:  # a bug must still answer in SOAP, and say nothing of the hub's insides
            log.exception("v3 %s failed", soap.action)
            internal = SoapFault("Receiver", "internal error", status=500, relates_to=soap.message_id)
            return Response(fault_envelope(internal), status_code=500, media_type=_MEDIA)
        return Response(reply_envelope(response, payload, soap.message_id), media_type=_MEDIA)

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


def create_soap_app(services: HubServices, *, require_tls: bool = True) -> FastAPI:
    """The SOAP listener's app: the v3 router over the hub's index, audit and clock, bodies bounded."""
    app = FastAPI(title="rhin hub PIXv3/PDQv3", docs_url=None, redoc_url=None, openapi_url=None)
    hub = V3Hub(services.index, audit=services.audit, clock=services.clock)
    app.state.v3 = hub
    app.include_router(router(hub, require_tls=require_tls))
    app.add_middleware(BodyLimit, limit=DEFAULT_BODY_LIMIT)
    return app
