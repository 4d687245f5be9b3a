"""The HTTP step kinds against a small fake hub (FastAPI on 127.0.0.1, a real socket) that follows the hub's
HTTP contract: login/logout, patients, links, consent register/add/withdraw/get, emergency, timeline, fetch,
access report, audit, and a shard's fault endpoint. The fake keeps what it was asked, so the tests check
what the client sent as well as what the engine concluded. An adapter module (external-target mode) takes
over one step kind.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from harness.scenarios import LoadedScenario, WorldIndex, parse_scenario
from harness.scenarios.engine import run
from harness.targets import NetworkFile, Target, load_target

ADMIN, SHARD = "admin-token", "shard-token"


@dataclass
class FakeHub:
    """State of the fake: sessions, links, consent documents, faults, and every request seen."""

    users: dict[tuple[str, str], tuple[str, str]]  # (facility, user) → (password, viewer kind)
    disclosing: set[str]
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    documents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


def _refuse(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": {"reason": reason}}, status, headers=headers or None)


def fake_app(hub: FakeHub) -> FastAPI:
    app = FastAPI()

    def who(authorization: str | None) -> tuple[str, str] | None:
        return hub.tokens.get((authorization or "").removeprefix("Bearer "))

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        body = await request.body()
        hub.seen.append((request.method, request.url.path, body.decode() or None))
        response: Response = await call_next(request)
        return response

    @app.post("/auth/login")
    async def login(body: dict[str, str]) -> JSONResponse:
        key = (body["facility"], body["user_id"])
        if hub.failures.get(key, 0) >= 2:
            return _refuse(423, "locked", **{"Retry-After": "60"})
        if hub.users.get(key, ("",))[0] != body["password"]:
            hub.failures[key] = hub.failures.get(key, 0) + 1
            return _refuse(401, "invalid-credentials")
        token = secrets.token_hex(8)
        hub.tokens[token] = key
        kind = hub.users[key][1]
        reply = {"token": token, "token_type": "bearer", "expires": "2026-10-31T18:00:00+09:00"}
        return JSONResponse(reply | {"facility": key[0], "user_id": key[1], "viewer_kind": kind})

    @app.post("/auth/logout")
    async def logout(authorization: str | None = Header(None)) -> Response:
        hub.tokens.pop((authorization or "").removeprefix("Bearer "), None)
        return Response(status_code=204)

    @app.get("/patients/{rid}")
    async def patient(rid: str, authorization: str | None = Header(None)) -> JSONResponse:
        if who(authorization) is None:
            return _refuse(401, "not-authenticated")
        ids = [
            {"facility": f, "namespace": f"JP{f}", "local_id": lid}
            for (f, lid), r in hub.links.items()
            if r == rid
        ]
        return JSONResponse({"regional_id": rid, "identifiers": ids}) if ids else _refuse(404, "not-found")

    @app.post("/links")
    async def link(body: dict[str, Any], authorization: str | None = Header(None)) -> JSONResponse:
        user = who(authorization)
        if user is None:
            return _refuse(401, "not-authenticated")
        if user[0] not in hub.disclosing:
            return _refuse(403, "not-a-disclosing-facility")
        key = (body["facility"], body["local_id"])
        rid = body.get("regional_id") or hub.links.get(key) or f"R{next(hub.ids):07d}"
        if key in hub.links and hub.links[key] != rid:
            return _refuse(409, "linked-elsewhere")
        created = key not in hub.links
        hub.links[key] = rid
        return JSONResponse({"regional_id": rid, "facility": key[0], "local_id": key[1], "created": created})

    @app.delete("/links/{facility}/{local_id}")
    async def unlink(facility: str, local_id: str) -> JSONResponse:
        return JSONResponse({"unlinked": hub.links.pop((facility, local_id), None) is not None})

    def document(rid: str, body: dict[str, Any], status: str) -> JSONResponse:
        docs = hub.documents.setdefault(rid, [])
        if any(d["form_id"] == body["form_id"] for d in docs):
            return _refuse(409, "duplicate-form")
        docs.append(body)
        if status == "form":
            hub.current[rid] = {**body, "additions": [], "withdrawal": None}
        elif status == "addition":
            hub.current[rid]["additions"].append(body)
        else:
            hub.current[rid]["withdrawal"] = body
        return JSONResponse({"regional_id": rid, "current": hub.current[rid]}, 201)

    @app.post("/patients/{rid}/consents")
    async def consent(rid: str, body: dict[str, Any]) -> JSONResponse:
        if body.get("pattern") not in ("all", "all_except", "allow_list", "per_facility"):
            return _refuse(422, "invalid")
        return document(rid, body, "form")

    @app.post("/patients/{rid}/consents/additions")
    async def addition(rid: str, body: dict[str, Any]) -> JSONResponse:
        return document(rid, body, "addition")

    @app.post("/patients/{rid}/consents/withdrawals")
    async def withdrawal(rid: str, body: dict[str, Any]) -> JSONResponse:
        return document(rid, body, "withdrawal")

    @app.get("/patients/{rid}/consents")
    async def consents(rid: str) -> JSONResponse:
        return JSONResponse(
            {"regional_id": rid, "documents": hub.documents.get(rid, []), "current": hub.current.get(rid)}
        )

    def withdrawn(rid: str) -> bool:
        return bool(hub.current.get(rid, {}).get("withdrawal"))

    @app.post("/patients/{rid}/emergency")
    async def emergency(
        rid: str, body: dict[str, Any], authorization: str | None = Header(None)
    ) -> JSONResponse:
        user = who(authorization)
        if user is None:
            return _refuse(401, "not-authenticated")
        if withdrawn(rid):
            return _refuse(403, "withdrawn")
        if not hub.current.get(rid, {}).get("emergency_allowed"):
            return _refuse(403, "emergency-not-consented")
        grant = {"viewer_facility": user[0], "user_id": user[1], "reason": body["reason"]}
        return JSONResponse(
            grant | {"start": "2026-10-31T09:00:00+09:00", "end": "2026-10-31T09:30:00+09:00"}, 201
        )

    @app.get("/patients/{rid}/timeline")
    async def timeline(rid: str, request: Request) -> JSONResponse:
        sources = sorted({f for (f, _), r in hub.links.items() if r == rid})
        entries = [
            {"source": s, "id": f"E{n}", "kind": "ssmix2", "data_type": "OML-11", "category": "lab_results",
             "time": "20260105101500", "care_date": "20260105", "flag": "1", "size": 120,
             "content_type": "application/hl7-v2", "title": "検体検査結果"}
            for n, s in enumerate(sources)
        ]  # fmt: skip
        status = [
            {"facility": s, "status": "ok", "reason": "", "entries": 1, "elapsed_ms": 3.5} for s in sources
        ]
        params = dict(request.query_params)
        return JSONResponse({"regional_id": rid, "entries": entries, "sources": status, "params": params})

    @app.get("/patients/{rid}/entries/{source}/{entry}")
    async def fetch(rid: str, source: str, entry: str) -> Response:
        if withdrawn(rid):
            return _refuse(403, "withdrawn")
        return Response(
            b"MSH|^~\\&|HIS|" + source.encode() + b"|||||OML^O33|1|P|2.5\r", media_type="application/hl7-v2"
        )

    @app.get("/patients/{rid}/access-report")
    async def access(rid: str) -> JSONResponse:
        rows = [
            {
                "time": "",
                "facility": "",
                "user": "",
                "action": m.lower(),
                "target": p,
                "outcome": "ok",
                "reason": "",
            }
            for m, p, _ in hub.seen
            if rid in p
        ]
        return JSONResponse({"regional_id": rid, "rows": rows})

    @app.get("/audit")
    async def audit(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
        if authorization != f"Bearer {ADMIN}":
            return _refuse(401, "not-the-operator")
        limit = int(request.query_params.get("limit", "100"))
        return JSONResponse(
            {"records": [{"seq": n, "action": m} for n, (m, _, _) in enumerate(hub.seen)][:limit]}
        )

    @app.get("/audit/verify")
    async def verify(authorization: str | None = Header(None)) -> JSONResponse:
        if authorization != f"Bearer {ADMIN}":
            return _refuse(401, "not-the-operator")
        return JSONResponse({"ok": True, "problems": [], "head": {}})

    @app.post("/shard/faults/{code}")
    async def fault(
        code: str, body: dict[str, Any], authorization: str | None = Header(None)
    ) -> JSONResponse:
        if authorization != f"Bearer {SHARD}":
            return _refuse(401, "not-the-operator")
        hub.faults[code] = body["mode"]
        return JSONResponse({"facility": code, **body})

    @app.put("/vendor/consent/{rid}")
    async def vendor_consent(rid: str, body: dict[str, Any]) -> JSONResponse:
        return document(rid, {**body, "via": "vendor"}, "form")

    return app


@pytest.fixture
def fake(world: WorldIndex) -> Iterator[tuple[FakeHub, Target]]:
    users = {(u.facility, u.user_id): (u.password, u.viewer_kind) for f in world.facilities for u in f.users}
    hub = FakeHub(users, {f.code for f in world.facilities if f.disclosing})
    server = uvicorn.Server(uvicorn.Config(fake_app(hub), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the fake hub did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    codes = [f.code for f in world.facilities]
    network = NetworkFile.model_validate(
        {"shards": [{"admin_url": f"{url}/shard", "admin_token": SHARD, "facilities": codes}]}
    )
    target = Target("fake", "external", None, url, world.users(), admin_token=ADMIN, network=network)
    try:
        yield hub, target
    finally:
        server.should_exit = True
        thread.join(10)


EVERY_HTTP_KIND = """\
schema_version: 1
id: every-http-kind
title: every HTTP step kind
remarks: engine test against a fake hub
given:
  patients:
    p: {consent: allow_list}
  facilities:
    A: {disclosing: true}
    B: {disclosing: true}
    V: {kind: clinic, user_kind: nurse}
steps:
  - login: {facility: V, user_kind: nurse, password: wrong, as: bad}
    expect: [{id: AUTH-wrong-password, that: {status: 401, "json:detail.reason": invalid-credentials}}]
  - login: {facility: V, user_kind: nurse, password: wrong, as: bad}
    expect: [{id: AUTH-wrong-password, that: {status: 401}}]
  - login: {facility: V, user_kind: nurse, as: bad}
    expect: [{id: AUTH-locked, that: {status: 423, "header:retry-after": {present: true}}}]
  - login: {facility: V, user_kind: physician, as: viewer}
    expect:
      - id: AUTH-login
        that:
          status: 200
          "json:token_type": bearer
          "json:facility": "${V.code}"
          "json:viewer_kind": physician
  - link: {session: viewer, patient: p, facility: A}
    expect: [{id: LINK-viewer-refused, that: {status: 403, "json:detail.reason": not-a-disclosing-facility}}]
  - link: {by: A, patient: p}
    expect:
      - {id: LINK-created, that: {status: 200, "json:created": true, "json:local_id": "${p.local_id@A}"}}
  - link: {by: A, patient: p, facility: B}
    expect: [{id: LINK-second, that: {status: 200, "json:regional_id": "${p.rid}", "json:created": true}}]
  - patient_get: {session: viewer, patient: p}
    expect:
      - id: PATIENT-identifiers
        that: {status: 200, "json:identifiers[*].local_id": {set: ["${p.local_id@A}", "${p.local_id@B}"]}}
  - consent_register:
      {by: A, patient: p, form_id: "F${scenario.tag}", pattern: allow_list, facilities: [A, V],
       emergency_allowed: true}
    expect:
      - id: CONSENT-registered
        that:
          status: 201
          "json:current.facilities": {set: ["${A.code}", "${V.code}"]}
          "json:current.signed_on": "${world.today}"
  - consent_register: {by: A, patient: p, form_id: "F${scenario.tag}", pattern: all}
    expect: [{id: CONSENT-duplicate-form, that: {status: 409}}]
  - consent_add: {by: A, patient: p, base_form_id: "F${scenario.tag}", facility: B, signed_on: "2026-10-01"}
    expect: [{id: CONSENT-added, that: {status: 201, "json:current.additions[0].facility": "${B.code}"}}]
  - consent_get: {by: A, patient: p}
    expect: [{id: CONSENT-history, that: {"json:documents": {len: 2}, "json:current.pattern": allow_list}}]
  - timeline:
      {session: viewer, patient: p, categories: [lab_results, images], since: "20260101", purpose: care}
    capture: {source: "json:entries[0].source", entry: "json:entries[0].id"}
    expect:
      - id: TIMELINE-entries
        that:
          status: 200
          "json:entries": {len: 2}
          "json:sources[*].status": [ok, ok]
          "json:params.categories": "lab_results,images"
          "json:params.from": "20260101"
  - fetch: {session: viewer, patient: p, source: "${source}", entry: "${entry}"}
    expect:
      - id: FETCH-entry
        that: {status: 200, content_type: {matches: hl7}, body_size: {gt: 10}, text: {matches: "^MSH"}}
  - emergency: {session: viewer, patient: p, reason: 意識障害で救急搬送, minutes: 30}
    expect:
      - id: EMERGENCY-granted
        that: {status: 201, "json:viewer_facility": "${V.code}", "json:reason": 意識障害で救急搬送}
  - access_report: {by: A, patient: p}
    expect: [{id: ACCESS-report, that: {status: 200, "json:rows[*].action": {contains: get}}}]
  - audit_query: {patient: p, limit: 3}
    expect: [{id: AUDIT-query, that: {status: 200, "json:records": {len: 3}}}]
  - audit_verify: {}
    expect: [{id: AUDIT-verify, that: {"json:ok": true}}]
  - fault: {gateway: A, mode: slow, ms: 500}
    expect: [{id: FAULT-set, that: {status: 200, "json:mode": slow, "json:ms": 500}}]
  - consent_withdraw: {by: A, patient: p, base_form_id: "F${scenario.tag}"}
    expect:
      - id: CONSENT-withdrawn
        that: {status: 201, "json:current.withdrawal.withdrawn_on": "${world.today}"}
  - fetch: {session: viewer, patient: p, source: "${source}", entry: "${entry}"}
    expect: [{id: CONSENT-withdrawn-denies-fetch, that: {status: 403, "json:detail.reason": withdrawn}}]
  - emergency: {session: viewer, patient: p}
    expect: [{id: CONSENT-withdrawn-ends-emergency, that: {status: 403, "json:detail.reason": withdrawn}}]
  - logout: {session: viewer}
    expect: [{id: AUTH-logout, that: {status: 204}}]
  - patient_get: {session: viewer, patient: p}
    expect: [{id: AUTH-token-revoked, that: {status: 401}}]
  - unlink: {by: A, patient: p, facility: B}
    expect: [{id: LINK-unlinked, that: {"json:unlinked": true}}]
"""


def scenario(text: str) -> LoadedScenario:
    return parse_scenario(text, "http.yaml", suite="http")


def test_every_http_step_kind(fake: tuple[FakeHub, Target], world: WorldIndex) -> None:
    hub, target = fake
    result = run([scenario(EVERY_HTTP_KIND)], target, world)
    bad = [f"{a.assertion_id}: {a.message} {a.actual}" for a in result.assertions() if a.status != "passed"]
    assert not bad, bad
    steps = result.scenarios[0].steps
    http_kinds = (
        "login logout link unlink patient_get consent_register consent_add consent_get consent_withdraw"
    )
    http_kinds += " emergency timeline fetch access_report audit_query audit_verify fault"
    assert {s.kind for s in steps} == set(http_kinds.split())
    a = result.scenarios[0].given["facilities"]["A"]["code"]
    assert hub.faults[a] == "up"  # the scenario's fault was undone when it ended
    logins = [body for method, path, body in hub.seen if path == "/auth/login"]
    assert len(logins) == 5  # three wrong, the viewer's, and one automatic login for A (reused after)
    first_by_a = next(s for s in steps if s.kind == "link" and len(s.exchanges) == 2)
    assert [e.operation for e in first_by_a.exchanges] == ["login", ""]  # the automatic login, then the link
    assert first_by_a.index == 6
    assert sum(len(s.exchanges) for s in steps if s.kind == "link") == 4  # A's session was reused


def test_a_wrong_http_expectation_fails_with_the_exchange(
    fake: tuple[FakeHub, Target], world: WorldIndex
) -> None:
    _, target = fake
    text = EVERY_HTTP_KIND.replace(
        '{status: 403, "json:detail.reason": withdrawn}}]\n  - emergency', "{status: 200}}]\n  - emergency"
    )
    result = run([scenario(text)], target, world)
    [wrong] = [a for a in result.assertions() if a.status != "passed"]
    assert wrong.assertion_id == "CONSENT-withdrawn-denies-fetch"
    assert wrong.status == "failed"
    assert (wrong.checks[0].expected, wrong.checks[0].actual) == ("= 200", "403")
    [exchange] = wrong.evidence
    assert exchange.protocol == "http"
    assert exchange.request.startswith("GET http://127.0.0.1:")
    assert exchange.response is not None
    assert exchange.response.startswith("HTTP 403 application/json")
    assert '"reason": "withdrawn"' in exchange.response


def test_unknown_session_users_and_missing_operator_token(
    fake: tuple[FakeHub, Target], world: WorldIndex
) -> None:
    _, target = fake
    text = EVERY_HTTP_KIND.replace(
        "{facility: V, user_kind: physician, as: viewer}", "{facility: V, user_kind: astronaut, as: viewer}"
    )
    result = run([scenario(text)], target, world)
    login = next(a for a in result.assertions() if a.assertion_id == "AUTH-login")
    assert login.status == "error"
    assert "astronaut" in login.message
    no_admin = replace(target, admin_token=None)
    audit = next(
        a
        for a in run([scenario(EVERY_HTTP_KIND)], no_admin, world).assertions()
        if a.assertion_id == "AUDIT-query"
    )
    assert audit.status == "error"
    assert "no admin token" in audit.message


ADAPTER = '''\
"""A vendor adapter: this hub takes consent forms with PUT /vendor/consent/{rid}."""
from harness.hubclient import HttpOutcome, HubClient
from harness.hubclient import AdapterRequest


def consent_register(client: HubClient, request: AdapterRequest) -> HttpOutcome:
    return client.request("PUT", f"/vendor/consent/{request.regional_id}", body=dict(request.body))
'''


def test_external_target_with_an_adapter(
    fake: tuple[FakeHub, Target], world: WorldIndex, tmp_path: Path
) -> None:
    hub, target = fake
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "vendor_rhin_adapter.py").write_text(ADAPTER, encoding="utf-8")
    (tmp_path / "target.yaml").write_text(
        f"""\
schema_version: 1
name: vendor with adapter
http: {{base_url: "{target.http}"}}
admin_token: {ADMIN}
adapter: vendor_rhin_adapter
adapter_path: adapters
""",
        encoding="utf-8",
    )
    external = load_target(tmp_path / "target.yaml", world)
    assert external.adapter is not None
    assert "feed" not in external.supports  # no MLLP address
    assert "fault" not in external.supports  # no network file
    text = EVERY_HTTP_KIND.split(
        '  - consent_register: {by: A, patient: p, form_id: "F${scenario.tag}", pattern: all}'
    )[0]
    result = run([scenario(text)], external, world)
    assert result.ok, [a.message for a in result.assertions() if a.status != "passed"]
    vendor = [p for m, p, _ in hub.seen if m == "PUT"]
    assert len(vendor) == 1
    assert vendor[0].startswith("/vendor/consent/R")
    assert not any(m == "POST" and p.endswith("/consents") for m, p, _ in hub.seen)
    assert all(d.get("via") == "vendor" for docs in hub.documents.values() for d in docs)


def test_evidence_never_holds_passwords_or_tokens(fake: tuple[FakeHub, Target], world: WorldIndex) -> None:
    _, target = fake
    result = run([scenario(EVERY_HTTP_KIND)], target, world)
    shown = json.dumps([dataclasses.asdict(s) for s in result.scenarios], ensure_ascii=False)
    for users in world.users().values():
        for user in users:
            assert f'"{user.password}"' not in shown.replace('\\"', '"')
    assert '\\"password\\": \\"<redacted>\\"' in shown
    assert '\\"token\\": \\"<redacted>\\"' in shown
