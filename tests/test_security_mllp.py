"""The MLLP half of the security suite (``scenarios/security/mllp-*.yaml``): mutual TLS, sender authority,
bounded repetitions — against the reference hub, and against mutant hubs that each have one of the holes.

Two hubs run in-process on the mini world: the reference (MLLP over TLS, client certificates required) and
a weak one on plain MLLP that trusts MSH-4, as the reference hub did before issue 11. A mutant is a front
door on 127.0.0.1 in front of the weak hub (threads and blocking sockets: it must peek at the first byte):

* ``any-certificate``: terminates TLS with the hub's certificate but asks for no client certificate;
* ``plain-allowed``: client certificates required on TLS, but plain MLLP accepted too;
* ``no-repetition-bound``: client certificates required, the weak hub without its repetition bound;
* ``shared-continuations``: client certificates required, the weak hub finding a PDQ continuation by its
  pointer and tag alone (whoever presents them gets the next page, or cancels it);
* ``other-ca``: trusts another CA, so every facility is refused (the controls must fail).

Every assertion of the suite passes on the reference hub and fails under the mutant with its hole. The
PKI's files and the hub's audit of refusals are checked directly.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from harness.report.html import html_report
from harness.scenarios import LoadedScenario, RunResult, WorldIndex, discover
from harness.scenarios.engine import run
from harness.targets import Target
from hl7wire import BlockingClient, ConnectionClosedError, Message, MLLPClient, decode
from simulator.hub import pixpdq
from simulator.hub.mllp import PEER, HL7Handler, MLLPServer
from simulator.pki import ClientTls, Pki, ensure_pki

from .hubrun import RunningHub

REPO = Path(__file__).resolve().parents[1]
SECURITY = REPO / "scenarios" / "security"


@pytest.fixture(scope="module")
def suite() -> list[LoadedScenario]:
    found = [s for s in discover(REPO / "scenarios", [SECURITY]) if s.path.name.startswith("mllp-")]
    assert len(found) >= 5
    return found


def target_of(hub: RunningHub, world: WorldIndex, salt: str) -> Target:
    return Target(
        name="reference",
        kind="reference",
        mllp=hub.mllp,
        http=hub.base_url,
        users=world.users(),
        admin_token=hub.admin_token,
        mllp_tls=hub.tls,
        salt=salt,
    )


def failures(result: RunResult) -> str:
    return "\n".join(
        f"{a.status} {a.scenario} step {a.step} {a.assertion_id}: {a.message} {a.actual}"
        for a in result.assertions()
        if a.status != "passed"
    )


# ------------------------------------------------------------------------------------------- mutants


class Front:
    """A mutant hub's MLLP door: TLS with ``context`` (and plain MLLP too if ``accept_plain``), the bytes
    piped to a plain-MLLP hub that trusts MSH-4."""

    def __init__(
        self, upstream: tuple[str, int], context: ssl.SSLContext, *, accept_plain: bool = False
    ) -> None:
        self.upstream, self.context, self.accept_plain = upstream, context, accept_plain
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", int(self.listener.getsockname()[1]))
        self.sockets: list[socket.socket] = []
        self.closing = False

    def _accept(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        client: socket.socket = conn
        try:
            conn.settimeout(10)
            first = conn.recv(1, socket.MSG_PEEK)
            if first != b"\x16" and self.accept_plain:
                client = conn  # plain MLLP: the hole
            else:
                client = self.context.wrap_socket(conn, server_side=True)
            hub = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            conn.close()
            return
        self.sockets += [client, hub]

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            with suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            for s in (src, dst):
                with suppress(OSError):
                    s.close()

        threading.Thread(target=pipe, args=(hub, client), daemon=True).start()
        pipe(client, hub)

    @contextmanager
    def running(self) -> Iterator[tuple[str, int]]:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        try:
            yield self.address
        finally:
            self.closing = True
            self.listener.close()
            for s in self.sockets:
                with suppress(OSError):
                    s.close()
            thread.join(5)


def _server_context(pki: Pki, *, require: bool, trust: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.hub_cert, pki.hub_key)
    ctx.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_NONE
    if require:
        ctx.load_verify_locations(cafile=trust or pki.ca_file)
    return ctx


MUTANT_OF = {
    "SEC-mllp-plain-refused": "plain-allowed",
    "SEC-mllp-plain-merge-had-no-effect": "plain-allowed",
    "SEC-mllp-sender-not-certificate": "any-certificate",
    "SEC-mllp-mismatch-merge-had-no-effect": "any-certificate",
    "SEC-mllp-anonymous-refused": "any-certificate",
    "SEC-mllp-repetitions-bounded": "no-repetition-bound",
    "SEC-mllp-oversized-not-registered": "no-repetition-bound",
    "SEC-mllp-tls-feed-accepted": "other-ca",
    "SEC-mllp-own-certificate-served": "other-ca",
    "SEC-mllp-few-repetitions-accepted": "other-ca",
    "SEC-mllp-continuation-setup": "other-ca",
    "SEC-mllp-continuation-not-others": "shared-continuations",
    "SEC-mllp-continuation-kept-for-owner": "shared-continuations",
}
"""Each assertion of the suite, and the mutant with the hole it is there to find."""


def test_the_mllp_security_suite_passes_and_each_hole_fails_it(
    hubs: tuple[RunningHub, RunningHub],
    world: WorldIndex,
    suite: list[LoadedScenario],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference, weak = hubs
    target = target_of(reference, world, "sec-base")
    baseline = run(suite, target, world, jobs=4)
    assert baseline.ok, failures(baseline)
    ids = {a.assertion_id for a in baseline.assertions()}
    assert ids == set(MUTANT_OF), "every assertion of the suite names the mutant that must fail it"

    assert reference.tls is not None
    pki = Pki(reference.tls.ca_file.parent)
    other = ensure_pki(tmp_path / "other-ca", [])
    mutants = {
        "any-certificate": Front(weak.mllp, _server_context(pki, require=False)),
        "plain-allowed": Front(weak.mllp, _server_context(pki, require=True), accept_plain=True),
        "no-repetition-bound": Front(weak.mllp, _server_context(pki, require=True)),
        "shared-continuations": Front(weak.mllp, _server_context(pki, require=True)),
        "other-ca": Front(weak.mllp, _server_context(pki, require=True, trust=other.ca_file)),
    }
    failed: dict[str, set[str]] = {}
    for name, front in mutants.items():
        with ExitStack() as stack:
            if name == "no-repetition-bound":
                stack.enter_context(monkeypatch.context()).setattr(pixpdq, "MAX_REPETITIONS", 10**9)
            if name == "shared-continuations":  # pending pages found by pointer and tag alone
                stack.enter_context(monkeypatch.context()).setattr(
                    pixpdq, "_owned", lambda pending, tag, sender: pending.tag == tag
                )
            address = stack.enter_context(front.running())
            result = run(suite, replace(target, mllp=address, salt=f"sec-{name}"), world, jobs=4)
        for a in result.assertions():
            if a.status == "failed":
                assert a.evidence, f"{name}: {a.key} failed without evidence"
        failed[name] = {a.assertion_id for a in result.assertions() if a.status == "failed"}
    missed = {aid: mutant for aid, mutant in MUTANT_OF.items() if aid not in failed[mutant]}
    assert not missed, f"assertions their mutant did not fail: {missed}; failed: {failed}"


# ------------------------------------------------------------------------------------------- the hub


def _msh(sender: str, kind: str, control: str) -> str:
    stamp = "20261101093000+0900"
    return f"MSH|^~\\&|SEC|{sender}|RHIN_HUB|RHIN|{stamp}||{kind}|{control}|P|2.5||||||UNICODE UTF-8\r"


def test_refusals_are_audited_with_their_reason(
    hubs: tuple[RunningHub, RunningHub], world: WorldIndex, tmp_path: Path
) -> None:
    reference, _ = hubs
    a, c = (f.code for f in world.facilities[:2])
    query = _msh(a, "QBP^Q23^QBP_Q21", "SECAUD1") + f"QPD|IHE PIX Query|SA1|X1^^^JP{a}\rRCP|I\r"
    with BlockingClient(*reference.mllp, timeout=10, tls=reference.mllp_tls(c)) as client:
        reply = client.send(query.encode())
    assert b"MSA|AR|SECAUD1" in reply, reply
    assert b"|103^" in reply, reply
    assert reference.tls is not None
    stranger = ensure_pki(tmp_path / "stranger", [a])  # a certificate for A, from a CA the hub does not trust
    for tls in (reference.mllp_tls(None), ClientTls(reference.tls.ca_file, stranger.facilities).context(a)):
        with (
            pytest.raises((ConnectionClosedError, ssl.SSLError, ConnectionResetError)),
            BlockingClient(*reference.mllp, timeout=10, tls=tls) as client,
        ):
            client.send(query.encode())
    with BlockingClient(*reference.mllp, timeout=10) as plain, pytest.raises(ConnectionClosedError):
        plain.send(query.encode())
    headers = {"Authorization": f"Bearer {reference.admin_token}"}
    with httpx.Client(base_url=reference.base_url, headers=headers, timeout=10) as api:
        senders = api.get("/audit", params={"action": "rejected-sender"}).json()["records"]
        connections = api.get("/audit", params={"action": "rejected-connection"}).json()["records"]
    mine = [r for r in senders if json.loads(r["details"]).get("control") == "SECAUD1"]
    assert len(mine) == 1, senders
    details = json.loads(mine[0]["details"])
    assert (mine[0]["actor_facility"], mine[0]["outcome"]) == (c, "AR")
    assert (details["claimed"], details["certificate"]) == (a, c)
    assert c in mine[0]["reason"]
    assert a in mine[0]["reason"]
    reasons = " ".join(r["reason"] for r in connections)
    assert "CERTIFICATE_VERIFY_FAILED" in reasons or "UNKNOWN_CA" in reasons, reasons
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reasons, reasons
    assert "WRONG_VERSION_NUMBER" in reasons or "HTTP_REQUEST" in reasons, reasons  # plain MLLP bytes


def test_the_pki_is_private_deterministic_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    pki = ensure_pki(folder, ["1711111111", "1722222222"])
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == [
        "ca.key",
        "ca.pem",
        "facilities/1711111111.key",
        "facilities/1711111111.pem",
        "facilities/1722222222.key",
        "facilities/1722222222.pem",
        "hub.key",
        "hub.pem",
    ]
    for key in folder.rglob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    ensure_pki(folder, ["1711111111", "1722222222", "1733333333"])
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before  # reused on restart, nothing reissued
    assert set(after) - set(before) == set(pki.facility_files("1733333333"))
    cert = x509.load_pem_x509_certificate(pki.facility_files("1733333333")[0].read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "1733333333"
    cert.verify_directly_issued_by(ca)
    hub = x509.load_pem_x509_certificate(pki.hub_cert.read_bytes())
    sans = hub.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_a_plain_mllp_target_is_stated_in_the_report(world: WorldIndex) -> None:
    plain = Target("vendor", "external", ("127.0.0.1", 2575), None, world.users())
    assert plain.plain_mllp
    tls = replace(plain, mllp_tls=ClientTls(Path("ca.pem"), Path("certs")))
    assert (plain.describe()["mllp_transport"], tls.describe()["mllp_transport"]) == (
        "plain MLLP (no TLS)",
        "TLS, mutual",
    )
    started = "2026-12-05T10:00:00+09:00"
    html = html_report(RunResult(started, started, plain.describe(), {}, {}))
    assert "<strong>plain MLLP (no TLS)</strong>" in html
    assert "plain MLLP" not in html_report(RunResult(started, started, tls.describe(), {}, {}))


class _WhoIsIt(HL7Handler):
    """Answers AA with the connection's Peer in MSA-3, so the test sees what the handler saw."""

    async def handle(self, message: Message) -> Message:
        peer = PEER.get()
        assert peer is not None
        return self.ack(message, "AA", text=f"{peer.tls}/{peer.facility}")


def test_the_server_tells_the_handler_who_is_connected_and_reports_refused_handshakes(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", ["1711111111"])
    refusals: list[str] = []

    async def refused(reason: str) -> None:
        refusals.append(reason)

    async def scenario() -> tuple[list[bytes], int]:
        tls_server = MLLPServer(_WhoIsIt(), tls=pki.server_context(), refused=refused)
        plain_server = MLLPServer(_WhoIsIt())
        replies = []
        async with tls_server, plain_server:
            query = _msh("1711111111", "ADT^A04^ADT_A01", "W1").encode() + b"PID|1||X\r"
            for port, tls in (
                (tls_server.port, pki.client_tls().context("1711111111")),
                (plain_server.port, None),
            ):
                async with MLLPClient("127.0.0.1", port, timeout=10, tls=tls) as client:
                    replies.append(await client.send(query))
            for tls in (pki.client_tls().context(None), None):  # no certificate; plain bytes
                with suppress(ConnectionError, ssl.SSLError, ConnectionClosedError):
                    async with MLLPClient("127.0.0.1", tls_server.port, timeout=10, tls=tls) as client:
                        replies.append(await client.send(query))
            await asyncio.sleep(0.1)  # the refusal hook runs as its own task
        return replies, tls_server.stats.tls_refused

    replies, refused_count = asyncio.run(scenario())
    assert [decode(r)[0].get("MSA", 3) for r in replies] == ["True/1711111111", "False/None"]
    assert refused_count == 2
    assert len(refusals) == 2
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in refusals[0]
    assert "WRONG_VERSION_NUMBER" in refusals[1]
