"""A fixed sequence of v3 requests through the hub's SOAP layer in-process, and each reply's exact bytes.

tests/test_v3_writer.py pins these bytes (tests/golden/v3/replies/): they were written by the hub's earlier
tree-building writer (lxml), so the text writer (:mod:`simulator.hub.v3.writer`) is held to the very same
bytes — namespaces, attribute order, escapes, whitespace tails of echoed request parts, faults. Only what
changes per run is masked: the reply's ``wsa:MessageID``, the hub's own message id and the harness's
random request ids. The requests include odd but valid XML (a prefixed HL7 namespace, ``xsi`` attributes,
a foreign element, CDATA, character references) and markup characters in every echoed field.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

from harness.hl7v3client import V3Client, V3Patient, continuation, feed, pdq_query, pix_query
from simulator.hub.index import Domain, DomainDirectory, PatientIndex
from simulator.hub.v3.soap import SoapFault, fault_envelope, read_envelope, reply_envelope
from simulator.hub.v3.transactions import FEED_ACTIONS, PDQ_ACTIONS, PIX_ACTIONS, V3Hub
from synthetic.clock import JST

NOW = dt.datetime(2026, 11, 20, 10, 0, 5, tzinfo=JST)
A = ("1.2.392.100495.20.3.51.11710110001", "1710110001")
B = ("1.2.392.100495.20.3.51.11710710002", "1710710002")
DIRECTORY = DomainDirectory(
    [Domain("JP1710110001", A[0], A[1], "大学病院"), Domain("JP1710710002", B[0], B[1], "内科クリニック")]
)
_CT = "application/soap+xml; charset=UTF-8"
_ODD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="true">'
    "urn:hl7-org:v3:PRPA_IN201309UV02</a:Action><a:MessageID>urn:uuid:&amp;&lt;x&gt;\"'</a:MessageID>"
    '</s:Header><s:Body><h:PRPA_IN201309UV02 xmlns:h="urn:hl7-org:v3"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ITSVersion="XML_1.0">'
    '<h:id root="1.2" extension="M&amp;1"/><h:sender><h:device>'
    f'<h:id root="{B[0]}" extension="{B[1]}"/></h:device></h:sender><h:controlActProcess><h:queryByParameter>'
    '<!-- c --><h:queryId root="r" extension="a&#10;b&#9;c&quot;&#13;"/>'
    '<h:statusCode xsi:type="CS" code="new"/>'
    f'\n  <h:parameterList><h:patientIdentifier><h:value root="{A[0]}" extension="000123"/>'
    "<h:semanticsText><![CDATA[a<b>&]]>\u00e9\U0001f600</h:semanticsText></h:patientIdentifier>"
    '</h:parameterList><x:ext xmlns:x="urn:other" x:attr="1">t</x:ext></h:queryByParameter>'
    "</h:controlActProcess></h:PRPA_IN201309UV02></s:Body></s:Envelope>"
)


def mask(reply: bytes) -> bytes:
    """``reply`` without what changes per run (module docstring)."""
    reply = re.sub(
        rb"<wsa:MessageID>urn:uuid:[0-9a-f-]+</wsa:MessageID>", b"<wsa:MessageID>X</wsa:MessageID>", reply
    )
    reply = re.sub(rb'extension="[0-9a-f]{12}\.\d+"', b'extension="REQ"', reply)
    return re.sub(
        rb'root="1\.2\.392\.200250\.9\.3" extension="[0-9.]+"',
        b'root="1.2.392.200250.9.3" extension="X"',
        reply,
    )


def replies(data: Path) -> dict[str, bytes]:
    """Name → masked reply bytes, for the whole sequence, on a new index under ``data``."""
    index = PatientIndex(data / "hub.sqlite", DIRECTORY)
    hub = V3Hub(index, audit=None, clock=lambda: NOW)
    client = V3Client("http://127.0.0.1:9")  # only builds envelopes: never connects
    loop = asyncio.new_event_loop()
    out: dict[str, bytes] = {}

    def run(name: str, data: bytes) -> None:
        try:
            soap = read_envelope(_CT, data, FEED_ACTIONS | PIX_ACTIONS | PDQ_ACTIONS)
            response, payload = loop.run_until_complete(hub.handle(soap, False, None))
            out[name] = mask(reply_envelope(response, payload, soap.message_id))
        except SoapFault as fault:
            out[name] = mask(fault_envelope(fault))

    def send(name: str, interaction: str, payload: object) -> None:
        run(name, client.envelope(f"urn:hl7-org:v3:{interaction}", payload, f"urn:uuid:{name}&<>"))  # type: ignore[arg-type]

    names = [("北陸", "太郎", "IDE"), ("ホクリク", "タロウ", "SYL")]
    address = "石川県金沢市1-2 <&>\"'"
    taro = V3Patient(A[0], "000123", names, "19500101", "M", address, "920-0001", ["076-000-0000"])
    try:
        send("feed-add", "PRPA_IN201301UV02", feed("add", A, taro))
        send(
            "feed-add-b",
            "PRPA_IN201301UV02",
            feed("add", B, V3Patient(B[0], "C-77&<>", [("北陸", "太郎", "IDE")])),
        )
        send(
            "feed-add-c",
            "PRPA_IN201301UV02",
            feed("add", B, V3Patient(B[0], "C-78", [("北陸", "", "")], sex="F")),
        )
        send("feed-bad-sender", "PRPA_IN201301UV02", feed("add", ("1.1", "nope&<>\"'"), taro))
        send("feed-other-domain", "PRPA_IN201301UV02", feed("add", A, V3Patient(B[0], "1", [])))
        regional = index.link("JP1710110001", "000123")
        index.link("JP1710710002", "C-77&<>", regional)
        send("pix-ok", "PRPA_IN201309UV02", pix_query(B, (A[0], "000123"), query_id="Q&<>\"'漢"))
        send("pix-nf", "PRPA_IN201309UV02", pix_query(A, (A[0], "000123"), [A[0]], query_id="Q3"))
        send(
            "pix-bad-ds",
            "PRPA_IN201309UV02",
            pix_query(B, (A[0], "000123"), ["7.7", "8&8", B[0]], query_id="Q6"),
        )
        send(
            "pdq-page",
            "PRPA_IN201305UV02",
            pdq_query(B, {"family": "北陸"}, initial_quantity=1, query_id="P2"),
        )
        send("pdq-cont", "QUQI_IN000003UV01_Continue", continuation(B, ("1.2.392.200250.9.4", "P2"), 5))
        send(
            "pdq-extra",
            "PRPA_IN201305UV02",
            pdq_query(B, {"family": "北陸", "extra": ["mothersMaidenName"]}, query_id="P5"),
        )
        run("pix-odd", _ODD.encode())
        run("pdq-odd", _ODD.replace("PRPA_IN201309UV02", "PRPA_IN201305UV02").encode())
        run("fault-action", _ODD.replace("PRPA_IN201309UV02</a:Action>", "X&amp;</a:Action>").encode())
        run("fault-dtd", b'<!DOCTYPE a [<!ENTITY x "y">]><a/>')
    finally:
        client.close()
        loop.close()
        index.close()
    return out
