"""The HTTP step kinds: login, links, consent, emergency, timeline, fetch, audit, and gateway faults. Who acts
(``by``/``session``) and the target's adapters: :mod:`.hubcalls`; the probing kinds (``login_probe``,
``http_raw``): :mod:`.steps_probes`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from harness.hubclient import AdapterRequest, HttpOutcome, HubClient, HubClientError, set_fault

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
    Link,
    Login,
    Logout,
    PatientGet,
    Timeline,
    Unlink,
)
from .context import Context
from .errors import StepError
from .hubcalls import Outcome, acting_session, adapted, admin_token, call, new_client, observe_http
from .results import Exchange
from .runners import runs
from .steps_local import world_path

__all__ = ["reset_faults"]


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
    client = new_client(ctx)
    name = a.as_ or a.facility
    old = ctx.sessions.pop(name, None)
    if old is not None:
        old.close()
    ctx.sessions[name] = client
    request = AdapterRequest(
        "login", None, {"facility": facility.code, "user_id": user_id, "password": password}
    )
    out = adapted(ctx, "login", client, request, lambda: client.login(facility.code, user_id, password))
    return observe_http(f"login {facility.code}/{user_id}", out)


@runs(Logout)
def run_logout(ctx: Context, a: Logout) -> Outcome:
    client, extra = acting_session(ctx, a)
    return observe_http(
        "logout", adapted(ctx, "logout", client, AdapterRequest("logout", None), client.logout), extra
    )


# ------------------------------------------------------------------------------------------- patients, links


@runs(PatientGet)
def run_patient_get(ctx: Context, a: PatientGet) -> Outcome:
    client, extra = acting_session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    out = adapted(ctx, "patient_get", client, AdapterRequest("patient_get", rid), lambda: client.patient(rid))
    return observe_http(f"GET patient {rid}", out, extra)


@runs(Link)
def run_link(ctx: Context, a: Link) -> Outcome:
    client, extra = acting_session(ctx, a)
    binding = ctx.patient(a.patient)
    facility = ctx.facility(a.facility or a.by or "")
    local_id = ctx.maybe(a.local_id) or binding.local_id(facility.code)
    rid = ctx.maybe(a.regional_id) if a.regional_id is not None else binding.rid
    others = [(ctx.facility(o).code, binding.local_id(ctx.facility(o).code)) for o in a.others]
    body: dict[str, Any] = {"facility": facility.code, "local_id": local_id, "regional_id": rid}
    if others:
        body["others"] = [{"facility": f, "local_id": lid} for f, lid in others]
    request = AdapterRequest("link", rid, body)
    out = adapted(ctx, "link", client, request, lambda: client.link(facility.code, local_id, rid, others))
    reply = out.json()
    if 200 <= out.status < 300 and isinstance(reply, dict) and isinstance(reply.get("regional_id"), str):
        new_rid: str = reply["regional_id"]
        ctx.after_step.append(lambda: setattr(binding, "rid", new_rid))  # after this step's expectations
    return observe_http(f"link {facility.code}/{local_id}", out, extra)


@runs(Unlink)
def run_unlink(ctx: Context, a: Unlink) -> Outcome:
    client, extra = acting_session(ctx, a)
    facility = ctx.facility(a.facility or a.by or "")
    local_id = ctx.maybe(a.local_id) or ctx.patient(a.patient).local_id(facility.code)
    request = AdapterRequest("unlink", None, {"facility": facility.code, "local_id": local_id})
    out = adapted(ctx, "unlink", client, request, lambda: client.unlink(facility.code, local_id))
    return observe_http(f"unlink {facility.code}/{local_id}", out, extra)


# ------------------------------------------------------------------------------------------- consent


@runs(ConsentRegister)
def run_consent_register(ctx: Context, a: ConsentRegister) -> Outcome:
    client, extra = acting_session(ctx, a)
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
    out = adapted(ctx, kind, client, AdapterRequest(kind, rid, body), lambda: send(rid, body))
    return observe_http(f"{label} {body['form_id']}", out, extra)


@runs(ConsentAdd)
def run_consent_add(ctx: Context, a: ConsentAdd) -> Outcome:
    client, extra = acting_session(ctx, a)
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
    client, extra = acting_session(ctx, a)
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
    client, extra = acting_session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    out = adapted(
        ctx, "consent_get", client, AdapterRequest("consent_get", rid), lambda: client.consents(rid)
    )
    return observe_http(f"GET consents {rid}", out, extra)


@runs(Emergency)
def run_emergency(ctx: Context, a: Emergency) -> Outcome:
    client, extra = acting_session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    reason = ctx.text(a.reason)
    request = AdapterRequest("emergency", rid, {"reason": reason, "minutes": a.minutes})
    out = adapted(ctx, "emergency", client, request, lambda: client.emergency(rid, reason, a.minutes))
    return observe_http(f"emergency access {rid}", out, extra)


# ------------------------------------------------------------------------------------------- records


@runs(Timeline)
def run_timeline(ctx: Context, a: Timeline) -> Outcome:
    client, extra = acting_session(ctx, a)
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

    return observe_http(f"timeline {rid}", adapted(ctx, "timeline", client, request, default), extra)


@runs(Fetch)
def run_fetch(ctx: Context, a: Fetch) -> Outcome:
    client, extra = acting_session(ctx, a)
    rid = ctx.regional_id(a.patient, a.regional_id)
    source, entry = ctx.facility_code(a.source), ctx.text(a.entry)
    params = {"source": source, "entry": entry, "purpose": a.purpose}
    if a.timeout_ms is not None:
        params["timeout_ms"] = str(a.timeout_ms)
    request = AdapterRequest("fetch", rid, params=params)
    out = adapted(
        ctx, "fetch", client, request, lambda: client.fetch(rid, source, entry, a.purpose, a.timeout_ms)
    )
    obs, exchanges = observe_http(f"fetch {source}/{entry}", out, extra)
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
        token = admin_token(ctx)
        client = new_client(ctx)
        try:
            out = adapted(
                ctx, "access_report", client, request, lambda: client.access_report(rid, token=token)
            )
            return observe_http(f"access report {rid} (operator)", out)
        finally:
            client.close()
    client, extra = acting_session(ctx, a)
    out = adapted(ctx, "access_report", client, request, lambda: client.access_report(rid))
    return observe_http(f"access report {rid}", out, extra)


# ------------------------------------------------------------------------------------------- operator


@runs(AuditQuery)
def run_audit_query(ctx: Context, a: AuditQuery) -> Outcome:
    token = admin_token(ctx)
    patient = ctx.regional_id(a.patient, a.regional_id) if (a.patient or a.regional_id) else None
    since = ctx.maybe(a.since)
    client = new_client(ctx)
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

        return observe_http("audit query", adapted(ctx, "audit_query", client, request, default))
    finally:
        client.close()


@runs(AuditVerify)
def run_audit_verify(ctx: Context, a: AuditVerify) -> Outcome:
    token = admin_token(ctx)
    client = new_client(ctx)
    try:
        request = AdapterRequest("audit_verify", None)
        return observe_http(
            "audit verify", adapted(ctx, "audit_verify", client, request, lambda: client.audit_verify(token))
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
    out = call(ctx, lambda: set_fault(shard.admin_url, shard.admin_token, code, a.mode, a.ms))
    if a.mode == "up":
        ctx.faults.discard(code)
    elif 200 <= out.status < 300:
        ctx.faults.add(code)
    return observe_http(f"fault {code} {a.mode}", out)


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
