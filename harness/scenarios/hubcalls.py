"""How HTTP steps talk to the hub: the acting user's session, the target's adapter, and the evidence an
exchange leaves in the report (with passwords and tokens redacted). Shared by :mod:`.steps_http` and
:mod:`.steps_probes`.

Who acts: ``session: S`` uses the session a login step opened (its token, or none if that login failed, so
refusals of unauthenticated calls can be asserted); ``by: A`` logs in as one of facility A's users
(``user_kind`` picks which) the first time and reuses that session. An automatic login that fails is a step
error: it is set-up, not the thing under test. A step kind the target's adapter module defines goes to the
adapter with the :class:`~harness.targets.AdapterRequest` the reference call would have sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from harness.hubclient import AdapterRequest, HttpOutcome, HubClient, HubClientError

from .actions import _Http
from .context import Context
from .errors import StepError
from .results import Exchange
from .subjects import MISSING, HttpObservation

__all__ = [
    "Outcome",
    "acting_session",
    "adapted",
    "admin_token",
    "base_url",
    "call",
    "http_exchange",
    "new_client",
    "observe_http",
    "redacted",
    "show_body",
]

Outcome = tuple[HttpObservation, list[Exchange]]
_SHOWN_BYTES: Final = 8000


def base_url(ctx: Context) -> str:
    if ctx.target.http is None:
        raise StepError(
            f"target {ctx.target.name} has no HTTP API address (the reference hub printed no `http:` line: "
            "is its HTTP API there yet?)"
        )
    return ctx.target.http


def new_client(ctx: Context) -> HubClient:
    return HubClient(base_url(ctx), timeout=ctx.target.http_timeout)


_SECRET_KEYS: Final = frozenset({"password", "token", "admin_token"})


def redacted(value: Any) -> Any:
    """Evidence goes into reports: passwords and tokens never do (an external target's may be real)."""
    if isinstance(value, dict):
        return {k: "<redacted>" if k in _SECRET_KEYS and v else redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def show_body(body: bytes, content_type: str) -> str:
    if "json" in content_type:
        try:
            return json.dumps(redacted(json.loads(body)), ensure_ascii=False, indent=2)[:_SHOWN_BYTES]
        except ValueError:
            pass
    if content_type.startswith("text/") or "xml" in content_type or "hl7" in content_type:
        return body[:_SHOWN_BYTES].decode("utf-8", "replace")
    return f"<{len(body)} bytes {content_type or 'of unknown type'}>"


def http_exchange(label: str, out: HttpOutcome) -> Exchange:
    request = f"{out.method} {out.url}"
    if out.request_json is not None:
        request += "\n" + json.dumps(redacted(out.request_json), ensure_ascii=False, indent=2)
    content_type = out.headers.get("content-type", "")
    response = f"HTTP {out.status} {content_type}\n{show_body(out.body, content_type)}"
    return Exchange("http", label, request, response, out.elapsed_ms)


def observe_http(label: str, out: HttpOutcome, extra: list[Exchange] | None = None) -> Outcome:
    body = out.json()
    obs = HttpObservation(
        out.status, out.headers, out.body, out.elapsed_ms, MISSING if body is None else body
    )
    return obs, [*(extra or []), http_exchange(label, out)]


def call(ctx: Context, fn: Callable[[], HttpOutcome]) -> HttpOutcome:
    try:
        return fn()
    except HubClientError as exc:
        raise StepError(str(exc)) from exc


def acting_session(ctx: Context, a: _Http) -> tuple[HubClient, list[Exchange]]:
    """The acting user's session (logging in first when ``by`` has none yet)."""
    if a.session is not None:
        try:
            return ctx.sessions[a.session], []
        except KeyError:
            raise StepError(f"no session {a.session!r}: no login step opened it") from None
    if a.by is None:
        raise StepError("say who acts: `by: <facility>` or `session: <login name>`")
    facility = ctx.facility(a.by)
    key = f"@{a.by}:{a.user_kind or ''}"
    if key in ctx.sessions:
        return ctx.sessions[key], []
    user_id, password = ctx.user(facility.code, a.user_kind)
    client = new_client(ctx)
    out = call(ctx, lambda: client.login(facility.code, user_id, password))
    login = http_exchange(f"login {facility.code}/{user_id}", out)
    login.operation = "login"
    if out.status != 200 or client.token is None:
        client.close()
        raise StepError(
            f"automatic login as {facility.code}/{user_id} failed: HTTP {out.status}: {out.body[:300]!r}"
        )
    ctx.sessions[key] = client
    return client, [login]


def adapted(
    ctx: Context, kind: str, client: HubClient, request: AdapterRequest, default: Callable[[], HttpOutcome]
) -> HttpOutcome:
    fn = ctx.target.adapter_for(kind)
    if fn is None:
        return call(ctx, default)
    try:
        out = fn(client, request)
    except HubClientError as exc:
        raise StepError(f"adapter {kind}: {exc}") from exc
    if not isinstance(out, HttpOutcome):
        raise StepError(f"adapter {kind} returned {type(out).__name__}, not an HttpOutcome")
    return out


def admin_token(ctx: Context) -> str:
    if not ctx.target.admin_token:
        raise StepError(
            f"target {ctx.target.name} has no admin token (the hub writes admin.token in its data dir)"
        )
    return ctx.target.admin_token
