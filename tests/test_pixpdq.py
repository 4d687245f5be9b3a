"""PIX Manager / PDQ Supplier on real sockets (ITI-8, ITI-9, ITI-21) and the identity index under them.

Each test starts its own server on 127.0.0.1 port 0 with its own SQLite file in tmp_path. Every reply is
checked for correlation (MSA-2 = MSH-10). The expected answers are docs/hub-protocols.md §1.2's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hl7wire import ISO2022_JP, UTF8, BlockingClient, ConnectionClosedError, ErrorLocation, Message, decode
from simulator.hub.audit import AuditLog, AuditRecord
from simulator.hub.auditbatch import AuditBatcher
from simulator.hub.index import (
    REGIONAL_NAMESPACE,
    REGIONAL_OID,
    DomainDirectory,
    IndexDemographics,
    IndexName,
    LinkConflictError,
    PatientIndex,
    SearchCriteria,
    UnknownPatientError,
    normalize_kana,
)
from simulator.hub.mllp import MLLPServer
from simulator.hub.pixpdq import PixPdqHandler
from synthetic import load_profile, write_world
from synthetic.clock import JST

NOW = datetime(2025, 4, 1, 9, 30, 0, tzinfo=JST)
REPO = Path(__file__).resolve().parents[1]


def _facility(code: str, name: str, role: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "network_role": role,
        "assigning_authority": {"oid": f"1.2.392.100495.20.3.51.1{code}", "namespace": f"JP{code}"},
    }


A, B, C = "1310000011", "1310000022", "1310000033"
WORLD = {
    "facilities": [
        _facility(A, "東都中央病院", "disclosing"),
        _facility(B, "港北クリニック", "disclosing"),
        _facility(C, "緑ヶ丘診療所", "viewing"),
    ]
}


def ns(code: str) -> str:
    return f"JP{code}"


def hd(code: str) -> str:
    return f"JP{code}&1.2.392.100495.20.3.51.1{code}&ISO"


def cx(local_id: str, code: str) -> str:
    return f"{local_id}^^^{hd(code)}"


CHARSETS = {UTF8: "UNICODE UTF-8", ISO2022_JP: "~ISO IR87", "ascii": ""}
KANJI = "山田^太郎^^^^^L^I~ヤマダ^タロウ^^^^^L^P"


def msh(sender: str, mtype: str, control: str, *, version: str = "2.5", codec: str = UTF8) -> str:
    return (
        f"MSH|^~\\&|HIS|{sender}|RHIN_HUB|RHIN|20250401093000+0900||{mtype}|{control}|P|{version}"
        f"||||||{CHARSETS[codec]}\r"
    )


def adt(
    event: str,
    control: str,
    pid3: str,
    *,
    names: str = KANJI,
    birth: str = "19600102",
    sex: str = "M",
    postcode: str = "9200833",
    sender: str = A,
    version: str = "2.5",
    codec: str = UTF8,
    mrg: str = "",
) -> str:
    text = msh(sender, f"ADT^{event}^ADT_A01", control, version=version, codec=codec)
    text += f"EVN|{event}|20250401093000\r"
    text += f"PID|1||{pid3}||{names}||{birth}|{sex}|||^^金沢市^石川県^{postcode}^JPN^H||076-000-0000\r"
    if mrg:
        text += f"MRG|{mrg}\r"
    return text


def pix(control: str, pid3: str, domains: str = "", *, sender: str = C) -> str:
    return msh(sender, "QBP^Q23^QBP_Q21", control) + f"QPD|IHE PIX Query|T{control}|{pid3}|{domains}\rRCP|I\r"


def pdq(
    control: str,
    criteria: str,
    domains: str = "",
    *,
    tag: str = "",
    quantity: str = "",
    dsc: str = "",
    codec: str = UTF8,
) -> str:
    text = msh(C, "QBP^Q22^QBP_Q21", control, codec=codec)
    text += f"QPD|IHE PDQ Query|{tag or 'T' + control}|{criteria}|||||{domains}\rRCP|I|{quantity}\r"
    return text + (f"DSC|{dsc}|I\r" if dsc else "")


def exchange(client: BlockingClient, text: str, codec: str = UTF8) -> Message:
    """Send one message; check the reply is correlated and in the request's charset."""
    reply, reply_codec = decode(client.send(text.encode(codec)))
    request_id = text.split("\r", 1)[0].split("|")[9]
    assert reply.get("MSA", 2) == request_id
    assert reply_codec == codec
    return reply


def err(reply: Message) -> tuple[str, str]:
    """(ERR-2 as sent, ERR-3 code) of the first ERR."""
    seg = reply.segment("ERR")
    assert seg is not None, reply
    return seg.field(2), seg.get(3, comp=1)


@contextmanager
def serving(index: PatientIndex, audit: AuditBatcher | None = None) -> Iterator[MLLPServer]:
    """A hub server on its own event loop thread, for blocking clients."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = MLLPServer(PixPdqHandler(index, clock=lambda: NOW, audit=audit), clock=lambda: NOW)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        if audit is not None:
            asyncio.run_coroutine_threadsafe(audit.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PatientIndex]:
    with PatientIndex(tmp_path / "hub.sqlite", DomainDirectory.from_world(WORLD), clock=lambda: NOW) as idx:
        yield idx


@pytest.fixture
def hub(index: PatientIndex) -> Iterator[BlockingClient]:
    with serving(index) as server, BlockingClient(server.host, server.port) as client:
        yield client


def feed(client: BlockingClient, event: str, control: str, pid3: str, **kw: Any) -> Message:
    reply = exchange(client, adt(event, control, pid3, **kw), kw.get("codec", UTF8))
    assert reply.get("MSA", 1) == "AA", reply
    return reply


# ------------------------------------------------------------------------------------------- ITI-8 / ITI-9


def test_feed_then_pix_query_returns_all_linked_ids(hub: BlockingClient, index: PatientIndex) -> None:
    feed(hub, "A04", "F1", cx("00012345", A))
    ack = feed(hub, "A01", "F2", cx("B-77", B), sender=B, version="2.3.1")
    assert ack.get("MSH", 12) == "2.3.1"
    assert ack.message_type == ("ACK", "A01", "ACK")
    rid = index.link(ns(A), "00012345")
    assert index.link(ns(B), "B-77", rid) == rid

    reply = exchange(hub, pix("Q1", cx("00012345", A)))
    assert reply.message_type == ("RSP", "K23", "RSP_K23")
    assert (reply.get("MSA", 1), reply.get("QAK", 1), reply.get("QAK", 2)) == ("AA", "TQ1", "OK")
    assert reply.get("QPD", 3) == cx("00012345", A)  # echoed
    pids = reply.segments("PID")
    assert len(pids) == 1
    assert pids[0].repetitions(3) == [f"{rid}^^^RHIN&{REGIONAL_OID}&ISO^PI", f"B-77^^^{hd(B)}^PI"]
    assert pids[0].field(5) == "~^^^^^^S"

    only_b = exchange(hub, pix("Q2", cx("00012345", A), f"^^^{hd(B)}"))
    assert only_b.segments("PID")[0].repetitions(3) == [f"B-77^^^{hd(B)}^PI"]
    by_regional = exchange(hub, pix("Q3", f"{rid}^^^RHIN&{REGIONAL_OID}&ISO"))
    assert len(by_regional.segments("PID")[0].repetitions(3)) == 2


def test_pix_known_id_nothing_in_wanted_domain_is_aa_nf(hub: BlockingClient, index: PatientIndex) -> None:
    feed(hub, "A04", "F1", cx("1", A))
    index.link(ns(A), "1")
    reply = exchange(hub, pix("Q1", cx("1", A), f"^^^{hd(B)}"))
    assert (reply.get("MSA", 1), reply.get("QAK", 2)) == ("AA", "NF")
    assert not reply.segments("PID")
    assert not reply.segments("ERR")


@pytest.mark.parametrize(
    ("pid3", "domains", "location"),
    [
        (cx("NOPE", A), "", "QPD^1^3^1^1"),  # unknown patient in a known domain (MESA 10502)
        ("X1^^^XXXX", "", "QPD^1^3^1^4"),  # unknown source domain (MESA 10503)
        (cx("1", A), f"^^^{hd(B)}~^^^NOWHERE&1.2.3&ISO", "QPD^1^4^2"),  # unknown wanted domain
        (cx("1", A), "^^^X~^^^Y", "QPD^1^4^1~QPD^1^4^2"),  # every failing repetition, as ipf err-2
    ],
)
def test_pix_errors(hub: BlockingClient, pid3: str, domains: str, location: str) -> None:
    feed(hub, "A04", "F1", cx("1", A))
    reply = exchange(hub, pix("Q1", pid3, domains))
    assert (reply.get("MSA", 1), reply.get("QAK", 1), reply.get("QAK", 2)) == ("AE", "TQ1", "AE")
    assert err(reply) == (location, "204")
    assert all(ErrorLocation.parse(one).segment == "QPD" for one in location.split("~"))
    assert reply.get("QPD", 3) == pid3
    assert not reply.segments("PID")


@pytest.mark.parametrize(
    ("pid3", "why"),
    [
        (cx("1", B), "may not assign"),  # another facility's domain (OHIE-CR-04)
        ("SR00064^^^UNKNOWNDOMAIN&2.16.840.1.113883.3.72.5.9.99&ISO", "unknown"),  # OHIE-CR-03
        ("RJ-438^^^&&", "could not be resolved"),  # OHIE-CR-01
    ],
)
def test_feed_outside_the_senders_domain_is_refused(
    hub: BlockingClient, index: PatientIndex, pid3: str, why: str
) -> None:
    reply = exchange(hub, adt("A01", "F9", pid3))
    assert reply.get("MSA", 1) == "AE"
    assert why in reply.get("MSA", 3)
    assert err(reply) == ("PID^1^3^1^4", "204")
    assert index.count() == 0


def test_feed_without_authority_is_given_the_senders_domain(hub: BlockingClient, index: PatientIndex) -> None:
    feed(hub, "A04", "F1", "777", version="2.3.1")
    assert index.get(ns(A), "777") is not None


def test_unknown_sending_facility_is_rejected(hub: BlockingClient, index: PatientIndex) -> None:
    reply = exchange(hub, adt("A01", "F1", cx("1", A), sender="NIST_SENDER^^"))
    assert reply.get("MSA", 1) == "AR"
    assert err(reply) == ("MSH^1^4", "103")
    assert index.count() == 0
    # The facility namespace is accepted as well as its code.
    feed(hub, "A04", "F2", cx("1", A), sender=ns(A))


def test_update_replaces_demographics(hub: BlockingClient) -> None:
    feed(hub, "A04", "F1", cx("1", A))
    feed(hub, "A08", "F2", cx("1", A), names="佐藤^花子^^^^^L^I~サトウ^ハナコ^^^^^L^P", sex="F")
    assert exchange(hub, pdq("P1", "@PID.5.1.1^山田")).get("QAK", 2) == "NF"
    found = exchange(hub, pdq("P2", "@PID.5.1.1^サトウ~@PID.8^F"))
    assert found.get("QAK", 2) == "OK"
    assert found.get("PID", 5, comp=1) == "佐藤"


def test_merge_moves_links_and_retires_the_merged_id(hub: BlockingClient, index: PatientIndex) -> None:
    feed(hub, "A04", "F1", cx("OLD", A))
    feed(hub, "A04", "F2", cx("B1", B), sender=B)
    rid = index.link(ns(A), "OLD")
    index.link(ns(B), "B1", rid)
    feed(hub, "A40", "F3", cx("NEW", A), mrg=cx("OLD", A))
    gone = exchange(hub, pix("Q1", cx("OLD", A)))
    assert gone.get("QAK", 2) == "AE"
    assert err(gone) == ("QPD^1^3^1^1", "204")
    survivor = exchange(hub, pix("Q2", cx("NEW", A)))
    assert f"B1^^^{hd(B)}^PI" in survivor.segments("PID")[0].repetitions(3)
    assert index.identifiers(ns(B), "B1") == [(REGIONAL_NAMESPACE, rid), (ns(A), "NEW"), (ns(B), "B1")]
    again = exchange(hub, adt("A40", "F4", cx("NEW", A), mrg=cx("OLD", A)))
    assert again.get("MSA", 1) == "AE"
    assert err(again) == ("MRG^1^1^1^1", "204")


# ------------------------------------------------------------------------------------------- ITI-21


@pytest.mark.parametrize("codec", [ISO2022_JP, UTF8])
def test_japanese_names_in_both_charsets(hub: BlockingClient, codec: str) -> None:
    # 五 ^, 京 ~, 嵐 and 子 include delimiter bytes in JIS: only decoding before splitting keeps them whole.
    names = "五十嵐^京子^^^^^L^I~イガラシ^キョウコ^^^^^L^P"
    feed(hub, "A04", "F1", cx("1", A), names=names, sex="F", codec=codec)
    reply = exchange(hub, pdq("P1", "@PID.5.1.1^五十嵐~@PID.5.2^京子", codec=codec), codec)
    assert (reply.get("MSA", 1), reply.get("QAK", 2), reply.get("QAK", 4)) == ("AA", "OK", "1")
    pid = reply.segments("PID")[0]
    assert pid.field(5) == names
    assert pid.get(3, comp=1) == "1"
    assert reply.segments("QPD")[0].field(3) == "@PID.5.1.1^五十嵐~@PID.5.2^京子"


def test_half_width_kana_fed_in_utf8_reaches_a_jis_viewer(hub: BlockingClient) -> None:
    feed(hub, "A04", "F1", cx("1", A), names="ﾔﾏﾀﾞ^ﾀﾛｳ^^^^^L^P")
    reply = exchange(hub, pdq("P1", "@PID.5.1.1^ヤマダ", codec=ISO2022_JP), ISO2022_JP)
    assert reply.segments("PID")[0].field(5) == "ヤマダ^タロウ^^^^^L^P"


@pytest.mark.parametrize("family", ["やまだ", "ﾔﾏﾀﾞ", "ヤマダ", "山田", "ヤマ*", "やま*"])
def test_pdq_kana_normalisation(hub: BlockingClient, family: str) -> None:
    feed(hub, "A04", "F1", cx("1", A))
    reply = exchange(hub, pdq("P1", f"@PID.5.1.1^{family}~@PID.5.2^たろう"))
    assert reply.get("QAK", 2) == "OK", reply
    assert reply.get("PID", 3, comp=1) == "1"


def test_pdq_criteria_no_match_and_domains(hub: BlockingClient, index: PatientIndex) -> None:
    feed(hub, "A04", "F1", cx("1", A))
    feed(hub, "A04", "F2", cx("B1", B), sender=B, postcode="9218000")
    index.link(ns(B), "B1", index.link(ns(A), "1"))
    both = exchange(hub, pdq("P1", "@PID.7^19600102~@PID.8^M"))
    assert both.get("QAK", 4) == "1"  # linked records fold into one person
    assert len(both.segments("PID")[0].repetitions(3)) == 3
    by_post = exchange(hub, pdq("P2", "@PID.11.5^921-8000", f"^^^{hd(A)}"))
    assert by_post.segments("PID")[0].repetitions(3) == [f"1^^^{hd(A)}^PI"]
    by_id = exchange(hub, pdq("P3", f"@PID.3.1^B1~@PID.3.4^{ns(B)}"))
    assert by_id.get("QAK", 2) == "OK"
    none = exchange(hub, pdq("P4", "@PID.5.1.1^鈴木"))
    assert (none.get("MSA", 1), none.get("QAK", 2), none.segments("PID")) == ("AA", "NF", [])
    not_in_c = exchange(hub, pdq("P5", "@PID.7^19600102", f"^^^{hd(C)}"))
    assert not_in_c.get("QAK", 2) == "NF"
    bad = exchange(hub, pdq("P6", "@PID.5.1.1^山田", "^^^UNKNOWNDOMAIN"))
    assert (bad.get("MSA", 1), bad.get("QAK", 2), err(bad)) == ("AE", "AE", ("QPD^1^8^1", "204"))


def test_pdq_continuation_and_cancel(hub: BlockingClient) -> None:
    for n in range(5):
        feed(hub, "A04", f"F{n}", cx(f"{n:03d}", A))
    first = exchange(hub, pdq("P1", "@PID.5.1.1^山田", tag="TAG", quantity="2^RD"))
    assert [first.get("QAK", i) for i in (1, 2, 4, 5, 6)] == ["TAG", "OK", "5", "2", "3"]
    assert [p.get(3, comp=1) for p in first.segments("PID")] == ["000", "001"]
    pointer = first.get("DSC", 1)
    assert pointer
    assert first.get("DSC", 2) == "I"
    second = exchange(hub, pdq("P2", "@PID.5.1.1^山田", tag="TAG", quantity="2^RD", dsc=pointer))
    assert [second.get("QAK", i) for i in (4, 5, 6)] == ["5", "2", "1"]
    assert [p.get(3, comp=1) for p in second.segments("PID")] == ["002", "003"]
    cancel = msh(C, "QCN^J01^QCN_J01", "C1") + "QID|TAG|IHE PDQ Query\r"
    ack = exchange(hub, cancel)
    assert ack.message_type == ("ACK", "J01", "ACK")
    assert ack.get("MSA", 1) == "AA"
    stale = exchange(hub, pdq("P3", "@PID.5.1.1^山田", tag="TAG", dsc=second.get("DSC", 1)))
    assert stale.get("MSA", 1) == "AE"
    assert err(stale) == ("DSC^1^1", "204")


def test_a_continuation_is_the_asking_facilitys_own(hub: BlockingClient) -> None:
    """Pointers are sequential and query tags often predictable: another facility presenting both gets an
    unknown pointer (and cannot cancel the query), and the pointer still works for the one who asked."""
    for n in range(4):
        feed(hub, "A04", f"F{n}", cx(f"{n:03d}", A))
    first = exchange(hub, pdq("P1", "@PID.5.1.1^山田", tag="TAG", quantity="2^RD"))
    pointer = first.get("DSC", 1)
    assert pointer
    other = pdq("P2", "@PID.5.1.1^山田", tag="TAG", quantity="2^RD", dsc=pointer).replace(
        f"|{C}|", f"|{B}|", 1
    )
    stolen = exchange(hub, other)
    assert (stolen.get("MSA", 1), err(stolen)) == ("AE", ("DSC^1^1", "204"))
    assert stolen.segments("PID") == []
    cancel = msh(B, "QCN^J01^QCN_J01", "C1") + "QID|TAG|IHE PDQ Query\r"
    assert exchange(hub, cancel).get("MSA", 1) == "AA"
    own = exchange(hub, pdq("P3", "@PID.5.1.1^山田", tag="TAG", quantity="2^RD", dsc=pointer))
    assert own.get("MSA", 1) == "AA"
    assert [p.get(3, comp=1) for p in own.segments("PID")] == ["002", "003"]


def test_server_survives_malformed_messages(index: PatientIndex) -> None:
    with serving(index) as server, BlockingClient(server.host, server.port) as client:
        broken = exchange(client, msh(A, "ADT^A01", "M1").replace("|2.5|", "||") + "PID|1\r")
        assert broken.get("MSA", 1) == "AR"
        no_qpd = exchange(client, msh(C, "QBP^Q23^QBP_Q21", "M2") + "RCP|I\r")
        assert no_qpd.get("MSA", 1) == "AE"
        odd = exchange(client, adt("A01", "M3", cx("1", A)).replace("PID|", "PID|\\X1B\\|"))
        assert err(odd) == ("PID^1^3", "101")  # the extra field shifted PID-3 away
        weird = exchange(client, pdq("M3b", "@PID.99^x"))
        assert err(weird) == ("QPD^1^3^1^1", "103")
        feed(client, "A04", "M4", cx("2", A))
        with pytest.raises(ConnectionClosedError):  # no MSH at all: nothing to correlate, so it hangs up
            client.send(b"PID|1||x\r")
        with BlockingClient(server.host, server.port) as again:
            feed(again, "A04", "M5", cx("3", A))
    assert index.count() == 2


# ------------------------------------------------------------------------------------------- index


def test_index_links_are_idempotent_and_unlink(index: PatientIndex) -> None:
    names = (IndexName("山田", "太郎", "I"), IndexName("ヤマダ", "タロウ", "P"))
    demo = IndexDemographics(names, "19600102", "M")
    index.register(ns(A), "1", demo)
    index.register(ns(B), "2", demo)
    rid = index.link(ns(A), "1")
    assert index.link(ns(A), "1") == rid == index.link(ns(A), "1", rid)
    other = index.link(ns(B), "2")
    with pytest.raises(LinkConflictError):
        index.link(ns(A), "1", other)
    with pytest.raises(UnknownPatientError):
        index.link(ns(A), "missing")
    assert index.unlink(ns(A), "1")
    assert not index.unlink(ns(A), "1")
    assert index.identifiers(ns(A), "1") == [(ns(A), "1")]
    assert index.search(SearchCriteria(family="山田", given="たろう", sex="m"))[0].local_id == "1"
    assert normalize_kana("ｲｶﾞﾗｼ　Ａｂ") == "イガラシAB"


@pytest.fixture(scope="module")
def world_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The mini world's files only (no SS-MIX2 storage): about a second, against ~20 s for conftest's."""
    out = tmp_path_factory.mktemp("pixpdq") / "world"
    out.mkdir()
    write_world(load_profile("mini"), 7, out, storage=None)
    world: dict[str, Any] = json.loads((out / "world.json").read_text(encoding="utf-8"))
    return world


def test_directory_from_the_mini_world(world_json: dict[str, Any], tmp_path: Path) -> None:
    directory = DomainDirectory.from_world(world_json)
    for facility in world_json["facilities"]:
        authority = facility["assigning_authority"]
        domain = directory.facility(facility["code"])
        assert domain is not None
        assert domain == directory.resolve(authority["namespace"], authority["oid"])
        assert directory.facility(authority["namespace"]) == domain
    assert directory.resolve("", REGIONAL_OID) == directory.regional
    assert directory.facility(REGIONAL_NAMESPACE) is None  # the hub's domain is no sender
    first = world_json["facilities"][0]["assigning_authority"]["namespace"]
    assert directory.resolve(first, REGIONAL_OID) is None  # namespace and OID disagree
    with PatientIndex(tmp_path / "mini.sqlite", directory) as idx:
        idx.register(first, "00000001", IndexDemographics((IndexName("山田", "太郎", "I"),)))
        assert idx.identifiers(first, "00000001") == [(first, "00000001")]


def test_v231_feed_error_carries_err1(hub: BlockingClient) -> None:
    reply = exchange(hub, adt("A01", "F1", cx("1", B), version="2.3.1"))
    assert reply.get("MSH", 12) == "2.3.1"
    assert reply.get("MSA", 1) == "AE"
    assert reply.get("ERR", 1, comp=4, sub=1) == "204"
    assert err(reply) == ("PID^1^3^1^4", "204")


# ------------------------------------------------------------------------------------------- audit

STAMP = NOW.isoformat(timespec="seconds")


@pytest.fixture
def audit_log(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(tmp_path / "audit.sqlite") as log:
        yield log


@pytest.fixture
def audited(index: PatientIndex, audit_log: AuditLog) -> Iterator[BlockingClient]:
    with (
        serving(index, AuditBatcher(audit_log)) as server,
        BlockingClient(server.host, server.port) as client,
    ):
        yield client


def summary(record: AuditRecord) -> tuple[str, str, str, str, str, str]:
    return (
        record.action,
        record.outcome,
        record.patient,
        record.target,
        record.actor_facility,
        record.actor_user,
    )


def details(record: AuditRecord) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(record.details)
    return parsed


def test_audit_of_feeds_refusals_and_rejected_senders(
    audited: BlockingClient, index: PatientIndex, audit_log: AuditLog
) -> None:
    feed(audited, "A04", "F1", cx("1", A))
    rid = index.link(ns(A), "1")
    feed(audited, "A08", "F2", cx("1", A))
    assert exchange(audited, adt("A01", "F3", cx("2", B))).get("MSA", 1) == "AE"
    assert exchange(audited, adt("A01", "F4", cx("3", A), sender="NIST_SENDER^^")).get("MSA", 1) == "AR"
    feed(audited, "A40", "F5", cx("NEW", A), mrg=cx("1", A), sender=ns(A))
    records = audit_log.records()
    assert [summary(r) for r in records] == [
        ("feed", "AA", "", f"{ns(A)}|1", A, "HIS"),
        ("feed", "AA", rid, f"{ns(A)}|1", A, "HIS"),  # linked by now
        ("feed", "AE", "", f"{ns(B)}|2", A, "HIS"),  # as sent: not A's to assign
        ("rejected-sender", "AR", "", "", "NIST_SENDER", "HIS"),
        ("feed", "AA", rid, f"{ns(A)}|NEW", A, "HIS"),  # MSH-4 by namespace: still the facility code
    ]
    assert details(records[0]) == {"type": "ADT^A04", "control": "F1"}
    assert details(records[4]) == {"type": "ADT^A40", "control": "F5", "merged": "1"}
    assert "may not assign" in records[2].reason
    assert "not a member" in records[3].reason
    assert records[0].reason == ""
    assert {r.time for r in records} == {STAMP}  # the handler's clock
    assert audit_log.verify() == []
    assert audit_log.access_report(rid) == []  # feeds are not reads of the patient's data


def test_audit_of_pix_queries(audited: BlockingClient, index: PatientIndex, audit_log: AuditLog) -> None:
    feed(audited, "A04", "F1", cx("00012345", A))
    feed(audited, "A04", "F2", cx("B-77", B), sender=B)
    rid = index.link(ns(A), "00012345")
    index.link(ns(B), "B-77", rid)
    before = len(audit_log.records())
    exchange(audited, pix("Q1", cx("00012345", A)))
    exchange(audited, pix("Q2", cx("00012345", A), f"^^^{hd(C)}"))  # known, nothing in C: AA/NF
    exchange(audited, pix("Q3", cx("NOPE", A)))
    exchange(audited, pix("Q4", "X1^^^XXXX"))
    exchange(audited, pix("Q5", f"{rid}^^^RHIN&{REGIONAL_OID}&ISO"))
    queries = audit_log.records()[before:]
    assert [summary(r) for r in queries] == [
        ("query", "AA", rid, f"{ns(A)}|00012345", C, "HIS"),
        ("query", "AA", rid, f"{ns(A)}|00012345", C, "HIS"),
        ("query", "AE", "", f"{ns(A)}|NOPE", C, "HIS"),
        ("query", "AE", "", "XXXX|X1", C, "HIS"),
        ("query", "AA", rid, f"{REGIONAL_NAMESPACE}|{rid}", C, "HIS"),
    ]
    assert details(queries[0]) == {"type": "QBP^Q23", "control": "Q1", "tag": "TQ1", "status": "OK"}
    assert [details(r)["status"] for r in queries] == ["OK", "NF", "AE", "AE", "OK"]
    assert "unknown patient" in queries[2].reason
    report = audit_log.access_report(rid)
    assert [(row.facility, row.action, row.outcome) for row in report] == [(C, "query", "AA")] * 3
    assert audit_log.verify() == []


def test_audit_of_pdq_lists_the_query_under_every_person_returned(
    audited: BlockingClient, index: PatientIndex, audit_log: AuditLog
) -> None:
    feed(audited, "A04", "F1", cx("1", A))
    feed(audited, "A04", "F2", cx("B1", B), sender=B)
    feed(audited, "A04", "F3", cx("2", A), birth="19700304")
    feed(audited, "A04", "F4", cx("3", A), birth="19800506")
    one = index.link(ns(A), "1")
    index.link(ns(B), "B1", one)
    two = index.link(ns(A), "2")
    before = len(audit_log.records())

    reply = exchange(audited, pdq("P1", "@PID.5.1.1^山田"))
    assert reply.get("QAK", 4) == "3"  # three people: A1+B1 folded, A2, A3 (unlinked)
    records = audit_log.records()[before:]
    assert [(r.action, r.patient, r.target, details(r)["role"]) for r in records] == [
        ("query", one, f"{ns(A)}|1", "hit"),
        ("query", two, f"{ns(A)}|2", "hit"),
        ("query", "", f"{ns(A)}|3", "hit"),
        ("query", "", "", "summary"),
    ]
    assert [r.seq for r in records] == list(range(records[0].seq, records[0].seq + 4))
    assert {(details(r)["control"], details(r)["tag"]) for r in records} == {("P1", "TP1")}
    assert details(records[3]) == {
        "type": "QBP^Q22",
        "control": "P1",
        "tag": "TP1",
        "status": "OK",
        "query": "@PID.5.1.1^山田",
        "hits": 3,
        "returned": 3,
        "role": "summary",
    }
    for rid in (one, two):
        assert [(row.facility, row.action) for row in audit_log.access_report(rid)] == [(C, "query")]

    # A continuation page discloses its own people and says which page it was.
    first = exchange(audited, pdq("P2", "@PID.5.1.1^山田", tag="PAGED", quantity="2^RD"))
    pointer = first.get("DSC", 1)
    exchange(audited, pdq("P3", "@PID.5.1.1^山田", tag="PAGED", quantity="2^RD", dsc=pointer))
    pages = audit_log.records()[before + 4 :]
    assert [(r.patient, details(r)["role"], details(r)["control"]) for r in pages] == [
        (one, "hit", "P2"),
        (two, "hit", "P2"),
        ("", "summary", "P2"),
        ("", "hit", "P3"),
        ("", "summary", "P3"),
    ]
    assert details(pages[2])["returned"] == 2
    assert details(pages[4])["pointer"] == pointer

    none = exchange(audited, pdq("P4", "@PID.5.1.1^鈴木"))
    assert none.get("QAK", 2) == "NF"
    (nf,) = audit_log.records()[before + 9 :]
    assert (nf.patient, details(nf)["status"], details(nf)["hits"], details(nf)["role"]) == (
        "",
        "NF",
        0,
        "summary",
    )
    assert [row.action for row in audit_log.access_report(one)] == ["query"] * 2
    assert audit_log.verify() == []


def test_reply_waits_for_its_audit_commit(
    index: PatientIndex, audit_log: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a slow disk the answer is late, never early: at reply time the record is already committed."""
    real_finish = audit_log._finish

    def slow_finish() -> None:
        threading.Event().wait(0.3)
        real_finish()

    monkeypatch.setattr(audit_log, "_finish", slow_finish)
    with (
        serving(index, AuditBatcher(audit_log)) as server,
        BlockingClient(server.host, server.port) as client,
    ):
        started = time.monotonic()
        feed(client, "A04", "F1", cx("1", A))
        assert time.monotonic() - started >= 0.3
        with closing(sqlite3.connect(tmp_path / "audit.sqlite")) as other:  # durable, not just staged
            assert other.execute("SELECT action, target FROM audit").fetchall() == [("feed", f"{ns(A)}|1")]


def test_a_failed_audit_is_never_answered_aa(
    index: PatientIndex, audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_finish() -> None:
        audit_log._db.execute("ROLLBACK")
        audit_log._lock.release()
        raise sqlite3.OperationalError("disk I/O error")

    with serving(index, AuditBatcher(audit_log)) as server, BlockingClient(server.host, server.port) as c:
        feed(c, "A04", "F1", cx("1", A))
        monkeypatch.setattr(audit_log, "_finish", failing_finish)
        reply = exchange(c, pix("Q1", cx("1", A)))
        assert reply.get("MSA", 1) == "AE"  # the query's answer is withheld: it could not be audited
        assert err(reply)[1] == "207"
        assert not reply.segments("PID")
    assert [r.action for r in audit_log.records()] == ["feed"]


# ------------------------------------------------------------------------------------------- durability

RUNNER = """
import asyncio, sys
from pathlib import Path
from simulator.hub.index import DomainDirectory, PatientIndex
from simulator.hub.mllp import MLLPServer
from simulator.hub.pixpdq import PixPdqHandler

async def main() -> None:
    server = MLLPServer(PixPdqHandler(PatientIndex(sys.argv[2], DomainDirectory.load(Path(sys.argv[1])))))
    await server.start()
    print(server.port, flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


@contextmanager
def hub_process(world: Path, db: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(world), str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_acknowledged_feeds_survive_sigkill(tmp_path: Path) -> None:
    world, db = tmp_path / "world.json", tmp_path / "hub.sqlite"
    world.write_text(json.dumps(WORLD, ensure_ascii=False), encoding="utf-8")
    count = 60
    with hub_process(world, db) as (proc, port), BlockingClient("127.0.0.1", port) as client:
        for n in range(count):
            feed(client, "A04", f"D{n}", cx(f"{n:05d}", A), codec=ISO2022_JP)
        os.kill(proc.pid, signal.SIGKILL)  # right after the last ACK
        proc.wait(10)
    with hub_process(world, db) as (_, port), BlockingClient("127.0.0.1", port) as client:
        reply = exchange(client, pdq("P1", "@PID.5.1.1^山田~@PID.5.2^太郎", quantity="100^RD"))
        assert reply.get("QAK", 4) == str(count)
        ids = {p.get(3, comp=1) for p in reply.segments("PID")}
        assert ids == {f"{n:05d}" for n in range(count)}
