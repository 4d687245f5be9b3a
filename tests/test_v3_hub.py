"""PIXv3/PDQv3 on a live hub (TLS, facility certificates): ITI-44/45/47 decisions, the SOAP layer's faults,
v2/v3 agreement and the audit. One hub for the module; every test uses its own patient IDs."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.hl7v3client import V3Client, V3Patient, continuation, feed, pdq_query, pix_query
from hl7wire import UTF8, BlockingClient, decode
from simulator.hub.audit import AuditLog
from simulator.hub.index import REGIONAL_OID

from .hubrun import RunningHub, running_hub

V3 = "urn:hl7-org:v3:"


@pytest.fixture(scope="module")
def hub(mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with running_hub(mini_world, tmp_path_factory.mktemp("v3hub") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def facilities(mini_world: Path) -> list[dict[str, Any]]:
    return list(json.loads((mini_world / "world.json").read_text(encoding="utf-8"))["facilities"])


@pytest.fixture(scope="module")
def a(facilities: list[dict[str, Any]]) -> dict[str, Any]:
    return next(f for f in facilities if f["network_role"] == "disclosing")


@pytest.fixture(scope="module")
def b(facilities: list[dict[str, Any]]) -> dict[str, Any]:
    return next(f for f in facilities if f["network_role"] == "viewing" and f["kind"] == "clinic")


def oid(f: dict[str, Any]) -> str:
    return str(f["assigning_authority"]["oid"])


def sender(f: dict[str, Any]) -> tuple[str, str]:
    return oid(f), str(f["code"])


def client(hub: RunningHub, f: dict[str, Any] | None) -> V3Client:
    assert hub.soap is not None
    assert hub.tls is not None
    return V3Client(f"https://{hub.soap[0]}:{hub.soap[1]}", hub.tls.context(f["code"] if f else None))


def new_id() -> str:
    return "V" + uuid.uuid4().hex[:9].upper()


def v3_feed(hub: RunningHub, f: dict[str, Any], local_id: str, kind: str = "add", **person: Any) -> Any:
    names = [("北陸", "花子", "IDE"), ("ホクリク", "ハナコ", "SYL")]
    patient = V3Patient(oid(f), local_id, **({"names": names, "birth_date": "19600101", "sex": "F"} | person))
    with client(hub, f) as c:
        return c.send("/pixv3/feed", V3 + feed(kind, sender(f), patient).tag.split("}")[1],
                      feed(kind, sender(f), patient))  # fmt: skip


def v2_feed(
    hub: RunningHub, f: dict[str, Any], local_id: str, family: str = "加賀", kana: str = "カガ"
) -> None:
    ns = f["assigning_authority"]["namespace"]
    text = (
        f"MSH|^~\\&|HIS|{f['code']}|RHIN_HUB|RHIN|20261101093000+0900||ADT^A04^ADT_A01|{local_id}|P|2.5"
        "||||||UNICODE UTF-8\r"
        "EVN|A04|20261101093000\r"
        f"PID|1||{local_id}^^^{ns}^PI||{family}^太郎^^^^^L^I~{kana}^タロウ^^^^^L^P||19450505|M\r"
    )
    with BlockingClient(*hub.mllp, timeout=10, tls=hub.mllp_tls(f["code"])) as mllp:
        reply, _ = decode(mllp.send(text.encode(UTF8)))
    assert reply.get("MSA", 1) == "AA", reply


def v2_pix(hub: RunningHub, asker: dict[str, Any], f: dict[str, Any], local_id: str) -> Any:
    ns = f["assigning_authority"]["namespace"]
    text = (
        f"MSH|^~\\&|HIS|{asker['code']}|RHIN_HUB|RHIN|20261101093000+0900||QBP^Q23^QBP_Q21|Q{local_id}|P|2.5\r"
        f"QPD|IHE PIX Query|T{local_id}|{local_id}^^^{ns}\rRCP|I\r"
    )
    with BlockingClient(*hub.mllp, timeout=10, tls=hub.mllp_tls(asker["code"])) as mllp:
        reply, _ = decode(mllp.send(text.encode(UTF8)))
    return reply


def link(hub: RunningHub, a: dict[str, Any], b: dict[str, Any], a_id: str, b_id: str) -> str:
    user = a["users"][0]
    with hub.client(hub.login(a["code"], user["user_id"], user["password"])) as staff:
        first = staff.post("/links", json={"facility": a["code"], "local_id": a_id})
        assert first.status_code == 200, first.text
        rid = str(first.json()["regional_id"])
        second = staff.post("/links", json={"facility": b["code"], "local_id": b_id, "regional_id": rid})
        assert second.status_code == 200, second.text
    return rid


# ------------------------------------------------------------------------------------------- ITI-44/45


def test_feed_over_v3_found_over_v2_and_v3(hub: RunningHub, a: dict[str, Any], b: dict[str, Any]) -> None:
    a_id, b_id = new_id(), new_id()
    for f, local in ((a, a_id), (b, b_id)):
        reply = v3_feed(hub, f, local)
        assert (reply.http_status, reply.interaction, reply.ack_code) == (200, "MCCI_IN000002UV01", "AA")
        assert reply.action == V3 + "MCCI_IN000002UV01"
        assert reply.relates_to == reply.request_message_id
    rid = link(hub, a, b, a_id, b_id)
    with client(hub, b) as c:
        v3 = c.send("/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(b), (oid(a), a_id)))
    assert (v3.interaction, v3.ack_code, v3.query_status) == ("PRPA_IN201310UV02", "AA", "OK")
    assert v3.action == V3 + "PRPA_IN201310UV02"
    assert v3.relates_to == v3.request_message_id
    assert sorted(v3.ids()) == sorted([(REGIONAL_OID, rid), (oid(b), b_id)])
    v2 = v2_pix(hub, b, a, a_id)
    assert v2.get("QAK", 2) == "OK"
    assert {v2.segment("PID").get(3, r, comp=1) for r in range(2)} == {rid, b_id}  # type: ignore[union-attr]


def test_feed_over_v2_found_over_v3_pdq_with_kana(
    hub: RunningHub, a: dict[str, Any], b: dict[str, Any]
) -> None:
    a_id = new_id()
    v2_feed(hub, a, a_id, family="能登谷", kana="ノトヤ")
    with client(hub, b) as c:
        for family, use in (("能登谷", "IDE"), ("ﾉﾄﾔ", "SYL"), ("のとや", "")):
            reply = c.send(
                "/pdqv3",
                V3 + "PRPA_IN201305UV02",
                pdq_query(sender(b), {"family": family, "name_use": use, "birth_date": "19450505"}),
            )
            assert (reply.ack_code, reply.query_status) == ("AA", "OK"), (family, reply.details)
            [patient] = reply.patients
            assert [oid(a), a_id] in patient["ids"]
            assert {"use": "IDE", "family": "能登谷", "given": "太郎"} in patient["names"]
            assert {"use": "SYL", "family": "ノトヤ", "given": "タロウ"} in patient["names"]
            assert patient["sex"] == "M"
            assert patient["birth_date"] == "19450505"


@pytest.mark.parametrize(
    ("case", "location", "code"),
    [
        ("unknown-root", "/controlActProcess/queryByParameter/parameterList/patientIdentifier/value", "204"),
        (
            "unknown-patient",
            "/controlActProcess/queryByParameter/parameterList/patientIdentifier/value",
            "204",
        ),
        ("unknown-source", "/controlActProcess/queryByParameter/parameterList/dataSource[1]/value", "204"),
        ("missing", "/controlActProcess/queryByParameter/parameterList/patientIdentifier/value", "101"),
    ],
)
def test_pix_v3_errors(hub: RunningHub, a: dict[str, Any], b: dict[str, Any], case: str, location: str,
                       code: str) -> None:  # fmt: skip
    a_id = new_id()
    assert v3_feed(hub, a, a_id).ack_code == "AA"
    patient, sources = (oid(a), a_id), [oid(b)]
    if case == "unknown-root":
        patient = ("2.16.840.1.113883.3.72.5.9.99", a_id)
    elif case == "unknown-patient":
        patient = (oid(a), "NOBODY")
    elif case == "unknown-source":
        sources = ["2.16.840.1.113883.3.72.5.9.99"]
    else:
        patient = (oid(a), "")
    with client(hub, b) as c:
        reply = c.send("/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(b), patient, sources))
    assert (reply.ack_code, reply.query_status, reply.patients) == ("AE", "AE", [])
    [detail] = reply.details
    assert (detail["code"], detail["code_system"], detail["location"]) == (code, "2.16.840.1.113883.12.357",
                                                                           location)  # fmt: skip


def test_pix_v3_other_domain_is_aa_nf(hub: RunningHub, a: dict[str, Any], b: dict[str, Any]) -> None:
    a_id = new_id()
    assert v3_feed(hub, a, a_id).ack_code == "AA"
    with client(hub, b) as c:
        reply = c.send(
            "/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(b), (oid(a), a_id), [oid(b)])
        )
    assert (reply.ack_code, reply.query_status, reply.patients, reply.details) == ("AA", "NF", [], [])


def test_feed_v3_refusals(hub: RunningHub, a: dict[str, Any], b: dict[str, Any]) -> None:
    a_id = new_id()
    with client(hub, a) as c:
        for root, expected in ((oid(b), "may not assign"), ("1.2.3.999", "unknown assigning authority"),
                               ("", "could not be resolved")):  # fmt: skip
            reply = c.send(
                "/pixv3/feed", V3 + "PRPA_IN201301UV02", feed("add", sender(a), V3Patient(root, a_id))
            )
            assert reply.ack_code == "AE", reply.details
            assert reply.details[0]["code"] == "204"
            assert expected in reply.details[0]["text"]
        # a device naming another facility than the certificate's: AR 103
        reply = c.send(
            "/pixv3/feed", V3 + "PRPA_IN201301UV02", feed("add", sender(b), V3Patient(oid(b), a_id))
        )
        assert reply.ack_code == "AR"
        assert reply.details[0]["code"] == "103"
        reply = c.send("/pixv3/feed", V3 + "PRPA_IN201301UV02",
                       feed("add", ("", "NOT-A-MEMBER"), V3Patient(oid(a), a_id)))  # fmt: skip
        assert reply.ack_code == "AR"
        assert reply.details[0]["code"] == "103"
        # nothing of those was fed
        pix = c.send("/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(a), (oid(a), a_id)))
        assert pix.query_status == "AE"


def test_revise_and_merge_move_links(hub: RunningHub, a: dict[str, Any], b: dict[str, Any]) -> None:
    old, survivor, b_id = new_id(), new_id(), new_id()
    assert v3_feed(hub, a, old).ack_code == "AA"
    assert v3_feed(hub, b, b_id).ack_code == "AA"
    rid = link(hub, a, b, old, b_id)
    revised = v3_feed(hub, a, old, kind="revise", names=[("改名", "花子", "IDE")])
    assert revised.ack_code == "AA"
    with client(hub, a) as c:
        found = c.send("/pdqv3", V3 + "PRPA_IN201305UV02", pdq_query(sender(a), {"family": "改名"}))
        assert [oid(a), old] in found.patients[0]["ids"]
        merge = feed("merge", sender(a), V3Patient(oid(a), survivor), prior=(oid(a), old))
        assert c.send("/pixv3/feed", V3 + "PRPA_IN201304UV02", merge).ack_code == "AA"
        again = c.send("/pixv3/feed", V3 + "PRPA_IN201304UV02", merge)
        assert again.ack_code == "AE"
        assert again.details[0]["location"].endswith("priorRegisteredRole/id")
        gone = c.send("/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(a), (oid(a), old)))
        assert gone.query_status == "AE"
        moved = c.send("/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(a), (oid(a), survivor)))
    assert sorted(moved.ids()) == sorted([(REGIONAL_OID, rid), (oid(b), b_id)])


# ------------------------------------------------------------------------------------------- ITI-47


def test_pdq_continuation_and_cancel(hub: RunningHub, a: dict[str, Any], b: dict[str, Any]) -> None:
    family = "続" + uuid.uuid4().hex[:4]
    for _ in range(5):
        assert v3_feed(hub, a, new_id(), names=[(family, "一", "IDE")]).ack_code == "AA"
    with client(hub, b) as c, client(hub, a) as thief:
        first = c.send("/pdqv3", V3 + "PRPA_IN201305UV02",
                       pdq_query(sender(b), {"family": family}, initial_quantity=2))  # fmt: skip
        assert first.counts == {"total": 5, "current": 2, "remaining": 3}
        assert len(first.patients) == 2
        stolen = thief.send(
            "/pdqv3", V3 + "QUQI_IN000003UV01_Continue", continuation(sender(a), first.query_id)
        )
        assert (stolen.ack_code, stolen.query_status, stolen.details[0]["code"]) == ("AE", "AE", "204")
        second = c.send(
            "/pdqv3", V3 + "QUQI_IN000003UV01_Continue", continuation(sender(b), first.query_id, 2)
        )
        assert second.interaction == "PRPA_IN201306UV02"
        assert second.counts == {"total": 5, "current": 2, "remaining": 1}
        cancel = c.send("/pdqv3", V3 + "QUQI_IN000003UV01_Cancel",
                        continuation(sender(b), first.query_id, cancel=True))  # fmt: skip
        assert (cancel.interaction, cancel.ack_code) == ("MCCI_IN000002UV01", "AA")
        after = c.send("/pdqv3", V3 + "QUQI_IN000003UV01_Continue", continuation(sender(b), first.query_id))
        assert after.ack_code == "AE"
        seen = {tuple(p["ids"][0]) for p in first.patients + second.patients}
        assert len(seen) == 4


def test_pdq_errors_and_no_match(hub: RunningHub, b: dict[str, Any]) -> None:
    with client(hub, b) as c:

        def ask(criteria: dict[str, Any]) -> Any:
            return c.send("/pdqv3", V3 + "PRPA_IN201305UV02", pdq_query(sender(b), criteria))

        none = ask({"family": "該当無" + uuid.uuid4().hex[:4]})
        assert (none.ack_code, none.query_status, none.counts["total"]) == ("AA", "NF", 0)
        for criteria, code, where in (
            ({"family": "北陸", "other_ids": ["1.2.3.999"]}, "204", "otherIDsScopingOrganization[1]/value"),
            ({"id": ("1.2.3.999", "X1")}, "204", "livingSubjectId/value"),
            ({"family": "北陸", "extra": ["mothersMaidenName"]}, "103", "mothersMaidenName"),
            ({"postcode": "920", "city": "金沢市"}, "103", "patientAddress/value/city"),
            ({}, "101", "parameterList"),
        ):
            reply = ask(criteria)
            assert (reply.ack_code, reply.query_status) == ("AE", "AE"), criteria
            assert reply.details[0]["code"] == code, reply.details
            assert reply.details[0]["location"].endswith(where), reply.details


# ------------------------------------------------------------------------------------------- SOAP layer


def test_soap_faults(hub: RunningHub, a: dict[str, Any]) -> None:
    body = feed("add", sender(a), V3Patient(oid(a), new_id()))
    with client(hub, a) as c:
        good = c.envelope(V3 + "PRPA_IN201301UV02", body, "urn:uuid:1")
        wrong_type = c.post("/pixv3/feed", good, "text/xml")
        assert wrong_type.http_status == 415
        assert wrong_type.fault_code == "soap:Sender"
        unknown = c.post(
            "/pixv3/feed", c.envelope(V3 + "PRPA_IN201309UV02", body, "urn:uuid:2"), "application/soap+xml"
        )
        assert (unknown.http_status, unknown.fault_subcode) == (400, "wsa:ActionNotSupported")
        assert unknown.relates_to == "urn:uuid:2"
        must = good.replace(
            b"<wsa:MessageID>", b'<x:Secret xmlns:x="urn:x" soap:mustUnderstand="true"/><wsa:MessageID>'
        )
        assert (c.post("/pixv3/feed", must, "application/soap+xml").fault_code) == "soap:MustUnderstand"
        no_action = good.replace(b"<wsa:Action>urn:hl7-org:v3:PRPA_IN201301UV02</wsa:Action>", b"")
        assert c.post("/pixv3/feed", no_action, "application/soap+xml").fault_subcode == (
            "wsa:MessageAddressingHeaderRequired"
        )
        soap11 = good.replace(
            b"http://www.w3.org/2003/05/soap-envelope", b"http://schemas.xmlsoap.org/soap/envelope/"
        )
        assert c.post("/pixv3/feed", soap11, "application/soap+xml").fault_code == "soap:VersionMismatch"
        wsdl = c.get("/pdqv3", {"wsdl": ""})
        assert wsdl.status_code == 200
        assert b'wsaw:Action="urn:hl7-org:v3:QUQI_IN000003UV01_Cancel"' in wsdl.content


def test_soap_needs_a_network_certificate(hub: RunningHub) -> None:
    assert hub.soap is not None
    with pytest.raises(httpx.HTTPError), client(hub, None) as anonymous:
        anonymous.get("/pdqv3", {"wsdl": ""})
    with pytest.raises(httpx.HTTPError), httpx.Client(verify=False) as plain:
        plain.get(f"http://{hub.soap[0]}:{hub.soap[1]}/pdqv3?wsdl")
    deadline = time.monotonic() + 10  # the audit of a refused handshake is written by a task: poll
    while True:
        with AuditLog(hub.data / "audit.sqlite") as log:
            refused = [r for r in log.records() if r.action == "rejected-connection"]
        transports = [json.loads(r.details) if isinstance(r.details, str) else r.details for r in refused]
        if sum(d.get("transport") == "soap-tls" for d in transports) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sum(d.get("transport") == "soap-tls" for d in transports) >= 2
    assert not any(d.get("transport") == "mllp-tls" for d in transports)  # nothing came over MLLP


def test_v3_requests_are_audited_like_v2(hub: RunningHub, a: dict[str, Any], b: dict[str, Any]) -> None:
    a_id = new_id()
    assert v3_feed(hub, a, a_id).ack_code == "AA"
    with client(hub, b) as c:
        c.send(
            "/pixv3/query", V3 + "PRPA_IN201309UV02", pix_query(sender(b), (oid(a), a_id), query_id="AUD1")
        )
        # b's certificate, a's device: rejected
        c.send("/pixv3/feed", V3 + "PRPA_IN201301UV02", feed("add", sender(a), V3Patient(oid(a), a_id)))
    with AuditLog(hub.data / "audit.sqlite") as log:
        records = [
            (r, json.loads(r.details) if isinstance(r.details, str) else r.details) for r in log.records()
        ]
    ns = a["assigning_authority"]["namespace"]
    mine = [(r.action, r.outcome, r.actor_facility, r.target, d.get("type")) for r, d in records]
    assert ("feed", "AA", a["code"], f"{ns}|{a_id}", "PRPA_IN201301UV02") in mine
    assert ("query", "AA", b["code"], f"{ns}|{a_id}", "PRPA_IN201309UV02") in mine
    query = next(d for r, d in records if r.action == "query" and r.target == f"{ns}|{a_id}")
    assert (query["tag"], query["status"]) == ("AUD1", "NF")
    rejected = [r for r, d in records if r.action == "rejected-sender" and d.get("claimed") == a["code"]]
    assert rejected
    assert rejected[-1].actor_facility == b["code"]
    assert rejected[-1].outcome == "AR"


# ------------------------------------------------------------------------------------------- hostile input


def raw_post(hub: RunningHub, f: dict[str, Any], head: bytes, body: bytes = b"") -> bytes:
    """One request on a fresh TLS connection (``f``'s certificate); the reply's bytes."""
    assert hub.soap is not None
    assert hub.tls is not None
    chunks = []
    with (
        socket.create_connection(hub.soap, timeout=10) as raw,
        hub.tls.context(f["code"]).wrap_socket(raw, server_hostname=hub.soap[0]) as tls,
    ):
        tls.sendall(head + body)
        while True:
            try:
                chunk = tls.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_bodies_are_refused_and_the_hub_carries_on(hub: RunningHub, a: dict[str, Any]) -> None:
    fifty_mb = (
        b"POST /pixv3/feed HTTP/1.1\r\nHost: hub\r\nContent-Type: application/soap+xml\r\n"
        b"Content-Length: 52428800\r\nConnection: close\r\n\r\n"
    )
    assert raw_post(hub, a, fifty_mb, b"<soap:Envelope").startswith(b"HTTP/1.1 413")
    chunk = b"<a>" * 10_000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
    lying = (
        b"POST /pixv3/feed HTTP/1.1\r\nHost: hub\r\nContent-Type: application/soap+xml\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    assert raw_post(hub, a, lying, chunked).startswith(b"HTTP/1.1 413")
    with client(hub, a) as c:
        lol = '<!ENTITY l0 "lol">' + "".join(
            f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
        )
        for body in (
            f"<!DOCTYPE soap:Envelope [{lol}]><soap:Envelope>&l9;</soap:Envelope>".encode(),
            b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
            b"<a>" * 5000 + b"</a>" * 5000,
        ):
            reply = c.post("/pixv3/feed", body, "application/soap+xml")
            assert (reply.http_status, reply.fault_code) == (400, "soap:Sender")
            assert b"root:" not in reply.raw
        a_id = new_id()
        assert v3_feed(hub, a, a_id).ack_code == "AA"


def test_pdq_v3_is_audited_under_every_person_returned(
    hub: RunningHub, a: dict[str, Any], b: dict[str, Any]
) -> None:
    family = "監査" + uuid.uuid4().hex[:4]
    ids = [new_id(), new_id()]
    for local in ids:
        assert v3_feed(hub, a, local, names=[(family, "一", "IDE")]).ack_code == "AA"
    with client(hub, b) as c:
        reply = c.send(
            "/pdqv3", V3 + "PRPA_IN201305UV02", pdq_query(sender(b), {"family": family}, query_id="PDQAUD")
        )
        assert reply.counts["total"] == 2
        cancel = c.send(
            "/pdqv3", V3 + "QUQI_IN000003UV01_Cancel", continuation(sender(b), reply.query_id, cancel=True)
        )
        assert cancel.ack_code == "AA"
    ns = a["assigning_authority"]["namespace"]
    with AuditLog(hub.data / "audit.sqlite") as log:
        records = [
            (r, json.loads(r.details) if isinstance(r.details, str) else r.details) for r in log.records()
        ]
    mine = [(r, d) for r, d in records if d.get("tag") == "PDQAUD"]
    hits = sorted(r.target for r, d in mine if d.get("role") == "hit")
    assert hits == sorted(f"{ns}|{i}" for i in ids)
    [summary] = [d for _, d in mine if d.get("role") == "summary"]
    assert (summary["type"], summary["hits"], summary["returned"], summary["status"]) == (
        "PRPA_IN201305UV02",
        2,
        2,
        "OK",
    )
    assert all(r.actor_facility == b["code"] and r.action == "query" for r, _ in mine if r.action != "cancel")
    assert any(r.action == "cancel" and d.get("type") == "QUQI_IN000003UV01_Cancel" for r, d in mine)
