"""The security suite's HTTP half (``scenarios/security/http-*.yaml``) against the reference network — and
against hubs that have the holes issue 11 found.

One live network (hub + gateway shards as processes, cheap scrypt) is started for the module, as in
``test_scenarios_suites``. The HTTP scenarios must pass against it. Then each must fail somewhere under a
broken hub: an HTTP proxy (``BrokenHub`` of ``test_scenarios_suites``) in front of the real hub that puts
back one hole — patients admitted to any facility, grants that outlive their form, back-dated forms that
take effect, login answers that tell who exists (status, body or time), bodies read whatever their size,
500 for a malformed token — or the generic breakages (paperwork accepted, records lost, stores read-only).
Every assertion of the suite must be failed by at least one of them.

The scenarios use fresh patients only, so runs share the hub without disturbing each other; the login probe
rotates the real users it tries by the run's salt, so no user is locked out across runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from harness.scenarios import LoadedScenario, RunResult, WorldIndex, discover
from harness.scenarios.engine import run
from harness.targets import Target
from simulator.hub.accounts import Accounts, ScryptParams, Session, plausible_token, scrypt_hash
from simulator.hub.api import DEFAULT_BODY_LIMIT, BodyLimit
from simulator.hub.audit import AuditLog
from simulator.hub.consents import ConsentStore, DatedBeforeWithdrawalError
from simulator.hub.policy import may_know
from simulator.hub.service import RefusalAudit
from synthetic.model import ConsentForm, ConsentWithdrawal
from tests.hubrun import running_hub
from tests.test_scenarios_engine import MUTANTS, MutatingProxy
from tests.test_scenarios_suites import (
    EMERGENCY,
    TIMELINE,
    Breakage,
    BrokenHub,
    Call,
    _copy,
    _gateways,
    _json,
    _refusal,
    consent_read_only,
    lax_hub,
    lost_paperwork,
    passthrough,
    read_only,
)

REPO = Path(__file__).resolve().parents[1]
PATIENT_ROUTE = re.compile(r"^/patients/(?P<rid>[^/]+)(?P<rest>/.*)?$")
JST = dt.timezone(dt.timedelta(hours=9))


# ------------------------------------------------------------------------------------------- the proxy


class SecurityProxy(BrokenHub):
    """``BrokenHub``, except that an oversized body is forwarded the way the scenario sent it — the head
    with its declared length, then the body over a raw socket while the answer is read — so the proxy gets
    the hub's own answer (413 and a closed connection) where httpx would fail writing the rest."""

    async def forward(self, call: Call, **params: str) -> httpx.Response:
        if len(call.body) <= DEFAULT_BODY_LIMIT:
            return await super().forward(call, **params)
        return await asyncio.to_thread(self._raw, call)

    def _raw(self, call: Call) -> httpx.Response:
        url = httpx.URL(self.upstream)
        head = [f"{call.method} {call.path} HTTP/1.1", f"Host: {url.host}:{url.port}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in call.headers.items()]
        head.append(f"Content-Length: {len(call.body)}")
        raw = b""
        with socket.create_connection((url.host, url.port or 80), timeout=30) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + call.body)
            with contextlib.suppress(ConnectionResetError):
                while data := sock.recv(65536):
                    raw += data
        top, _, body = raw.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = [tuple(x.split(":", 1)) for x in lines[1:] if ":" in x]
        return httpx.Response(
            int(lines[0].split()[1]), headers=[(k, v.strip()) for k, v in headers], content=body
        )


# ------------------------------------------------------------------------------------------- breakages


async def _known(hub: BrokenHub, rid: str) -> list[dict[str, str]] | None:
    """The patient's linked IDs as the audit log shows them (the operator's view), or None if unknown."""
    reply = await hub.forward(
        Call("GET", "/audit", {"patient": rid, "action": "link"}, {"authorization": hub.state["admin"]}, b"")
    )
    if reply.status_code != 200:
        return None
    out = []
    for r in reply.json()["records"]:
        if r["outcome"] == "success":
            for ref in r["target"].split(","):
                facility, _, local = ref.partition("|")
                out.append({"facility": facility, "namespace": "", "local_id": local})
    return out or None


async def leaky_lookup(hub: BrokenHub, call: Call) -> Response:
    """The hub before issue 11: any logged-in facility learns that a patient exists, and where."""
    reply = await hub.forward(call)
    m = PATIENT_ROUTE.match(call.path)
    if m is None or reply.status_code != 404 or (ids := await _known(hub, m["rid"])) is None:
        return _copy(reply)
    rest = m["rest"] or ""
    if call.method == "GET" and rest == "":
        return _json({"regional_id": m["rid"], "identifiers": ids})
    if call.method == "GET" and rest == "/timeline":
        sources = [
            {
                "facility": i["facility"],
                "status": "denied",
                "reason": "not-linked",
                "entries": 0,
                "elapsed_ms": 0,
            }
            for i in ids
        ]
        purpose = call.params.get("purpose", "care")
        return _json({"regional_id": m["rid"], "purpose": purpose, "entries": [], "sources": sources})
    if rest == "/emergency":
        return _refusal(403, "emergency-not-allowed")
    return _refusal(403, "not-linked")


async def grant_outlives_form(hub: BrokenHub, call: Call) -> Response:
    """A hub whose grants are not bound to their form: a grant given once is given again, silently, when
    a later emergency view would be refused."""
    grants: dict[tuple[str, str], bytes] = hub.state.setdefault("grants", {})
    reply = await hub.forward(call)
    if call.method == "POST" and (m := EMERGENCY.match(call.path)) and reply.status_code == 201:
        grants[(m["rid"], call.headers.get("authorization", ""))] = call.body
        return _copy(reply)
    m = TIMELINE.match(call.path)
    if m is None or call.params.get("purpose") != "emergency":
        return _copy(reply)
    body = grants.get((m["rid"], call.headers.get("authorization", "")))
    refused = reply.status_code == 404 or any(
        s["status"] == "denied" for s in (reply.json().get("sources", []) if reply.status_code == 200 else [])
    )
    if body is None or not refused:
        return _copy(reply)
    headers = {**call.headers, "content-type": "application/json"}
    await hub.forward(Call("POST", f"/patients/{m['rid']}/emergency", {}, headers, body))
    return _copy(await hub.forward(call))


async def backdated_accepted(hub: BrokenHub, call: Call) -> Response:
    """A hub that takes a form dated on or before a withdrawal (here: files it as signed today)."""
    reply = await hub.forward(call)
    if reply.status_code == 422 and reply.json()["detail"]["reason"] == "dated-on-or-before-withdrawal":
        body = {**(call.json() or {}), "signed_on": dt.datetime.now(JST).date().isoformat()}
        again = replace(call, body=json.dumps(body).encode())
        return _copy(await hub.forward(again))
    return _copy(reply)


def _login_of(hub: BrokenHub, call: Call) -> tuple[bool, str] | None:
    """(is a real user, user ID) of a login call, else None."""
    if call.path != "/auth/login":
        return None
    body = call.json() or {}
    key = (str(body.get("facility")), str(body.get("user_id")))
    return key in hub.state["users"], key[1]


async def login_status_leak(hub: BrokenHub, call: Call) -> Response:
    """Throttling only for users that exist: an unknown user's second failure is 401, a real one's 429."""
    reply = await hub.forward(call)
    who = _login_of(hub, call)
    if who is not None and not who[0] and reply.status_code in (423, 429):
        return _refusal(401, "invalid-credentials")
    return _copy(reply)


async def login_body_leak(hub: BrokenHub, call: Call) -> Response:
    """A wrong password says so: the body tells a real user from an unknown one."""
    reply = await hub.forward(call)
    who = _login_of(hub, call)
    if who is not None and who[0] and reply.status_code == 401:
        return _json({"detail": {"reason": "invalid-credentials", "message": "wrong password"}}, 401)
    return _copy(reply)


async def login_timing_leak(hub: BrokenHub, call: Call) -> Response:
    """A real user's failure costs a second hash (the old lazy enrolment): 60 ms more than an unknown one."""
    reply = await hub.forward(call)
    who = _login_of(hub, call)
    if who is not None and who[0] and reply.status_code == 401:
        await asyncio.sleep(0.06)
    return _copy(reply)


async def unbounded_bodies(hub: BrokenHub, call: Call) -> Response:
    """A hub that reads every body whatever its size (the proxy did read it): no 413, just the schema."""
    reply = await hub.forward(call)
    if reply.status_code == 413:
        errors = [{"loc": ["body"], "msg": "invalid", "type": "json_invalid"}]
        return _json({"detail": {"reason": "invalid-request", "message": "schema"}, "errors": errors}, 422)
    return _copy(reply)


async def token_500(hub: BrokenHub, call: Call) -> Response:
    """The old ``_token_hash``: a token with a non-ASCII character is an internal error."""
    token = call.headers.get("authorization", "")
    if token and not token.isascii():
        return Response(b"Internal Server Error", 500, media_type="text/plain")
    return await passthrough(hub, call)


async def hidden_patients(hub: BrokenHub, call: Call) -> Response:
    """An over-strict hub: no patient is admitted to anyone (every lookup 404)."""
    if call.method == "GET" and (m := PATIENT_ROUTE.match(call.path)) and not m["rest"]:
        return _refusal(404, "unknown-patient")
    return await passthrough(hub, call)


async def everyone_locked(hub: BrokenHub, call: Call) -> Response:
    """A hub that locks every account: the right password is refused too."""
    if call.path == "/auth/login":
        return _refusal(423, "locked")
    return await passthrough(hub, call)


async def tiny_limit(hub: BrokenHub, call: Call) -> Response:
    """A body limit so small that ordinary requests are refused unread."""
    if len(call.body) > 50_000:
        return _refusal(413, "body-too-large")
    return await passthrough(hub, call)


LOGIN_BREAKAGES: dict[str, Breakage] = {
    "login-status-leak": login_status_leak,
    "login-body-leak": login_body_leak,
    "login-timing-leak": login_timing_leak,
    "everyone-locked": everyone_locked,
    "lax-hub": lax_hub,
}
"""The broken hubs the login probe runs under: one after another, so that the real users it tries (rotated
by each run's salt) are never tried by two runs within their back-off."""

BREAKAGES: dict[str, Breakage] = {
    "hidden-patients": hidden_patients,
    "everyone-locked": everyone_locked,
    "tiny-limit": tiny_limit,
    "read-only": read_only,
    "leaky-lookup": leaky_lookup,
    "grant-outlives-form": grant_outlives_form,
    "backdated-accepted": backdated_accepted,
    "unbounded-bodies": unbounded_bodies,
    "token-500": token_500,
    "lax-hub": lax_hub,
    "lost-paperwork": lost_paperwork,
    "consent-read-only": consent_read_only,
}


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(mini_world: Path) -> WorldIndex:
    return WorldIndex(mini_world)


def _suite() -> list[LoadedScenario]:
    found = discover(REPO / "scenarios", [REPO / "scenarios" / "security"])
    return [s for s in found if s.path.name.startswith("http-")]


@dataclass
class Outcome:
    baseline: RunResult | None = None
    killed: dict[tuple[str, str, int, str], list[str]] = field(default_factory=dict)
    by_breakage: dict[str, set[str]] = field(default_factory=dict)
    summaries: dict[str, dict[str, int]] = field(default_factory=dict)
    messages: dict[str, list[str]] = field(default_factory=dict)  # breakage → its failures, for diagnosis


@pytest.fixture(scope="module")
def outcome(hub: Target, world: WorldIndex) -> Outcome:
    suite = _suite()
    assert len(suite) >= 6
    out = Outcome()
    # The baseline alone (its timing test should not share the machine with the mutants' runs; within the
    # baseline the login probe is `exclusive`, run after the others).
    out.baseline = run(suite, replace(hub, salt="security-baseline"), world, jobs=4)
    if not out.baseline.passed():  # no point breaking a hub the suite does not pass on
        return out
    assert hub.http is not None
    gateways = _gateways(hub, world)
    users = {(code, u.user_id) for code, us in hub.users.items() for u in us}
    lock = threading.Lock()

    login = [s for s in suite if s.id == "http-login-enumeration"]
    others = [s for s in suite if s not in login]
    assert login

    def one(name: str, breakage: Breakage | None, scenarios: list[LoadedScenario]) -> None:
        assert hub.http is not None
        assert hub.mllp is not None
        with contextlib.ExitStack() as stack:
            http, mllp = hub.http, hub.mllp
            if breakage is None:  # the MLLP mutant of test_scenarios_engine: feeds answered wrongly
                flip = MUTANTS["flip-codes"]
                mllp = stack.enter_context(MutatingProxy(hub.mllp, flip[0], flip[1], hub.mllp_tls))
            else:
                proxy = SecurityProxy(hub.http, world, gateways, breakage)
                proxy.state.update(users=users, admin=f"Bearer {hub.admin_token}")
                http = stack.enter_context(proxy.running())
            target = replace(hub, http=http, mllp=mllp, salt=f"security-{name}", mllp_timeout=10.0)
            result = run(scenarios, target, world, jobs=4)
        with lock:
            out.summaries[f"{name} ({len(scenarios)} scenarios)"] = result.summary()
            for a in result.assertions():
                if a.status == "failed":
                    out.killed.setdefault(a.key, []).append(name)
                    out.by_breakage.setdefault(name, set()).add(a.assertion_id)
                    out.messages.setdefault(name, []).append(f"{a.assertion_id}: {a.message} {a.actual}")

    for name, breakage in LOGIN_BREAKAGES.items():
        one(name, breakage, login)
    runs: list[tuple[str, Breakage | None, list[LoadedScenario]]] = [
        (n, b, others) for n, b in BREAKAGES.items()
    ]
    runs.append(("mllp-flip-codes", None, others))
    for start in range(0, len(runs), 4):  # four broken hubs at a time
        threads = [threading.Thread(target=one, args=r, daemon=True) for r in runs[start : start + 4]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
            assert not t.is_alive(), "a broken-hub run did not finish"
    return out


# ------------------------------------------------------------------------------------------- tests


def _failures(result: RunResult) -> str:
    return "\n".join(
        f"{a.status} {a.scenario} step {a.step} {a.assertion_id}: {a.message} {a.actual}"
        for a in result.assertions()
        if a.status != "passed"
    )


def test_the_http_security_scenarios_pass_on_the_reference_network(outcome: Outcome) -> None:
    assert outcome.baseline is not None
    assert outcome.baseline.passed(), _failures(outcome.baseline)
    ids = {a.assertion_id for a in outcome.baseline.assertions()}
    assert {"SEC-consent-role-refused", "SEC-login-same-timing", "SEC-body-413-chunked"} <= ids


def test_every_http_security_assertion_fails_under_some_broken_hub(outcome: Outcome) -> None:
    assert outcome.baseline is not None
    keys = [a.key for a in outcome.baseline.assertions()]
    survivors = [k for k in keys if k not in outcome.killed]
    assert not survivors, f"assertions no broken hub could fail: {survivors}\nruns: {outcome.summaries}"


def test_each_hole_is_caught_by_the_assertions_written_for_it(outcome: Outcome) -> None:
    caught = outcome.by_breakage
    print(json.dumps(outcome.messages, ensure_ascii=False, indent=1))  # shown when an assertion below fails
    assert {"SEC-lookup-unrelated-404", "SEC-consent-unrelated-refused"} <= caught["leaky-lookup"]
    assert {"SEC-grant-not-under-excluding-form", "SEC-grant-ends-with-withdrawal"} <= caught["leaky-lookup"]
    # After a withdrawal the hub refuses the silent re-grant too; there the hole shows as the grant
    # reviving under the next form (SEC-grant-not-revived).
    grant = {
        "SEC-grant-ends-with-replacing-form",
        "SEC-grant-not-revived",
        "SEC-grant-not-under-excluding-form",
    }
    assert grant <= caught["grant-outlives-form"]
    assert {"SEC-backdated-no-access", "SEC-backdated-refused"} <= caught["backdated-accepted"]
    assert caught["login-status-leak"] == {"SEC-login-same-throttle"}
    assert caught["login-body-leak"] == {"SEC-login-same-body"}
    assert caught["login-timing-leak"] == {"SEC-login-same-timing"}
    assert {"SEC-body-413-declared", "SEC-body-413-chunked"} <= caught["unbounded-bodies"]
    assert caught["token-500"] == {"SEC-token-non-ascii-401"}
    assert {"SEC-consent-role-refused", "SEC-no-token-401", "SEC-audit-needs-operator"} <= caught["lax-hub"]
    assert {"SEC-consent-refusals-audited", "SEC-401-audited", "SEC-413-audited"} <= caught["lost-paperwork"]


# ------------------------------------------------------------------------------------------- hub pieces
# In-process checks of what the scenarios see only from outside: how many hashes a login costs, what the
# throttle counts, what a lockout leaves open, the body limit, the refusals' audit, a grant's form.


def _accounts(tmp_path: Path, hashes: list[str], **kw: Any) -> Accounts:
    def counting(password: str, salt: bytes, params: ScryptParams) -> bytes:
        hashes.append(password)
        return scrypt_hash(password, salt, params)

    return Accounts(tmp_path / "accounts.sqlite", params=ScryptParams(n=2, r=1, p=1), hasher=counting, **kw)


@dataclass(frozen=True)
class _Enrolment:
    password: str
    staff_id: str = "S1"
    viewer_kind: str = "physician"


def test_every_login_attempt_costs_exactly_one_hash(tmp_path: Path) -> None:
    hashes: list[str] = []
    accounts = _accounts(tmp_path, hashes)
    now = dt.datetime(2026, 12, 1, 9, 0)
    enrolled = _Enrolment("right")
    accounts.add_user("F1", "stored", "right", "S0", "physician")
    hashes.clear()
    cases = [
        ("unknown", None, "guess"),  # no such user: the dummy hash
        ("stored", None, "guess"),  # a stored user's wrong password
        ("fresh", enrolled, "guess"),  # enrolled, never logged in, wrong password (was two hashes)
        ("fresh2", enrolled, "right"),  # enrolled, first login: hashed once and stored
    ]
    for user, enrolment, password in cases:
        before = len(hashes)
        accounts.login("F1", user, password, now, enrolment=enrolment)
        assert len(hashes) - before == 1, user
    assert accounts.login("F1", "fresh2", "right", now + dt.timedelta(seconds=5)).outcome == "success"


def test_throttling_counts_unknown_user_ids_and_addresses_alike(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path, [], address_limit=3, address_window=dt.timedelta(minutes=1))
    now = dt.datetime(2026, 12, 1, 9, 0)
    accounts.add_user("F1", "real", "right", "S0", "physician")
    first = [accounts.login("F1", u, "guess", now, address="10.0.0.1").reason for u in ("real", "ghost")]  # type: ignore[union-attr]
    again = [accounts.login("F1", u, "guess", now, address="10.0.0.9").reason for u in ("real", "ghost")]  # type: ignore[union-attr]
    assert first == ["bad-password", "unknown-user"]  # audited apart, answered alike (the route's job)
    assert again == ["retry-later", "retry-later"]  # the second attempt meets the throttle either way
    later = now + dt.timedelta(seconds=5)
    assert accounts.login("F1", "other", "guess", later, address="10.0.0.1").reason == "unknown-user"  # type: ignore[union-attr]
    sprayed = accounts.login("F1", "another", "guess", later, address="10.0.0.1")
    assert sprayed.reason == "retry-later"  # type: ignore[union-attr]  # three failures from that address
    assert accounts.login("F1", "another", "guess", later, address="10.0.0.2").reason == "unknown-user"  # type: ignore[union-attr]


def test_a_lockout_leaves_open_sessions_open(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path, [], max_failures=3, backoff=dt.timedelta(0))
    now = dt.datetime(2026, 12, 1, 9, 0)
    accounts.add_user("F1", "doc", "right", "S0", "physician")
    session = accounts.login("F1", "doc", "right", now)
    assert isinstance(session, Session)
    reasons = [accounts.login("F1", "doc", "guess", now).reason for _ in range(3)]  # type: ignore[union-attr]
    assert reasons[-1] == "locked"
    assert accounts.login("F1", "doc", "right", now).reason == "locked"  # type: ignore[union-attr]
    assert accounts.session(session.token, now) is not None  # the doctor's open session goes on


def test_malformed_tokens_are_simply_unknown(tmp_path: Path) -> None:
    accounts = _accounts(tmp_path, [])
    now = dt.datetime(2026, 12, 1, 9, 0)
    for token in ("Aÿ", "é" * 10, "a" * 200, "", "a b", "\udcff"):
        assert not plausible_token(token)
        assert accounts.session(token, now) is None
        assert accounts.logout(token) is False


def test_refusals_are_audited_once_per_window_then_summarised() -> None:
    records: list[tuple[str, str, dict[str, Any]]] = []

    async def record(who: Any, action: str, outcome: str, **kw: Any) -> None:
        records.append((action, kw["reason"], kw["details"]))

    async def flood() -> None:
        audit = RefusalAudit(record, window=0.2)
        for _ in range(50):
            await audit.note(("", ""), "http-401", "invalid-token", "10.0.0.1", "GET /x")
        await audit.note(("", ""), "http-401", "no-token", "10.0.0.1", "GET /x")
        await asyncio.sleep(0.3)  # the window closes: its summary is written
        await audit.note(("", ""), "http-401", "invalid-token", "10.0.0.1", "GET /x")
        await audit.flush()

    asyncio.run(flood())
    assert [(a, r) for a, r, _ in records] == [
        ("http-401", "invalid-token"),
        ("http-401", "no-token"),
        ("refusals-summary", "invalid-token"),
        ("http-401", "invalid-token"),
    ]
    assert records[2][2]["count"] == 49


def test_a_stopping_hub_summarises_the_refusals_it_was_still_counting(
    mini_world: Path, tmp_path: Path
) -> None:
    """A flood cut short by a shutdown is still counted: the open window's summary is written at stop,
    with the network's time (not the wall clock) as its ``since``."""
    data = tmp_path / "hub"
    with running_hub(mini_world, data) as hub, hub.client("not-a-session") as client:
        for _ in range(5):
            assert client.get("/patients/R1").status_code == 401
        clock_then = hub.clock().isoformat()
    with AuditLog(data / "audit.sqlite") as log:
        records = [r for r in log.records() if r.action in ("http-401", "refusals-summary")]
    assert [(r.action, r.reason) for r in records] == [
        ("http-401", "invalid-token"),
        ("refusals-summary", "invalid-token"),
    ]
    details = json.loads(records[1].details)
    assert details["count"] == 4
    assert details["since"] == clock_then


def test_the_body_limit_refuses_before_reading() -> None:
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
        sent: list[dict[str, Any]] = []
        queue = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive() -> dict[str, Any]:
            return queue.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
        received.clear()
        try:
            await BodyLimit(app, limit=100)(scope, receive, send)
        except StarletteHTTPException as exc:  # what the app's handler turns into a 413
            return exc.status_code, len(received)
        return sent[0]["status"], len(received)

    assert asyncio.run(call([(b"content-length", b"1000")], [b"x" * 1000])) == (413, 0)  # not one byte read
    assert asyncio.run(call([], [b"x" * 60, b"x" * 60, b"x" * 60])) == (413, 1)  # chunked: stops at the limit
    assert asyncio.run(call([(b"content-length", b"nope")], [b""])) == (400, 0)
    assert asyncio.run(call([(b"content-length", b"50")], [b"x" * 50])) == (200, 1)


def test_a_grant_is_bound_to_the_form_it_was_given_under(tmp_path: Path) -> None:
    start = dt.datetime(2026, 12, 1, 9, 0)
    with ConsentStore(tmp_path / "consents.sqlite") as store:
        first = ConsentForm("F1", 0, "all", dt.date(2026, 11, 1), "A", (), True)
        store.register("R1", first)
        grant = store.grant_emergency("R1", "E", "u1", "救急", start, start + dt.timedelta(hours=2))
        assert grant.form_id == "F1"
        state = store.state("R1", start.date())
        assert may_know(state, "E", start)
        assert all(g.opens("E", state.consent, start) for g in state.grants if state.consent)  # type: ignore[arg-type]
        store.register("R1", ConsentForm("F2", 0, "all_except", dt.date(2026, 11, 2), "A", ("E",), True))
        later = store.state("R1", start.date())
        assert later.consent is not None
        assert not any(g.opens("E", later.consent, start) for g in later.grants)
        assert not may_know(later, "E", start)
        withdrawal = ConsentWithdrawal("W2", 0, "F2", dt.date(2026, 11, 3), "A")
        store.withdraw("R1", withdrawal)
        with pytest.raises(DatedBeforeWithdrawalError):
            store.register("R1", ConsentForm("F3", 0, "all", dt.date(2026, 11, 3), "A", (), True))
        store.register("R1", ConsentForm("F4", 0, "all", dt.date(2026, 11, 4), "A", (), True))
        revived = store.state("R1", start.date())
        assert revived.consent is not None
        assert not any(g.opens("E", revived.consent, start) for g in revived.grants)
