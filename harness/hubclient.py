"""A client for the hub's HTTP API (login, links, consent, emergency, records, audit) and gateway faults.

Every call returns an :class:`HttpOutcome` whatever the status: scenarios assert on refusals as much as on
successes, so a 403 is data, not an exception. Only transport failures (refused connection, timeout) raise
:class:`HubClientError`. The paths and bodies are the reference hub's contract (README "The reference hub"):
errors are ``{"detail": {"reason", "message"}}`` (422 validation errors add ``errors``), ``POST /links``
takes and answers ``others``. An external hub that differs plugs an adapter in front (see
:mod:`harness.targets`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

__all__ = ["AdapterRequest", "HttpOutcome", "HubClient", "HubClientError", "set_fault"]


class HubClientError(Exception):
    """The hub (or a shard's admin endpoint) could not be reached or did not answer in time."""


@dataclass(frozen=True)
class AdapterRequest:
    """What the reference call would send: the step kind, the patient's regional ID, body and query.

    A target's adapter function (named after the step kind) gets it with the :class:`HubClient` and answers
    an :class:`HttpOutcome` (:mod:`harness.targets`).
    """

    kind: str
    regional_id: str | None
    body: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass
class HttpOutcome:
    """One HTTP exchange, as evidence and as the subject of expectations."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float
    request_json: Any = None
    request_params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if "json" not in self.headers.get("content-type", ""):
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HubClient:
    """One user's view of the hub: log in once, then every call carries the bearer token."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> HttpOutcome:
        """Send one request (the session's token unless ``token`` is given)."""
        headers = {}
        bearer = token if token is not None else self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        started = time.perf_counter()
        try:
            response = self.http.request(method, path, json=body, params=clean or None, headers=headers)
        except httpx.HTTPError as exc:
            raise HubClientError(f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc}") from exc
        elapsed = (time.perf_counter() - started) * 1000
        return HttpOutcome(
            method=method,
            url=str(response.request.url),
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.content,
            elapsed_ms=elapsed,
            request_json=body,
            request_params=dict(clean),
        )

    # ----------------------------------------------------------------------------------- auth

    def login(self, facility: str, user_id: str, password: str) -> HttpOutcome:
        """POST /auth/login; on 200 the token is kept for the following calls."""
        out = self.request(
            "POST", "/auth/login", body={"facility": facility, "user_id": user_id, "password": password}
        )
        reply = out.json()
        if out.status == 200 and isinstance(reply, dict) and isinstance(reply.get("token"), str):
            self.token = reply["token"]
        return out

    def logout(self) -> HttpOutcome:
        out = self.request("POST", "/auth/logout")
        if out.status in (200, 204):
            self.token = None
        return out

    # ----------------------------------------------------------------------------------- patients, links

    def patient(self, regional_id: str) -> HttpOutcome:
        return self.request("GET", f"/patients/{regional_id}")

    def link(
        self,
        facility: str,
        local_id: str,
        regional_id: str | None,
        others: list[tuple[str, str]] | None = None,
    ) -> HttpOutcome:
        """POST /links: ``local_id`` at ``facility`` and each (facility, local ID) of ``others`` to one
        regional ID (a new one when ``regional_id`` is None); the reply's ``others`` says which were new."""
        body: dict[str, Any] = {"facility": facility, "local_id": local_id, "regional_id": regional_id}
        if others:
            body["others"] = [{"facility": f, "local_id": lid} for f, lid in others]
        return self.request("POST", "/links", body=body)

    def unlink(self, facility: str, local_id: str) -> HttpOutcome:
        return self.request("DELETE", f"/links/{facility}/{local_id}")

    # ----------------------------------------------------------------------------------- consent

    def register_consent(self, regional_id: str, body: Mapping[str, Any]) -> HttpOutcome:
        return self.request("POST", f"/patients/{regional_id}/consents", body=dict(body))

    def add_consent_facility(self, regional_id: str, body: Mapping[str, Any]) -> HttpOutcome:
        return self.request("POST", f"/patients/{regional_id}/consents/additions", body=dict(body))

    def withdraw_consent(self, regional_id: str, body: Mapping[str, Any]) -> HttpOutcome:
        return self.request("POST", f"/patients/{regional_id}/consents/withdrawals", body=dict(body))

    def consents(self, regional_id: str) -> HttpOutcome:
        return self.request("GET", f"/patients/{regional_id}/consents")

    def emergency(self, regional_id: str, reason: str, minutes: int) -> HttpOutcome:
        body = {"reason": reason, "minutes": minutes}
        return self.request("POST", f"/patients/{regional_id}/emergency", body=body)

    # ----------------------------------------------------------------------------------- records

    def timeline(
        self,
        regional_id: str,
        *,
        categories: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        purpose: str = "care",
        timeout_ms: int | None = None,
    ) -> HttpOutcome:
        """The patient's timeline (``timeout_ms``: the hub's per-source timeout; None: the hub's default)."""
        params = {
            "categories": ",".join(categories or []),
            "from": since or "",
            "to": until or "",
            "purpose": purpose,
            "timeout_ms": "" if timeout_ms is None else str(timeout_ms),
        }
        return self.request("GET", f"/patients/{regional_id}/timeline", params=params)

    def fetch(
        self,
        regional_id: str,
        source: str,
        entry_id: str,
        purpose: str = "care",
        timeout_ms: int | None = None,
    ) -> HttpOutcome:
        path = f"/patients/{regional_id}/entries/{source}/{entry_id}"
        params = {"purpose": purpose, "timeout_ms": "" if timeout_ms is None else str(timeout_ms)}
        return self.request("GET", path, params=params)

    def access_report(self, regional_id: str, *, token: str | None = None) -> HttpOutcome:
        """Who accessed the patient's data (the session's user, or ``token``: e.g. the hub operator's)."""
        return self.request("GET", f"/patients/{regional_id}/access-report", token=token)

    # ----------------------------------------------------------------------------------- audit (operator)

    def audit(
        self,
        admin_token: str,
        *,
        patient: str | None = None,
        action: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> HttpOutcome:
        params = {
            "patient": patient or "",
            "action": action or "",
            "since": since or "",
            "limit": "" if limit is None else str(limit),
        }
        return self.request("GET", "/audit", params=params, token=admin_token)

    def audit_verify(self, admin_token: str) -> HttpOutcome:
        return self.request("GET", "/audit/verify", token=admin_token)


def set_fault(
    admin_url: str,
    admin_token: str,
    facility: str,
    mode: str,
    ms: int | None = None,
    *,
    timeout: float = 10.0,
) -> HttpOutcome:
    """POST {admin_url}/faults/{facility} on the gateway shard serving that facility."""
    body: dict[str, Any] = {"mode": mode}
    if ms is not None:
        body["ms"] = ms
    with HubClient(admin_url, timeout=timeout, token=admin_token) as client:
        return client.request("POST", f"/faults/{facility}", body=body)
