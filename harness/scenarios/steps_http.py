"""The HTTP step kinds: login, links, consent, emergency, timeline, fetch, audit, and gateway faults.

Who acts: ``session: S`` uses the session a login step opened (its token, or none if that login failed, so
refusals of unauthenticated calls can be asserted); ``by: A`` logs in as one of facility A's users
(``user_kind`` picks which) the first time and reuses that session. An automatic login that fails is a step
error: it is set-up, not the thing under test. A step kind the target's adapter module defines goes to the
adapter with the :class:`~harness.targets.AdapterRequest` the reference call would have sent.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import statistics
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

from harness.hubclient import HttpOutcome, HubClient, HubClientError, set_fault
from harness.targets import AdapterRequest

from .actions import (
    AccessReport,
    AuditQuery,
    AuditVerify,
    ConsentAdd,
    ConsentGet,
    ConsentRegister,
    ConsentWithdraw,
    Emergency,
    Fault,
    Fetch,
    HttpRaw,
    Link,
    Login,
    LoginProbe,
    Logout,
    PatientGet,
    Timeline,
    Unlink,
    _Http,
)
from .context import Context
from .errors import StepError
from .results import Exchange
from .runners import runs
from .steps_local import world_path
from .subjects import MISSING, HttpObservation

__all__ = ["reset_faults"]

Outcome = tuple[HttpObservation, list[Exchange]]
_SHOWN_BYTES: Final = 8000


def _base(ctx: Context) -> str:
    if ctx.target.http is None:
        raise StepError(
            f"target {ctx.target.name} has no HTTP API address (the reference hub printed no `http:` line: "
            "is its HTTP API there yet?)"
        )
    return ctx.target.http


def _client(ctx: Context) -> HubClient:
    return HubClient(_base(ctx), timeout=ctx.target.http_timeout)


_SECRET_KEYS: Final = frozenset({"password", "token", "admin_token"})


def _redacted(value: Any) -> Any:
    """Evidence goes into reports: passwords and tokens never do (an external target's may be real)."""
    if isinstance(value, dict):
        return {k: "<redacted>" if k in _SECRET_KEYS and v else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _show_body(body: bytes, content_type: str) -> str:
    if "json" in content_type:
        try:
            return json.dumps(_redacted(json.loads(body)), ensure_ascii=False, indent=2)[:_SHOWN_BYTES]
        except ValueError:
            pass
    if content_type.startswith("text/") or "xml" in content_type or "hl7" in content_type:
        return body[:_SHOWN_BYTES].decode("utf-8", "replace")
    return f"<{len(body)} bytes {content_type or 'of unknown type'}>"


def _exchange(label: str, out: HttpOutcome) -> Exchange:
    request = f"{out.method} {out.url}"
    if out.request_json is not None:
        request += "\n" + json.dumps(_redacted(out.request_json), ensure_ascii=False, indent=2)
    content_type = out.headers.get("content-type", "")
    response = f"HTTP {out.status} {content_type}\n{_show_body(out.body, content_type)}"
    return Exchange("http", label, request, response, out.elapsed_ms)


def _observe(label: str, out: HttpOutcome, extra: list[Exchange] | None = None) -> Outcome:
    body = out.json()
    obs = HttpObservation(
        out.status, out.headers, out.body, out.elapsed_ms, MISSING if body is None else body
    )
    return obs, [*(extra or []), _exchange(label, out)]


def _call(ctx: Context, fn: Callable[[], HttpOutcome]) -> HttpOutcome:
    try:
        return fn()
    except HubClientError as exc:
        raise StepError(str(exc)) from exc


def _session(ctx: Context, a: _Http) -> tuple[HubClient, list[Exchange]]:
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
    client = _client(ctx)
    out = _call(ctx, lambda: client.login(facility.code, user_id, password))
    login = _exchange(f"login {facility.code}/{user_id}", out)
    login.operation = "login"
    if out.status != 200 or client.token is None:
        client.close()
        raise StepError(
            f"automatic login as {facility.code}/{user_id} failed: HTTP {out.status}: {out.body[:300]!r}"
        )
    ctx.sessions[key] = client
    return client, [login]


def _adapted(
    ctx: Context, kind: str, client: HubClient, request: AdapterRequest, default: Callable[[], HttpOutcome]
) -> HttpOutcome:
    fn = ctx.target.adapter_for(kind)
    if fn is None:
        return _call(ctx, default)
    try:
        out = fn(client, request)
    except HubClientError as exc:
        raise StepError(f"adapter {kind}: {exc}") from exc
    if not isinstance(out, HttpOutcome):
        raise StepError(f"adapter {kind} returned {type(out).__name__}, not an HttpOutcome")
    return out


def _date(ctx: Context, value: str | None) -> str:
    """A paper's date: as given, else today (``${world.today}``). Not the world's reference date: papers
    the scenarios register on world patients must come after the world's own, and a form after a
    withdrawal must be dated after it (issue 11), so a fixed date in the past would collide."""
    return ctx.text(value) if value is not None else ctx.text("${world.today}")


def _form_id(ctx: Context, value: str | None, suffix: str) -> str:
    return ctx.text(value) if value is not None else f"F{ctx.tag}{ctx.step:03d}{suffix}"


# ------------------------------------------------------------------------------------------- auth


@runs(Login)
def run_login(ctx: Context, a: Login) -> Outcome:
    facility = ctx.facility(a.facility)
    user_id = ctx.maybe(a.user)
    if a.password is not None:
        password = ctx.text(a.password)
        user_id = user_id or ctx.user(facility.code, a.user_kind)[0]
    else:
        user_id, password = ctx.user(facility.code, a.user_kind, user_id)
    client = _client(ctx)
    name = a.as_ or a.facility
    old = ctx.sessions.pop(name, None)
    if old is not None:
        old.close()
    ctx.sessions[name] = client
    request = AdapterRequest(
        "login", None, {"facility": facility.code, "user_id": user_id, "password": password}
    )
    out = _adapted(ctx, "login", client, request, lambda: client.login(facility.code, user_id, password))
    return _observe(f"login {facility.code}/{user_id}", out)


@runs(Logout)
def run_logout(ctx: Context, a: Logout) -> Outcome:
    client, extra = _session(ctx, a)
    return _observe(
        "logout", _adapted(ctx, "logout", client, AdapterRequest("logout", None), client.logout), extra
    )


# ------------------------------------------------------------------------------------------- patients, links


@runs(PatientGet)
def run_patient_get(ctx: Context, a: PatientGet) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    out = _adapted(
        ctx, "patient_get", client, AdapterRequest("patient_get", rid), lambda: client.patient(rid)
    )
    return _observe(f"GET patient {rid}", out, extra)


@runs(Link)
def run_link(ctx: Context, a: Link) -> Outcome:
    client, extra = _session(ctx, a)
    binding = ctx.patient(a.patient)
    facility = ctx.facility(a.facility or a.by or "")
    local_id = ctx.maybe(a.local_id) or binding.local_id(facility.code)
    rid = ctx.maybe(a.regional_id) if a.regional_id is not None else binding.rid
    others = [(ctx.facility(o).code, binding.local_id(ctx.facility(o).code)) for o in a.others]
    body: dict[str, Any] = {"facility": facility.code, "local_id": local_id, "regional_id": rid}
    if others:
        body["others"] = [{"facility": f, "local_id": lid} for f, lid in others]
    request = AdapterRequest("link", rid, body)
    out = _adapted(ctx, "link", client, request, lambda: client.link(facility.code, local_id, rid, others))
    reply = out.json()
    if 200 <= out.status < 300 and isinstance(reply, dict) and isinstance(reply.get("regional_id"), str):
        new_rid: str = reply["regional_id"]
        ctx.after_step.append(lambda: setattr(binding, "rid", new_rid))  # after this step's expectations
    return _observe(f"link {facility.code}/{local_id}", out, extra)


@runs(Unlink)
def run_unlink(ctx: Context, a: Unlink) -> Outcome:
    client, extra = _session(ctx, a)
    facility = ctx.facility(a.facility or a.by or "")
    local_id = ctx.maybe(a.local_id) or ctx.patient(a.patient).local_id(facility.code)
    request = AdapterRequest("unlink", None, {"facility": facility.code, "local_id": local_id})
    out = _adapted(ctx, "unlink", client, request, lambda: client.unlink(facility.code, local_id))
    return _observe(f"unlink {facility.code}/{local_id}", out, extra)


# ------------------------------------------------------------------------------------------- consent


@runs(ConsentRegister)
def run_consent_register(ctx: Context, a: ConsentRegister) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    pattern, facilities, signed_on, emergency = (
        a.pattern,
        [ctx.facility_code(f) for f in a.facilities],
        None,
        False,
    )
    if a.from_world:
        if a.patient is None:
            raise StepError("from_world needs `patient`")
        consent = ctx.world.consents.get(ctx.patient(a.patient).patient.index)
        if consent is None:
            raise StepError(f"{a.patient} has no consent form in the world")
        form = consent.form
        pattern, facilities = form.pattern, list(form.facilities)
        signed_on, emergency = form.signed_on.isoformat(), form.emergency_allowed
    if pattern is None:
        raise StepError("consent_register needs `pattern` (or from_world: true)")
    body: dict[str, Any] = {
        "form_id": _form_id(ctx, a.form_id, "C"),
        "pattern": pattern,
        "facilities": facilities,
        "signed_on": ctx.text(a.signed_on) if a.signed_on is not None else signed_on or _date(ctx, None),
        "emergency_allowed": a.emergency_allowed if a.emergency_allowed is not None else emergency,
    }
    return _paper(
        ctx, "consent_register", client, rid, body, client.register_consent, "register consent", extra
    )


def _paper(
    ctx: Context,
    kind: str,
    client: HubClient,
    rid: str,
    body: dict[str, Any],
    send: Callable[[str, dict[str, Any]], HttpOutcome],
    label: str,
    extra: list[Exchange],
) -> Outcome:
    """One consent document posted (through the target's adapter for ``kind`` if it has one)."""
    out = _adapted(ctx, kind, client, AdapterRequest(kind, rid, body), lambda: send(rid, body))
    return _observe(f"{label} {body['form_id']}", out, extra)


@runs(ConsentAdd)
def run_consent_add(ctx: Context, a: ConsentAdd) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    body = {
        "form_id": _form_id(ctx, a.form_id, "A"),
        "base_form_id": ctx.text(a.base_form_id),
        "facility": ctx.facility_code(a.facility),
        "signed_on": _date(ctx, a.signed_on),
    }
    return _paper(
        ctx, "consent_add", client, rid, body, client.add_consent_facility, "consent addition", extra
    )


@runs(ConsentWithdraw)
def run_consent_withdraw(ctx: Context, a: ConsentWithdraw) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    body = {
        "form_id": _form_id(ctx, a.form_id, "W"),
        "base_form_id": ctx.text(a.base_form_id),
        "withdrawn_on": _date(ctx, a.withdrawn_on),
    }
    return _paper(
        ctx, "consent_withdraw", client, rid, body, client.withdraw_consent, "consent withdrawal", extra
    )


@runs(ConsentGet)
def run_consent_get(ctx: Context, a: ConsentGet) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    out = _adapted(
        ctx, "consent_get", client, AdapterRequest("consent_get", rid), lambda: client.consents(rid)
    )
    return _observe(f"GET consents {rid}", out, extra)


@runs(Emergency)
def run_emergency(ctx: Context, a: Emergency) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    reason = ctx.text(a.reason)
    request = AdapterRequest("emergency", rid, {"reason": reason, "minutes": a.minutes})
    out = _adapted(ctx, "emergency", client, request, lambda: client.emergency(rid, reason, a.minutes))
    return _observe(f"emergency access {rid}", out, extra)


# ------------------------------------------------------------------------------------------- records


@runs(Timeline)
def run_timeline(ctx: Context, a: Timeline) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    since, until = ctx.maybe(a.since), ctx.maybe(a.until)
    params = {
        "categories": ",".join(a.categories),
        "from": since or "",
        "to": until or "",
        "purpose": a.purpose,
        "timeout_ms": "" if a.timeout_ms is None else str(a.timeout_ms),
    }
    request = AdapterRequest("timeline", rid, params=params)

    def default() -> HttpOutcome:
        return client.timeline(
            rid, categories=a.categories, since=since, until=until, purpose=a.purpose, timeout_ms=a.timeout_ms
        )

    return _observe(f"timeline {rid}", _adapted(ctx, "timeline", client, request, default), extra)


@runs(Fetch)
def run_fetch(ctx: Context, a: Fetch) -> Outcome:
    client, extra = _session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    source, entry = ctx.facility_code(a.source), ctx.text(a.entry)
    params = {"source": source, "entry": entry, "purpose": a.purpose}
    if a.timeout_ms is not None:
        params["timeout_ms"] = str(a.timeout_ms)
    request = AdapterRequest("fetch", rid, params=params)
    out = _adapted(
        ctx, "fetch", client, request, lambda: client.fetch(rid, source, entry, a.purpose, a.timeout_ms)
    )
    obs, exchanges = _observe(f"fetch {source}/{entry}", out, extra)
    if a.world_file:
        path = world_path(ctx.world.dir, source, entry)
        if path is None or not path.is_file():
            obs.world_file = "missing"
            note = f"no world file for {entry!r}"
        else:
            data = path.read_bytes()
            obs.world_file = "identical" if data == out.body else "different"
            obs.world_file_size = len(data)
            note = f"compared with {path.relative_to(ctx.world.dir)} ({len(data)} bytes): {obs.world_file}"
        exchanges[-1].note = note
    return obs, exchanges


@runs(AccessReport)
def run_access_report(ctx: Context, a: AccessReport) -> Outcome:
    rid = ctx.regional_id(a.patient, a.regional_id)
    request = AdapterRequest("access_report", rid, params={"operator": "true"} if a.operator else {})
    if a.operator:
        token = _admin(ctx)
        client = _client(ctx)
        try:
            out = _adapted(
                ctx, "access_report", client, request, lambda: client.access_report(rid, token=token)
            )
            return _observe(f"access report {rid} (operator)", out)
        finally:
            client.close()
    client, extra = _session(ctx, a)
    out = _adapted(ctx, "access_report", client, request, lambda: client.access_report(rid))
    return _observe(f"access report {rid}", out, extra)


# ------------------------------------------------------------------------------------------- operator


def _admin(ctx: Context) -> str:
    if not ctx.target.admin_token:
        raise StepError(
            f"target {ctx.target.name} has no admin token (the hub writes admin.token in its data dir)"
        )
    return ctx.target.admin_token


@runs(AuditQuery)
def run_audit_query(ctx: Context, a: AuditQuery) -> Outcome:
    token = _admin(ctx)
    patient = ctx.regional_id(a.patient, a.regional_id) if (a.patient or a.regional_id) else None
    since = ctx.maybe(a.since)
    client = _client(ctx)
    params = {
        "patient": patient or "",
        "action": a.action or "",
        "since": since or "",
        "limit": str(a.limit or ""),
    }
    try:
        request = AdapterRequest("audit_query", patient, params=params)

        def default() -> HttpOutcome:
            return client.audit(token, patient=patient, action=a.action, since=since, limit=a.limit)

        return _observe("audit query", _adapted(ctx, "audit_query", client, request, default))
    finally:
        client.close()


@runs(AuditVerify)
def run_audit_verify(ctx: Context, a: AuditVerify) -> Outcome:
    token = _admin(ctx)
    client = _client(ctx)
    try:
        request = AdapterRequest("audit_verify", None)
        return _observe(
            "audit verify", _adapted(ctx, "audit_verify", client, request, lambda: client.audit_verify(token))
        )
    finally:
        client.close()


@runs(Fault)
def run_fault(ctx: Context, a: Fault) -> Outcome:
    network = ctx.target.network
    if network is None:
        raise StepError(
            f"target {ctx.target.name} has no network file: faults need the gateway shards' admin URLs"
        )
    code = ctx.facility_code(a.gateway)
    shard = network.shard_for(code)
    if shard is None:
        raise StepError(f"no gateway shard serves facility {code}")
    out = _call(ctx, lambda: set_fault(shard.admin_url, shard.admin_token, code, a.mode, a.ms))
    if a.mode == "up":
        ctx.faults.discard(code)
    elif 200 <= out.status < 300:
        ctx.faults.add(code)
    return _observe(f"fault {code} {a.mode}", out)


def reset_faults(ctx: Context) -> None:
    """Bring every gateway this scenario faulted back up (clean-up, not an assertion)."""
    network = ctx.target.network
    if network is None:
        return
    for code in sorted(ctx.faults):
        shard = network.shard_for(code)
        if shard is not None:
            with contextlib.suppress(HubClientError):
                set_fault(shard.admin_url, shard.admin_token, code, "up")
    ctx.faults.clear()


# ------------------------------------------------------------------------------------------- probes


def _probe_users(ctx: Context, a: LoginProbe) -> list[tuple[str, str]]:
    """(facility, user ID) of real users no other step logs in as (not the first of their kind there)."""
    codes = [ctx.facility(a.facility).code] if a.facility else sorted(ctx.target.users)
    picked: list[tuple[str, str]] = []
    for code in codes:
        seen: set[str] = set()
        for u in ctx.target.users.get(code, ()):
            if u.viewer_kind in seen:
                picked.append((code, u.user_id))
            seen.add(u.viewer_kind)
    if len(picked) < a.users:
        raise StepError(f"login_probe needs {a.users} spare users; the target has {len(picked)}")
    # Spread over facilities, and rotated by the scenario's tag, so that runs one after another (other
    # salts) mostly try other users: each user's failures stay well under the lockout.
    step, offset = len(picked) / a.users, int(ctx.tag, 16) % len(picked)
    return [picked[(offset + int(i * step)) % len(picked)] for i in range(a.users)]


def _detail(out: HttpOutcome, user_id: str) -> str:
    body = out.json()
    detail = body.get("detail") if isinstance(body, dict) else body
    return json.dumps(detail, ensure_ascii=False, sort_keys=True).replace(user_id, "<user>")


def _retry_after(out: HttpOutcome) -> float:
    value = next((v for k, v in out.headers.items() if k.lower() == "retry-after"), "0")
    return float(value) if value.isdigit() else 0.0


def _reset_users(ctx: Context, client: HubClient, users: list[tuple[str, str]], wait: float) -> Exchange:
    """Clean-up, not an assertion: once the back-off is over, each real user logs in with the right password
    (which clears their failures on a hub that counts them per user) and out again, so later runs and other
    scenarios find them as they were."""
    time.sleep(wait)
    done = 0
    for code, user_id in users:
        password = ctx.user(code, None, user_id)[1]
        with contextlib.suppress(HubClientError):
            if client.login(code, user_id, password).status == 200:
                done += 1
                client.logout()
    note = f"waited {wait:.0f} s, then {done} of {len(users)} real users logged in and out again"
    return Exchange("http", "login probe clean-up", "right passwords", note, 0.0)


@runs(LoginProbe)
def run_login_probe(ctx: Context, a: LoginProbe) -> Outcome:
    """See :class:`~.model.LoginProbe`. Attempts alternate known/unknown, and which of a pair goes first,
    so drift and order effects hit both alike."""
    known = _probe_users(ctx, a)
    unknown = [(code, f"zz{ctx.tag}{i:03d}") for i, (code, _) in enumerate(known)]
    password = ctx.text(a.password)
    wait = 0.0
    results: dict[str, dict[str, list[Any]]] = {
        side: {"statuses": [], "second_statuses": [], "bodies": [], "times_ms": []}
        for side in ("known", "unknown")
    }
    exchanges: list[Exchange] = []
    client = _client(ctx)
    try:
        for n, pair in enumerate(zip(known, unknown, strict=True)):
            sides = list(zip(("known", "unknown"), pair, strict=True))
            for side, (code, user_id) in sides if n % 2 == 0 else sides[::-1]:  # ABBA: no side goes first
                attempt = functools.partial(client.login, code, user_id, password)
                first = _call(ctx, attempt)
                second = _call(ctx, attempt)
                r = results[side]
                r["statuses"].append(first.status)
                r["second_statuses"].append(second.status)
                r["bodies"].append(_detail(first, user_id))
                r["times_ms"].append(round(first.elapsed_ms, 3))
                if len(exchanges) < 4:
                    exchanges.append(_exchange(f"login {code}/{user_id} ({side}, wrong password)", first))
                wait = max(wait, _retry_after(second))
        exchanges.append(_reset_users(ctx, client, known, min(wait, 10.0)))
    finally:
        client.close()
    summary: dict[str, Any] = {}
    for side, r in results.items():
        summary[side] = {
            "statuses": sorted(set(r["statuses"])),
            "second_statuses": sorted(set(r["second_statuses"])),
            "bodies": sorted(set(r["bodies"])),
            "median_ms": round(statistics.median(r["times_ms"]), 3),
            "times_ms": r["times_ms"],
        }
    summary["same_body"] = summary["known"]["bodies"] == summary["unknown"]["bodies"]
    summary["median_ratio"] = round(
        summary["known"]["median_ms"] / max(summary["unknown"]["median_ms"], 1e-6), 4
    )
    body = json.dumps(summary, ensure_ascii=False).encode()
    obs = HttpObservation(200, {"content-type": "application/json"}, body, 0.0, summary)
    note = Exchange(
        "http", "login probe summary", f"{len(known)} known and unknown users", body.decode(), 0.0
    )
    return obs, [*exchanges, note]


def _raw_request(ctx: Context, a: HttpRaw, token: str | None) -> tuple[bytes, bytes, float]:
    """Send one request exactly as described; (request head, response bytes, elapsed ms)."""
    url = urllib.parse.urlsplit(_base(ctx))
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = ctx.text(a.body).encode("utf-8") + b"x" * a.pad
    head = [f"{a.method} {ctx.text(a.path)} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
    head.append(b"Connection: close")
    head.append(b"Content-Type: application/json")
    if a.bearer_hex is not None:
        try:
            token_bytes = bytes.fromhex(ctx.text(a.bearer_hex))
        except ValueError as exc:
            raise StepError(f"bearer_hex is not hex digits: {exc}") from exc
        head.append(b"Authorization: Bearer " + token_bytes)
    elif token is not None:
        head.append(f"Authorization: Bearer {token}".encode())
    if a.chunked:
        head.append(b"Transfer-Encoding: chunked")
    elif a.content_length is not None or body:
        head.append(
            f"Content-Length: {a.content_length if a.content_length is not None else len(body)}".encode()
        )
    started = time.perf_counter()
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=a.timeout_ms / 1000) as sock:
        try:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            if a.chunked:
                for i in range(0, len(body), 65536):
                    piece = body[i : i + 65536]
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent: read what it said
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"\r\n".join(head), b"".join(chunks), (time.perf_counter() - started) * 1000


@runs(HttpRaw)
def run_http_raw(ctx: Context, a: HttpRaw) -> Outcome:
    """See :class:`~.model.HttpRaw`; a response that cannot be parsed is status 0."""
    extra: list[Exchange] = []
    token = None
    if a.by is not None or a.session is not None:
        client, extra = _session(ctx, a)
        token = client.token
    try:
        head, raw, elapsed = _raw_request(ctx, a, token)
    except OSError as exc:
        raise StepError(f"raw HTTP request: {exc}") from exc
    top, _, rest = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    status = int(match.group(1)) if match else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:]) if k}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, data = b"", rest
        while data:
            size_text, _, data = data.partition(b"\r\n")
            size = int(size_text.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body, data = body + data[:size], data[size + 2 :]
        rest = body
    try:
        parsed: Any = json.loads(rest) if rest else MISSING
    except ValueError:
        parsed = MISSING
    obs = HttpObservation(status, headers, rest, elapsed, parsed)
    shown = head.decode("latin-1") + (f"\n<{len(ctx.text(a.body)) + a.pad} body bytes>" if a.pad else "")
    content_type = headers.get("content-type", "")
    response = f"HTTP {status} {content_type}\n{_show_body(rest, content_type)}"
    return obs, [*extra, Exchange("http", f"raw {a.method} {ctx.text(a.path)}", shown, response, elapsed)]
