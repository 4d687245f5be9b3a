"""Golden request/response pairs for ITI-44, ITI-45 and ITI-47 (tests/golden/v3), and hostile XML.

The requests are shaped on the IHE ITI TF-2 samples (transmission wrapper, controlActProcess,
queryByParameter) with the world's OIDs and JAHIS names; the responses were checked by hand against the
IHE examples' structure (MCCI_IN000002UV01 acknowledgement with targetMessage; PRPA_IN201310UV02 with one
registrationEvent/subject1/patient holding the other domains' ids and ``<name nullFlavor="NA"/>``, then
queryAck and the echoed queryByParameter; PRPA_IN201306UV02 with one subject per match carrying
patientPerson and queryMatchObservation, queryAck with the three result quantities). The hub's own message
id and creation time change per run and are masked. The v3 layer runs in-process on a real index file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from simulator.hub.index import Domain, DomainDirectory, PatientIndex
from simulator.hub.v3.soap import SoapFault, SoapRequest, read_envelope, reply_envelope
from simulator.hub.v3.transactions import V3Hub
from simulator.hub.v3.xmlsafe import MAX_DEPTH, HostileXml, child, parse, text
from synthetic.clock import JST

GOLDEN = Path(__file__).parent / "golden" / "v3"
NOW = dt.datetime(2026, 11, 20, 10, 0, 5, tzinfo=JST)
DIRECTORY = DomainDirectory(
    [
        Domain("JP1710110001", "1.2.392.100495.20.3.51.11710110001", "1710110001", "大学病院"),
        Domain("JP1710710002", "1.2.392.100495.20.3.51.11710710002", "1710710002", "内科クリニック"),
    ]
)


@pytest.fixture
def v3(tmp_path: Path) -> V3Hub:
    index = PatientIndex(tmp_path / "hub.sqlite", DIRECTORY)
    return V3Hub(index, audit=None, clock=lambda: NOW)


def ask(hub: V3Hub, name: str, action: str) -> bytes:
    body = parse((GOLDEN / f"{name}.request.xml").read_bytes())
    response, payload = asyncio.run(hub.handle(SoapRequest(action, "urn:uuid:golden", body), False, None))
    assert response == etree.QName(parse(payload.encode())).localname
    return payload.encode()


def canonical(data: bytes) -> str:
    """Whitespace-free, with the hub's own message id masked."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True, remove_comments=True))
    own = root.find("{urn:hl7-org:v3}id")
    assert own is not None
    own.set("extension", "*")
    return etree.tostring(root, method="c14n").decode()


def check(name: str, got: bytes) -> None:
    expected = (GOLDEN / f"{name}.response.xml").read_bytes()
    assert canonical(got) == canonical(expected)


def test_golden_feed_pix_pdq(v3: V3Hub) -> None:
    check("iti44-add", ask(v3, "iti44-add", "urn:hl7-org:v3:PRPA_IN201301UV02"))
    v3.index.register("JP1710710002", "C-77", v3.index.get("JP1710110001", "000123").demographics)  # type: ignore[union-attr]
    regional = v3.index.link("JP1710110001", "000123")
    v3.index.link("JP1710710002", "C-77", regional)
    got = ask(v3, "iti45-query", "urn:hl7-org:v3:PRPA_IN201309UV02")
    check("iti45-query", got.replace(regional.encode(), b"REGIONAL"))
    got = ask(v3, "iti47-query", "urn:hl7-org:v3:PRPA_IN201305UV02")
    check("iti47-query", got.replace(regional.encode(), b"REGIONAL"))


def test_reply_envelope_relates_to_the_request() -> None:
    payload = '<MCCI_IN000002UV01 xmlns="urn:hl7-org:v3"/>'
    envelope = parse(reply_envelope("MCCI_IN000002UV01", payload, "urn:uuid:42"))
    wsa = "{http://www.w3.org/2005/08/addressing}"
    assert envelope.findtext(f".//{wsa}Action") == "urn:hl7-org:v3:MCCI_IN000002UV01"
    assert envelope.findtext(f".//{wsa}RelatesTo") == "urn:uuid:42"
    assert envelope.findtext(f".//{wsa}MessageID", "").startswith("urn:uuid:")


# ------------------------------------------------------------------------------------------- hostile XML


def test_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42", encoding="utf-8")
    for doc in (
        f'<!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]><a>&x;</a>',
        f'<!DOCTYPE a SYSTEM "file://{secret}"><a/>',
        '<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><a/>',
    ):
        with pytest.raises(HostileXml) as refused:
            parse(doc.encode())
        assert "TOP-SECRET" not in str(refused.value)


def test_entity_expansion_is_refused_quickly() -> None:
    lol = '<!ENTITY l0 "lololololol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    doc = f"<!DOCTYPE a [{lol}]><a>&l9;</a>".encode()
    started = dt.datetime.now()
    with pytest.raises(HostileXml, match=r"DTD|amplification"):  # libxml2 may stop it first
        parse(doc)
    assert (dt.datetime.now() - started).total_seconds() < 1


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        (b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1), "deeper"),
        (b"<a>" * 100_000 + b"</a>" * 100_000, "deeper|depth"),  # libxml2 stops this one at 256
        (b"<a>" + b"<b/>" * 20_001 + b"</a>", "elements"),
        (b"<a><b></a>", "well-formed"),
        (b"", "empty"),
    ],
)
def test_bounds_and_malformed(doc: bytes, why: str) -> None:
    with pytest.raises(HostileXml, match=why):
        parse(doc)


def test_envelope_of_hostile_xml_is_a_sender_fault() -> None:
    with pytest.raises(SoapFault) as fault:
        read_envelope("application/soap+xml", b'<!DOCTYPE a [<!ENTITY x "y">]><a/>', ())
    assert (fault.value.code, fault.value.status) == ("Sender", 400)


def test_child_finds_what_find_finds() -> None:
    """xmlsafe.child replaces ElementPath ``find`` on the hot paths: the same element, or None, for every
    path here, including a first ``a`` without ``b`` (find looks under the next one)."""
    root = etree.fromstring(b"<r><a/><a><c/><b>1</b></a><a><b>2<d/></b></a><e><a><b>3</b></a></e></r>")
    for tags in (("a",), ("b",), ("a", "b"), ("a", "b", "d"), ("a", "c"), ("e", "a", "b"), ("a", "x"), ()):
        assert child(root, *tags) is (root.find("/".join(tags)) if tags else root), tags
    assert child(None, "a") is None
    assert text(child(root, "a", "b")) == "1"
    assert text(child(root, "a", "b", "d")) == ""
    assert text(root.find("a[3]")) == "2"  # text of an element with children still joins all its text
