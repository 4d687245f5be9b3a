"""The hub's HTTP API over real sockets: login and lockout, linking, consent, emergency access, audit.

Each test runs the real hub (MLLP + HTTP, stores on disk) for a mini world without storage, feeds patients
over ITI-8 as facilities would, and drives the API with httpx. Every state change is checked in the audit
log too, since "who did what" is half of what the API is for.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hl7wire import UTF8, BlockingClient, decode
from simulator.hub.audit import AuditLog

from .hubrun import RunningHub, running_hub


@pytest.fixture(scope="module")
def facilities(bare_world: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((bare_world / "world.json").read_text(encoding="utf-8"))
    return {f["code"]: f for f in doc["facilities"]}


@pytest.fixture
def hub(bare_world: Path, tmp_path: Path) -> Iterator[RunningHub]:
    with running_hub(bare_world, tmp_path / "data") as running:
        yield running


def disclosing(facilities: dict[str, dict[str, Any]], n: int = 0) -> dict[str, Any]:
    return [f for f in facilities.values() if f["network_role"] == "disclosing"][n]


def viewing(facilities: dict[str, dict[str, Any]], kind: str = "clinic", n: int = 0) -> dict[str, Any]:
    return [f for f in facilities.values() if f["network_role"] == "viewing" and f["kind"] == kind][n]


def user_of(facility: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    return next(u for u in facility["users"] if kind is None or u["viewer_kind"] == kind)


def login(hub: RunningHub, facility: dict[str, Any], kind: str | None = None) -> httpx.Client:
    user = user_of(facility, kind)
    return hub.client(hub.login(facility["code"], user["user_id"], user["password"]))


def feed(hub: RunningHub, facility: dict[str, Any], local_id: str, control: str) -> None:
    ns = facility["assigning_authority"]["namespace"]
    text = (
        f"MSH|^~\\&|HIS|{facility['code']}|RHIN_HUB|RHIN|20261101093000+0900||ADT^A04^ADT_A01|{control}|P|2.5"
        "||||||UNICODE UTF-8\r"
        "EVN|A04|20261101093000\r"
        f"PID|1||{local_id}^^^{ns}^PI||北陸^花子^^^^^L^I~ホクリク^ハナコ^^^^^L^P||19600101|F\r"
    )
    with BlockingClient(*hub.mllp, timeout=10, tls=hub.mllp_tls(facility["code"])) as client:
        reply, _ = decode(client.send(text.encode(UTF8)))
    assert reply.get("MSA", 1) == "AA", reply


def linked_patient(hub: RunningHub, facilities: dict[str, dict[str, Any]]) -> tuple[str, httpx.Client]:
    """A patient fed and linked at the first disclosing facility and the first viewing clinic."""
    source, clinic = disclosing(facilities), viewing(facilities)
    feed(hub, source, "P0001", "F1")
    feed(hub, clinic, "C0001", "F2")
    staff = login(hub, source)
    first = staff.post("/links", json={"facility": source["code"], "local_id": "P0001"})
    assert first.status_code == 200, first.text
    rid = first.json()["regional_id"]
    second = staff.post("/links", json={"facility": clinic["code"], "local_id": "C0001", "regional_id": rid})
    assert second.status_code == 200, second.text
    return rid, staff


def audit(hub: RunningHub) -> list[Any]:
    with AuditLog(hub.data / "audit.sqlite") as log:
        return log.records()


# ------------------------------------------------------------------------------------------------ login


def test_login_gives_a_token_that_expires(hub: RunningHub, facilities: dict[str, dict[str, Any]]) -> None:
    source = disclosing(facilities)
    user = user_of(source)
    with hub.client() as c:
        reply = c.post(
            "/auth/login",
            json={"facility": source["code"], "user_id": user["user_id"], "password": user["password"]},
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "bearer"
    assert (body["facility"], body["user_id"], body["viewer_kind"]) == (
        source["code"],
        user["user_id"],
        user["viewer_kind"],
    )
    with hub.client(body["token"]) as c:
        assert c.get("/patients/R000000001").status_code == 404  # authenticated: the patient is unknown
        hub.clock.advance(hours=9)  # sessions last 8 hours
        expired = c.get("/patients/R000000001")
    assert expired.status_code == 401
    assert expired.json()["detail"]["reason"] == "invalid-token"
    assert expired.headers["www-authenticate"] == "Bearer"


def test_passwords_are_stored_hashed(hub: RunningHub, facilities: dict[str, dict[str, Any]]) -> None:
    source = disclosing(facilities)
    user = user_of(source)
    hub.login(source["code"], user["user_id"], user["password"])
    raw = (hub.data / "accounts.sqlite").read_bytes()
    wal = hub.data / "accounts.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert user["password"].encode() not in raw


def test_bad_logins_are_indistinguishable_slow_down_lock_and_are_audited(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    source = disclosing(facilities)
    user = user_of(source)
    body = {"facility": source["code"], "user_id": user["user_id"], "password": "wrong"}
    with hub.client() as c:
        unknown = c.post("/auth/login", json={**body, "user_id": "nobody"})
        wrong = c.post("/auth/login", json=body)
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json() == wrong.json()
        assert wrong.json()["detail"]["reason"] == "invalid-credentials"
        too_soon = c.post("/auth/login", json={**body, "password": user["password"]})
        assert too_soon.status_code == 429
        assert int(too_soon.headers["retry-after"]) >= 1
        for _ in range(4):  # 5 failures lock the account
            hub.clock.advance(minutes=1)
            last = c.post("/auth/login", json=body)
        assert last.status_code == 423
        hub.clock.advance(minutes=1)
        locked = c.post("/auth/login", json={**body, "password": user["password"]})
        assert locked.status_code == 423  # even the right password, while locked
        assert locked.json()["detail"]["reason"] == "locked"
        hub.clock.advance(minutes=16)
        assert c.post("/auth/login", json={**body, "password": user["password"]}).status_code == 200
    logins = [(r.actor_user, r.outcome, r.reason) for r in audit(hub) if r.action == "login"]
    assert logins[0] == ("nobody", "failure", "unknown-user")
    assert logins[1] == (user["user_id"], "failure", "bad-password")
    assert ("failure", "retry-later") in [(o, r) for _, o, r in logins]
    assert logins[-2] == (user["user_id"], "failure", "locked")
    assert logins[-1][:2] == (user["user_id"], "success")


def test_every_route_but_login_and_health_needs_a_token(hub: RunningHub) -> None:
    with hub.client() as c:
        assert c.get("/health").status_code == 200
        for method, path in [
            ("GET", "/patients/R000000001"),
            ("POST", "/links"),
            ("POST", "/patients/R000000001/consents"),
            ("POST", "/patients/R000000001/emergency"),
            ("GET", "/patients/R000000001/timeline"),
            ("GET", "/patients/R000000001/access-report"),
            ("GET", "/audit"),
        ]:
            reply = c.request(method, path, json={} if method == "POST" else None)
            assert reply.status_code in (401, 422), (method, path, reply.text)
            if reply.status_code == 422:  # body validation ran first; without a body it must still be 401
                assert c.request(method, path).status_code in (401, 422)
        assert c.get("/patients/R000000001", headers={"Authorization": "Bearer forged"}).status_code == 401
        assert c.get("/audit", headers={"Authorization": "Bearer forged"}).status_code == 401


# ------------------------------------------------------------------------------------------------ links


def test_linking_by_a_disclosing_facility(hub: RunningHub, facilities: dict[str, dict[str, Any]]) -> None:
    rid, staff = linked_patient(hub, facilities)
    source, clinic = disclosing(facilities), viewing(facilities)
    again = staff.post("/links", json={"facility": source["code"], "local_id": "P0001"})
    assert again.json() == {
        "regional_id": rid,
        "facility": source["code"],
        "local_id": "P0001",
        "created": False,
        "others": [],
    }
    patient = staff.get(f"/patients/{rid}").json()
    assert {(i["facility"], i["local_id"]) for i in patient["identifiers"]} == {
        (source["code"], "P0001"),
        (clinic["code"], "C0001"),
    }
    # Never fed → 404; linked elsewhere → 409; a viewing facility may not link.
    assert staff.post("/links", json={"facility": source["code"], "local_id": "NOPE1"}).status_code == 404
    feed(hub, source, "P0002", "F3")
    other = staff.post("/links", json={"facility": source["code"], "local_id": "P0002"}).json()["regional_id"]
    conflict = staff.post(
        "/links", json={"facility": source["code"], "local_id": "P0002", "regional_id": rid}
    )
    assert conflict.status_code == 409
    assert other != rid
    viewer = login(hub, clinic)
    refused = viewer.post("/links", json={"facility": clinic["code"], "local_id": "C0001"})
    assert refused.status_code == 403
    assert refused.json()["detail"]["reason"] == "not-disclosing"
    # Unlink, and the regional patient no longer lists that ID.
    assert staff.delete(f"/links/{clinic['code']}/C0001").json() == {"unlinked": True}
    assert staff.delete(f"/links/{clinic['code']}/C0001").json() == {"unlinked": False}
    ids = staff.get(f"/patients/{rid}").json()["identifiers"]
    assert [i["local_id"] for i in ids] == ["P0001"]
    links = [(r.outcome, r.target, r.reason) for r in audit(hub) if r.action == "link"]
    assert ("failure", f"{source['code']}|NOPE1", "unknown-local-id") in links
    assert ("failure", f"{clinic['code']}|C0001", "not-disclosing") in links
    assert ("failure", f"{source['code']}|P0002", "link-conflict") in links


# ------------------------------------------------------------------------------------------------ consent


def test_consent_register_add_withdraw_and_history(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    rid, staff = linked_patient(hub, facilities)
    source, clinic = disclosing(facilities), viewing(facilities)
    care = viewing(facilities, "care")
    form = {
        "form_id": "CF-1",
        "pattern": "per_facility",
        "facilities": [source["code"]],
        "signed_on": "2026-11-01",
        "emergency_allowed": True,
    }
    created = staff.post(f"/patients/{rid}/consents", json=form)
    assert created.status_code == 201, created.text
    current = created.json()["current"]
    assert (current["pattern"], current["taken_at"], current["active_today"]) == (
        "per_facility",
        source["code"],
        True,
    )
    assert staff.post(f"/patients/{rid}/consents", json=form).status_code == 409  # same form ID
    bad = staff.post(
        f"/patients/{rid}/consents", json={**form, "form_id": "CF-X", "facilities": ["9999999999"]}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"]["reason"] == "unknown-facility"
    add = {"form_id": "CA-1", "base_form_id": "CF-1", "facility": clinic["code"], "signed_on": "2026-11-05"}
    added = staff.post(f"/patients/{rid}/consents/additions", json=add)
    assert added.status_code == 201, added.text
    assert [a["facility"] for a in added.json()["current"]["additions"]] == [clinic["code"]]
    again = staff.post(f"/patients/{rid}/consents/additions", json={**add, "form_id": "CA-2"})
    assert again.status_code == 422  # already covered
    # A facility not linked to the patient and outside its consent is not even told the patient exists.
    outsider = login(hub, care)
    hidden = outsider.get(f"/patients/{rid}/consents")
    assert (hidden.status_code, hidden.json()["detail"]["reason"]) == (404, "unknown-patient")
    withdrawal = {"form_id": "CW-1", "base_form_id": "CF-1", "withdrawn_on": "2026-11-10"}
    withdrawn = staff.post(f"/patients/{rid}/consents/withdrawals", json=withdrawal)
    assert withdrawn.status_code == 201
    assert withdrawn.json()["current"]["active_today"] is False
    assert (
        staff.post(
            f"/patients/{rid}/consents/withdrawals", json={**withdrawal, "form_id": "CW-2"}
        ).status_code
        == 409
    )
    history = staff.get(f"/patients/{rid}/consents").json()
    assert [(d["kind"], d["form_id"]) for d in history["documents"]] == [
        ("form", "CF-1"),
        ("addition", "CA-1"),
        ("withdrawal", "CW-1"),
    ]
    actions = [(r.action, r.outcome, r.target) for r in audit(hub) if r.action.startswith("consent-")]
    assert ("consent-register", "success", "CF-1") in actions
    assert ("consent-register", "failure", "CF-1") in actions
    assert ("consent-add", "success", "CA-1") in actions
    assert ("consent-withdraw", "success", "CW-1") in actions


def test_consent_for_an_unknown_patient_is_404(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    staff = login(hub, disclosing(facilities))
    reply = staff.post(
        "/patients/R999999999/consents",
        json={"form_id": "F", "pattern": "all", "signed_on": "2026-11-01"},
    )
    assert reply.status_code == 404
    assert reply.json()["detail"]["reason"] == "unknown-patient"


# ------------------------------------------------------------------------------------------------ emergency


def test_emergency_access_only_where_consented_and_time_limited(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    rid, staff = linked_patient(hub, facilities)
    clinic = viewing(facilities)
    viewer = login(hub, clinic)
    none = viewer.post(f"/patients/{rid}/emergency", json={"reason": "意識障害で救急搬送"})
    assert none.status_code == 403  # no consent form at all
    form = {"form_id": "E-1", "pattern": "all", "signed_on": "2026-11-01", "emergency_allowed": False}
    assert staff.post(f"/patients/{rid}/consents", json=form).status_code == 201
    refused = viewer.post(f"/patients/{rid}/emergency", json={"reason": "意識障害で救急搬送"})
    assert refused.status_code == 403
    assert refused.json()["detail"]["reason"] == "emergency-not-allowed"
    assert viewer.post(f"/patients/{rid}/emergency", json={"reason": ""}).status_code == 422
    assert (
        staff.post(
            f"/patients/{rid}/consents", json={**form, "form_id": "E-2", "emergency_allowed": True}
        ).status_code
        == 201
    )
    granted = viewer.post(f"/patients/{rid}/emergency", json={"reason": "意識障害で救急搬送", "minutes": 30})
    assert granted.status_code == 201, granted.text
    body = granted.json()
    start, end = dt.datetime.fromisoformat(body["start"]), dt.datetime.fromisoformat(body["end"])
    assert end - start == dt.timedelta(minutes=30)
    assert start.utcoffset() == end.utcoffset() == dt.timedelta(hours=9)  # JST, said as such
    assert body["viewer_facility"] == clinic["code"]
    grants = [(r.outcome, r.reason) for r in audit(hub) if r.action == "emergency-grant"]
    assert grants[-1] == ("success", "意識障害で救急搬送")
    assert [o for o, _ in grants] == ["failure", "failure", "success"]


def test_writes_the_schema_refuses_are_audited_without_their_values(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    """A 422 write is still an attempt: who (if their token is live), what, on which patient; no values."""
    rid, staff = linked_patient(hub, facilities)
    bad = staff.post(f"/patients/{rid}/consents", json={"form_id": "X-1", "pattern": "sometimes"})
    assert bad.status_code == 422
    with hub.client() as anonymous:
        secret = "hunter2-not-in-the-log"
        reply = anonymous.post("/auth/login", json={"facility": 12, "password": secret})
        assert reply.status_code == 422
    assert staff.get(f"/patients/{rid}/consents").status_code == 200  # reads that fail are not writes
    rejected = [r for r in audit(hub) if r.action == "rejected-request"]
    assert [(r.patient, r.target, r.outcome, r.reason) for r in rejected] == [
        (rid, f"POST /patients/{rid}/consents", "failure", "invalid-request"),
        ("", "POST /auth/login", "failure", "invalid-request"),
    ]
    assert rejected[0].actor_user  # the staff member's live session …
    assert rejected[0].actor_facility  # … and their facility
    assert (rejected[1].actor_facility, rejected[1].actor_user) == ("", "")
    assert "body.pattern" in json.loads(rejected[0].details)["fields"]
    assert all(secret not in r.details and "sometimes" not in r.details for r in rejected)


# ------------------------------------------------------------------------------------------------ audit


def test_audit_routes_need_the_operator_and_verify_the_chain(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    rid, staff = linked_patient(hub, facilities)
    assert staff.get("/audit").status_code == 401  # a facility user is not the operator
    with hub.client(hub.admin_token) as op:
        records = op.get("/audit", params={"patient": rid}).json()["records"]
        assert {r["action"] for r in records} >= {"link"}
        assert all(r["patient"] == rid for r in records)
        only = op.get("/audit", params={"action": "login"}).json()["records"]
        assert only
        assert {r["action"] for r in only} == {"login"}
        assert op.get("/audit/verify").json()["ok"] is True
        report = op.get(f"/patients/{rid}/access-report")
        assert report.status_code == 200
        # Tamper with one record behind the hub's back: verification names it.
        con = sqlite3.connect(hub.data / "audit.sqlite")
        con.execute("UPDATE audit SET outcome = 'success' WHERE seq = 2")
        con.commit()
        con.close()
        verdict = op.get("/audit/verify").json()
    assert verdict["ok"] is False
    assert {"seq": 2, "issue": "hash-mismatch"} in verdict["problems"]


def test_access_report_for_linked_facilities_only(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    rid, staff = linked_patient(hub, facilities)
    assert staff.get(f"/patients/{rid}/access-report").status_code == 200
    outsider = login(hub, viewing(facilities, "care"))
    hidden = outsider.get(f"/patients/{rid}/access-report")  # unrelated: the patient is not even admitted
    assert (hidden.status_code, hidden.json()["detail"]["reason"]) == (404, "unknown-patient")
    form = {"form_id": "AR-1", "pattern": "all", "signed_on": "2026-11-01"}
    assert staff.post(f"/patients/{rid}/consents", json=form).status_code == 201
    refused = outsider.get(f"/patients/{rid}/access-report")  # within the consent now, still not linked
    assert (refused.status_code, refused.json()["detail"]["reason"]) == (403, "not-linked")


def test_hub_restart_keeps_accounts_links_consents_and_audit(
    bare_world: Path, tmp_path: Path, facilities: dict[str, dict[str, Any]]
) -> None:
    data = tmp_path / "data"
    with running_hub(bare_world, data) as hub:
        rid, staff = linked_patient(hub, facilities)
        form = {"form_id": "K-1", "pattern": "all", "signed_on": "2026-11-01"}
        assert staff.post(f"/patients/{rid}/consents", json=form).status_code == 201
        token = hub.admin_token
        count = len(audit(hub))
    with running_hub(bare_world, data) as hub:
        assert hub.admin_token == token
        staff = login(hub, disclosing(facilities))
        assert staff.get(f"/patients/{rid}/consents").json()["current"]["form_id"] == "K-1"
        assert len(staff.get(f"/patients/{rid}").json()["identifiers"]) == 2
        assert len(audit(hub)) > count
        with hub.client(hub.admin_token) as op:
            assert op.get("/audit/verify").json()["ok"] is True


def test_openapi_is_published(hub: RunningHub) -> None:
    with hub.client() as c:
        spec = c.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/auth/login",
        "/links",
        "/patients/{regional_id}/consents",
        "/patients/{regional_id}/consents/additions",
        "/patients/{regional_id}/consents/withdrawals",
        "/patients/{regional_id}/emergency",
        "/patients/{regional_id}/timeline",
        "/patients/{regional_id}/entries/{source}/{entry_id}",
        "/patients/{regional_id}/access-report",
        "/audit",
        "/audit/verify",
    } <= paths


def test_one_link_operation_ties_several_ids_all_or_nothing(
    hub: RunningHub, facilities: dict[str, dict[str, Any]]
) -> None:
    source, other, clinic = disclosing(facilities), disclosing(facilities, 1), viewing(facilities)
    for facility, local_id, control in (
        (source, "M0001", "G1"),
        (other, "M0002", "G2"),
        (clinic, "M0003", "G3"),
    ):
        feed(hub, facility, local_id, control)
    staff = login(hub, source)
    body = {
        "facility": source["code"],
        "local_id": "M0001",
        "others": [
            {"facility": other["code"], "local_id": "M0002"},
            {"facility": clinic["code"], "local_id": "M0003"},
        ],
    }
    reply = staff.post("/links", json=body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["created"] is True
    assert [(o["local_id"], o["created"]) for o in answer["others"]] == [("M0002", True), ("M0003", True)]
    ids = staff.get(f"/patients/{answer['regional_id']}").json()["identifiers"]
    assert sorted(i["local_id"] for i in ids) == ["M0001", "M0002", "M0003"]
    assert staff.post("/links", json=body).json()["others"][0]["created"] is False  # idempotent
    # A conflict anywhere in the list (M0009 and M0002 belong to different regional patients) links nothing.
    feed(hub, source, "M0009", "G4")
    feed(hub, clinic, "M0008", "G5")
    assert staff.post("/links", json={"facility": source["code"], "local_id": "M0009"}).status_code == 200
    clash = {
        "facility": source["code"],
        "local_id": "M0009",
        "others": [
            {"facility": clinic["code"], "local_id": "M0008"},
            {"facility": other["code"], "local_id": "M0002"},
        ],
    }
    refused = staff.post("/links", json=clash)
    assert refused.status_code == 409
    assert refused.json()["detail"]["reason"] == "link-conflict"
    lone = staff.post("/links", json={"facility": clinic["code"], "local_id": "M0008"}).json()
    assert lone["created"] is True  # M0008 was not linked by the refused operation


def test_a_paper_dated_after_today_is_refused(hub: RunningHub, facilities: dict[str, dict[str, Any]]) -> None:
    rid, staff = linked_patient(hub, facilities)
    tomorrow = (hub.clock().date() + dt.timedelta(days=1)).isoformat()
    form = {"form_id": "FUT-1", "pattern": "all", "signed_on": tomorrow}
    refused = staff.post(f"/patients/{rid}/consents", json=form)
    assert refused.status_code == 422
    assert refused.json()["detail"]["reason"] == "dated-in-the-future"
    assert (
        staff.post(f"/patients/{rid}/consents", json={**form, "signed_on": "2026-11-01"}).status_code == 201
    )
    late = {"form_id": "W-FUT", "base_form_id": "FUT-1", "withdrawn_on": tomorrow}
    assert staff.post(f"/patients/{rid}/consents/withdrawals", json=late).status_code == 422


# ------------------------------------------------------------------------------------------------ contract

GOLDEN_OPENAPI = Path(__file__).parent / "golden" / "hub_openapi.json"


def openapi_contract(spec: dict[str, Any]) -> dict[str, Any]:
    """What clients depend on, per operation: path, method, operation ID, tags, parameters, body and
    response codes and shapes, with schema references resolved and titles and descriptions dropped — so
    the model *names* (``components``) and docstrings may change, the wire may not."""
    schemas = spec.get("components", {}).get("schemas", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(schemas[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items() if k not in ("title", "description")}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return {
        f"{method.upper()} {path}": resolve(
            {
                k: op.get(k)
                for k in ("operationId", "tags", "parameters", "requestBody", "responses", "security")
            }
        )
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }


def test_the_wire_contract_is_the_golden_one() -> None:
    """Routes moved between modules (routers per concern) must not move on the wire. After a deliberate
    API change, rewrite the golden file: ``python -m tests.test_hub_api``."""
    from unittest.mock import MagicMock

    from simulator.hub.api import create_app

    got = openapi_contract(create_app(MagicMock()).openapi())
    want = json.loads(GOLDEN_OPENAPI.read_text(encoding="utf-8"))
    assert list(got) == list(want)  # the same operations, in the same order
    for key in want:
        assert got[key] == want[key], key


def test_top_level_answers_are_replies_and_bodies_requests() -> None:
    """One naming rule for the hub's models: a JSON answer is a ``...Reply``, a JSON body a ``...Request``."""
    from unittest.mock import MagicMock

    from simulator.hub.api import create_app

    spec = create_app(MagicMock()).openapi()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                assert body["$ref"].endswith("Request"), (method, path, body)
            for status, answer in op["responses"].items():
                shape = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if status.startswith("2") and "$ref" in shape:
                    assert shape["$ref"].endswith("Reply"), (method, path, shape)


def test_one_more_router_joins_after_the_standard_ones() -> None:
    """``create_app(routers=...)``: the hook for another concern (e.g. a SOAP endpoint) — its routes are
    served after every standard one and change none of them."""
    from unittest.mock import MagicMock

    from fastapi import APIRouter

    from simulator.hub.api import create_app

    extra = APIRouter(tags=["extra"])

    @extra.post("/extra/echo")
    async def echo() -> dict[str, str]:
        return {"ok": "yes"}

    spec = create_app(MagicMock(), routers=[extra]).openapi()
    assert list(spec["paths"])[-1] == "/extra/echo"
    got = openapi_contract(spec)
    want = json.loads(GOLDEN_OPENAPI.read_text(encoding="utf-8"))
    assert {k: v for k, v in got.items() if k != "POST /extra/echo"} == want


if __name__ == "__main__":
    from unittest.mock import MagicMock

    from simulator.hub.api import create_app

    contract = openapi_contract(create_app(MagicMock()).openapi())
    GOLDEN_OPENAPI.write_text(json.dumps(contract, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN_OPENAPI} ({len(contract)} operations)")
