"""Faults a test can switch on a running gateway, and the shard's admin HTTP API that switches them.

Modes (``POST /faults/{code}`` with ``{"mode": ..., "ms": ...}``):

* ``down`` — the gateway's listener is closed: new connections are refused (idle keep-alive connections
  are closed, requests in flight finish). Its port stays reserved for it.
* ``slow`` — ``ms`` milliseconds are added before the first byte of every response (``ms`` = 0 clears).
* ``error`` — every authenticated endpoint answers 503 (``GET /health`` still answers).
* ``up`` — clears all three; a ``down`` gateway listens again on the same port before the reply is sent.

``slow`` and ``error`` combine; each reply is the gateway's whole fault state. ``GET /faults`` returns all
of them. The admin API wants ``Authorization: Bearer <admin token>`` (``--admin-token`` or the
``RHIN_GATEWAY_ADMIN_TOKEN`` environment variable); without a configured token a random one is made up,
so the API stays closed rather than open. ``GET /health`` on the admin port needs no token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from .errors import GatewayError

__all__ = [
    "ADMIN_TOKEN_ENV",
    "FaultMode",
    "FaultRequest",
    "FaultState",
    "bearer_matches",
    "create_admin_app",
]

ADMIN_TOKEN_ENV = "RHIN_GATEWAY_ADMIN_TOKEN"
FaultMode = Literal["down", "slow", "error", "up"]


@dataclass(slots=True)
class FaultState:
    """One gateway's current faults; read by its request path, written only by the admin API."""

    down: bool = False
    slow_ms: int = 0
    error: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"down": self.down, "slow_ms": self.slow_ms, "error": self.error}


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    ms: Annotated[int, Field(ge=0, le=600_000)] = 0


SetFault = Callable[[str, FaultRequest], Awaitable[FaultState]]
"""Applies a fault to one gateway (closing or reopening its listener as needed) and returns its state."""


def bearer_matches(authorization: str | None, secret: str) -> bool:
    """``Authorization: Bearer <secret>``, compared in constant time."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode("utf-8"), secret.encode("utf-8"))


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def create_admin_app(token: str, states: Mapping[str, FaultState], set_fault: SetFault) -> FastAPI:
    """The shard's admin API over its gateways' fault states (``states`` is live, keyed by code)."""

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if not bearer_matches(authorization, token):
            raise unauthorized("admin token missing or wrong")

    app = FastAPI(title="rhin gateway shard admin", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "gateways": sorted(states)}

    @app.get("/faults", dependencies=[Depends(admin)])
    def faults() -> dict[str, Any]:
        return {code: state.as_json() for code, state in sorted(states.items())}

    @app.post("/faults/{code}", dependencies=[Depends(admin)])
    async def set_one(code: str, request: FaultRequest) -> dict[str, Any]:
        if code not in states:
            raise HTTPException(404, f"no gateway {code} in this shard")
        if request.mode == "slow" and "ms" not in request.model_fields_set:
            raise HTTPException(422, "mode 'slow' needs 'ms'")
        try:
            state = await set_fault(code, request)
        except GatewayError as exc:  # e.g. the port was taken while the gateway was down
            raise HTTPException(409, str(exc)) from None
        return {code: state.as_json()}

    return app
