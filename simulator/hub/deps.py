"""FastAPI dependencies shared by the hub's routes: the services, the gateways, the logged-in user, the
operator.

Module-level (not closures inside ``create_app``) so that annotations resolve: the app carries its
:class:`~.service.HubServices` in ``app.state.hub`` and its :class:`~.records.Gateways` in
``app.state.gateways`` (:func:`.api.create_app` sets both).

Every dependency is ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the thread pool,
so each request would first need one of anyio's 40 thread tokens — and a login burst holds them all while
its logins wait for the password worker (found by the SimPy model's validation: timeline p95 rose to
seconds in login bursts while its median stayed 25 ms). ``tests/test_hub_threads.py`` checks both.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .accounts import Session
from .records import Gateways
from .service import HubServices, Refused

__all__ = [
    "Credentials",
    "Hub",
    "HubGateways",
    "User",
    "current_session",
    "gateways_of",
    "hub_of",
    "is_operator",
    "require_operator",
]

bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def hub_of(request: Request) -> HubServices:
    hub: HubServices = request.app.state.hub
    return hub


Hub = Annotated[HubServices, Depends(hub_of)]


async def gateways_of(request: Request) -> Gateways:
    gateways: Gateways = request.app.state.gateways
    return gateways


HubGateways = Annotated[Gateways, Depends(gateways_of)]


def is_operator(hub: HubServices, creds: HTTPAuthorizationCredentials | None) -> bool:
    return creds is not None and hmac.compare_digest(creds.credentials.encode(), hub.admin_token.encode())


def session_for(hub: HubServices, creds: HTTPAuthorizationCredentials | None) -> Session:
    """The live session for the bearer token, or a 401."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Refused(401, "no-token", "log in first (POST /auth/login)", {"WWW-Authenticate": "Bearer"})
    found = hub.accounts.session(creds.credentials, hub.now())
    if found is None:
        raise Refused(401, "invalid-token", "token unknown or expired", {"WWW-Authenticate": "Bearer"})
    return found


async def current_session(hub: Hub, creds: Credentials) -> Session:
    return session_for(hub, creds)


async def require_operator(hub: Hub, creds: Credentials) -> None:
    if not is_operator(hub, creds):
        raise Refused(
            401, "not-operator", "the hub operator's token is required", {"WWW-Authenticate": "Bearer"}
        )


User = Annotated[Session, Depends(current_session)]
