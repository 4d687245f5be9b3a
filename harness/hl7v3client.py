"""A blocking PIXv3/PDQv3 client: builds HL7 v3 requests with lxml, sends them in SOAP 1.2 with
WS-Addressing over HTTP(S) (httpx, a facility's client certificate when the target uses TLS) and reads the
reply into a :class:`V3Reply` that scenario expectations and tests can look at.

Requests follow the IHE ITI-44/45/47 examples (transmission wrapper, controlActProcess, queryByParameter);
the sender device is ``<id root="{facility's domain OID}" extension="{facility code}"/>``. Replies are parsed
with the hub's hardened parser (:func:`simulator.hub.v3.xmlsafe.parse`): a hub under test is not trusted
either.
"""

from __future__ import annotations

import itertools
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx
from lxml import etree

from simulator.hub.v3.soap import SOAP_ENV, SOAP_MEDIA, WSA
from simulator.hub.v3.xmlsafe import HL7, HostileXml, attr, parse, q, text

__all__ = [
    "PATHS",
    "V3Client",
    "V3Patient",
    "V3Reply",
    "continuation",
    "feed",
    "pdq_query",
    "pix_query",
    "request",
]

PATHS: Final = {"feed": "/pixv3/feed", "pix": "/pixv3/query", "pdq": "/pdqv3"}
"""The reference hub's endpoint paths (a target file may name others)."""
FEED_INTERACTIONS: Final = {
    "add": "PRPA_IN201301UV02",
    "revise": "PRPA_IN201302UV02",
    "merge": "PRPA_IN201304UV02",
}
_TRIGGERS: Final = {"PRPA_IN201301UV02": "PRPA_TE201301UV02", "PRPA_IN201302UV02": "PRPA_TE201302UV02",
                    "PRPA_IN201304UV02": "PRPA_TE201304UV02", "PRPA_IN201309UV02": "PRPA_TE201309UV02",
                    "PRPA_IN201305UV02": "PRPA_TE201305UV02"}  # fmt: skip
_CLIENT_ROOT: Final = "1.2.392.200250.9.4"  # synthetic: the harness's message ids
_NSMAP: Final[Any] = {None: HL7}
_counter = itertools.count(1)


def _add(parent: etree._Element, name: str, value: str | None = None, /, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, q(name), attrs)
    if value is not None:
        element.text = value
    return element


@dataclass(frozen=True)
class V3Patient:
    """What a feed says of a patient: ``names`` as (family, given, use) with use IDE (kanji) or SYL (kana)."""

    id_root: str
    id_extension: str
    names: Sequence[tuple[str, str, str]] = ()
    birth_date: str = ""
    sex: str = ""
    address: str = ""
    postcode: str = ""
    phones: Sequence[str] = ()


def request(
    interaction: str, sender: tuple[str, str], *, message_id: str = "", now: datetime | None = None
) -> tuple[etree._Element, etree._Element]:
    """A request's root and its (empty) controlActProcess. ``sender`` is the device id (root, extension)."""
    root = etree.Element(q(interaction), {"ITSVersion": "XML_1.0"}, nsmap=_NSMAP)
    _add(root, "id", root=_CLIENT_ROOT, extension=message_id or f"{uuid.uuid4().hex[:12]}.{next(_counter)}")
    _add(root, "creationTime", value=(now or datetime.now()).strftime("%Y%m%d%H%M%S"))
    _add(root, "interactionId", root="2.16.840.1.113883.1.6", extension=interaction)
    _add(root, "processingCode", code="P")
    _add(root, "processingModeCode", code="T")
    _add(root, "acceptAckCode", code="AL")
    receiver = _add(
        _add(root, "receiver", typeCode="RCV"), "device", classCode="DEV", determinerCode="INSTANCE"
    )
    _add(receiver, "id", root="1.2.392.200250.9.2")
    device = _add(_add(root, "sender", typeCode="SND"), "device", classCode="DEV", determinerCode="INSTANCE")
    ids = {"root": sender[0]} if sender[0] else {}
    if sender[1]:
        ids["extension"] = sender[1]
    _add(device, "id", **ids)
    cap = _add(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    trigger = _TRIGGERS.get(interaction)
    if trigger:
        _add(cap, "code", code=trigger, codeSystem="2.16.840.1.113883.1.6")
    return root, cap


def feed(kind: str, sender: tuple[str, str], patient: V3Patient, prior: tuple[str, str] | None = None
         ) -> etree._Element:  # fmt: skip
    """ITI-44: ``kind`` add, revise or merge (``prior``: the subsumed id's (root, extension))."""
    interaction = FEED_INTERACTIONS[kind]
    root, cap = request(interaction, sender)
    event = _add(_add(cap, "subject", typeCode="SUBJ"), "registrationEvent", classCode="REG", moodCode="EVN")
    _add(event, "id", nullFlavor="NA")
    _add(event, "statusCode", code="active")
    element = _add(_add(event, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
    ids = {"root": patient.id_root} if patient.id_root else {}
    _add(element, "id", extension=patient.id_extension, **ids)
    _add(element, "statusCode", code="active")
    person = _add(element, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    for family, given, use in patient.names:
        name = _add(person, "name", use=use) if use else _add(person, "name")
        if family:
            _add(name, "family", family)
        if given:
            _add(name, "given", given)
    for phone in patient.phones:
        _add(person, "telecom", value=f"tel:{phone}")
    if patient.sex:
        _add(person, "administrativeGenderCode", code=patient.sex)
    if patient.birth_date:
        _add(person, "birthTime", value=patient.birth_date)
    if patient.address or patient.postcode:
        addr = _add(person, "addr")
        if patient.postcode:
            _add(addr, "postalCode", patient.postcode)
        if patient.address:
            _add(addr, "streetAddressLine", patient.address)
    if prior is not None:
        registration = _add(_add(event, "replacementOf", typeCode="RPLC"), "priorRegistration",
                            classCode="REG", moodCode="EVN")  # fmt: skip
        role = _add(_add(registration, "subject1", typeCode="SBJ"), "priorRegisteredRole", classCode="PAT")
        _add(role, "id", root=prior[0], extension=prior[1])
    return root


def _query(cap: etree._Element, query_id: str) -> tuple[etree._Element, etree._Element]:
    qbp = _add(cap, "queryByParameter")
    _add(qbp, "queryId", root=_CLIENT_ROOT, extension=query_id)
    _add(qbp, "statusCode", code="new")
    _add(qbp, "responsePriorityCode", code="I")
    return qbp, qbp


def _param(params: etree._Element, name: str, semantics: str) -> etree._Element:
    element = _add(params, name)
    value = _add(element, "value")
    _add(element, "semanticsText", semantics)
    return value


def pix_query(
    sender: tuple[str, str], patient: tuple[str, str], data_sources: Iterable[str] = (), query_id: str = ""
) -> etree._Element:
    """ITI-45: the IDs of ``patient`` (root, extension), in ``data_sources`` (domain OIDs) if any."""
    root, cap = request("PRPA_IN201309UV02", sender)
    qbp, _ = _query(cap, query_id or uuid.uuid4().hex[:16])
    _add(qbp, "responseModalityCode", code="R")
    params = _add(qbp, "parameterList")
    for source in data_sources:
        _param(params, "dataSource", "DataSource.id").set("root", source)
    value = _param(params, "patientIdentifier", "V3Patient.id")
    if patient[0]:
        value.set("root", patient[0])
    if patient[1]:
        value.set("extension", patient[1])
    return root


def pdq_query(
    sender: tuple[str, str],
    criteria: Mapping[str, Any],
    *,
    initial_quantity: int | None = None,
    query_id: str = "",
) -> etree._Element:
    """ITI-47. ``criteria`` keys: ``family``, ``given``, ``name_use`` (IDE/SYL), ``birth_date``, ``sex``,
    ``postcode``, ``id`` ((root, extension)), ``other_ids`` (domain OIDs), ``extra`` (element names of
    parameters the hub does not support, sent with an empty value: to test refusals)."""
    root, cap = request("PRPA_IN201305UV02", sender)
    qbp, _ = _query(cap, query_id or uuid.uuid4().hex[:16])
    _add(qbp, "responseModalityCode", code="R")
    if initial_quantity is not None:
        _add(qbp, "initialQuantity", value=str(initial_quantity))
    _add(qbp, "matchCriterionList")
    params = _add(qbp, "parameterList")
    if criteria.get("sex"):
        _param(params, "livingSubjectAdministrativeGender", "LivingSubject.administrativeGender").set(
            "code", str(criteria["sex"])
        )
    if criteria.get("birth_date"):
        _param(params, "livingSubjectBirthTime", "LivingSubject.birthTime").set(
            "value", str(criteria["birth_date"])
        )
    if criteria.get("id"):
        value = _param(params, "livingSubjectId", "LivingSubject.id")
        id_root, extension = criteria["id"]
        if id_root:
            value.set("root", id_root)
        if extension:
            value.set("extension", extension)
    if criteria.get("family") or criteria.get("given"):
        value = _param(params, "livingSubjectName", "LivingSubject.name")
        if criteria.get("name_use"):
            value.set("use", str(criteria["name_use"]))
        if criteria.get("family"):
            _add(value, "family", str(criteria["family"]))
        if criteria.get("given"):
            _add(value, "given", str(criteria["given"]))
    for other in criteria.get("other_ids") or ():
        _param(params, "otherIDsScopingOrganization", "OtherIDs.scopingOrganization.id").set(
            "root", str(other)
        )
    if criteria.get("postcode") or criteria.get("city"):
        value = _param(params, "patientAddress", "V3Patient.addr")
        if criteria.get("postcode"):
            _add(value, "postalCode", str(criteria["postcode"]))
        if criteria.get("city"):
            _add(value, "city", str(criteria["city"]))
    for extra in criteria.get("extra") or ():
        _param(params, str(extra), str(extra))
    return root


def continuation(sender: tuple[str, str], query_id: tuple[str, str], quantity: int | None = None,
                 *, cancel: bool = False) -> etree._Element:  # fmt: skip
    """ITI-47 continuation (``QUQI_IN000003UV01``) or cancel of the query ``query_id`` (root, extension)."""
    root, cap = request("QUQI_IN000003UV01", sender)
    _add(cap, "code", code="PRPA_TE000003UV01", codeSystem="2.16.840.1.113883.1.6")
    cont = _add(cap, "queryContinuation")
    _add(cont, "queryId", root=query_id[0], extension=query_id[1])
    _add(cont, "statusCode", code="aborted" if cancel else "waitContinuedQueryResponse")
    if quantity is not None and not cancel:
        _add(cont, "continuationQuantity", value=str(quantity))
    return root


# ------------------------------------------------------------------------------------------- replies


@dataclass
class V3Reply:
    """What came back: HTTP status, the SOAP fault or the HL7 acknowledgement and payload."""

    http_status: int
    action: str = ""
    relates_to: str = ""
    request_message_id: str = ""
    fault_code: str = ""
    fault_subcode: str = ""
    fault_reason: str = ""
    interaction: str = ""
    ack_code: str = ""
    target_message: str = ""
    details: list[dict[str, str]] = field(default_factory=list)  # code, text, location
    query_status: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # total, current, remaining
    query_id: tuple[str, str] = ("", "")
    patients: list[dict[str, Any]] = field(default_factory=list)
    raw: bytes = b""
    error: str = ""  # a reply that could not be read
    elapsed_ms: float = 0.0

    def ids(self) -> list[tuple[str, str]]:
        """Every (root, extension) of every returned patient."""
        return [(str(i[0]), str(i[1])) for p in self.patients for i in p["ids"]]


def read_reply(status: int, data: bytes) -> V3Reply:
    reply = V3Reply(status, raw=data)
    try:
        envelope = parse(data)
    except HostileXml as exc:
        reply.error = f"the reply is not readable XML: {exc}"
        return reply
    header = envelope.find(f"{{{SOAP_ENV}}}Header")
    if header is not None:
        reply.action = text(header.find(f"{{{WSA}}}Action"))
        reply.relates_to = text(header.find(f"{{{WSA}}}RelatesTo"))
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    children = [c for c in (body if body is not None else ()) if isinstance(c.tag, str)]
    if not children:
        reply.error = "the reply has no SOAP Body content"
        return reply
    payload = children[0]
    if payload.tag == f"{{{SOAP_ENV}}}Fault":
        code = payload.find(f"{{{SOAP_ENV}}}Code")
        reply.fault_code = text(code.find(f"{{{SOAP_ENV}}}Value")) if code is not None else ""
        sub = code.find(f"{{{SOAP_ENV}}}Subcode/{{{SOAP_ENV}}}Value") if code is not None else None
        reply.fault_subcode = text(sub)
        reply.fault_reason = text(payload.find(f"{{{SOAP_ENV}}}Reason/{{{SOAP_ENV}}}Text"))
        return reply
    reply.interaction = etree.QName(payload).localname
    ack = payload.find(q("acknowledgement"))
    if ack is not None:
        reply.ack_code = attr(ack.find(q("typeCode")), "code")
        reply.target_message = attr(ack.find(f"{q('targetMessage')}/{q('id')}"), "extension")
        for detail in ack.findall(q("acknowledgementDetail")):
            reply.details.append({
                "code": attr(detail.find(q("code")), "code"),
                "code_system": attr(detail.find(q("code")), "codeSystem"),
                "text": text(detail.find(q("text"))),
                "location": text(detail.find(q("location"))),
            })  # fmt: skip
    cap = payload.find(q("controlActProcess"))
    if cap is None:
        return reply
    query_ack = cap.find(q("queryAck"))
    if query_ack is not None:
        reply.query_status = attr(query_ack.find(q("queryResponseCode")), "code")
        qid = query_ack.find(q("queryId"))
        reply.query_id = (attr(qid, "root"), attr(qid, "extension"))
        for key, name in (("total", "resultTotalQuantity"), ("current", "resultCurrentQuantity"),
                          ("remaining", "resultRemainingQuantity")):  # fmt: skip
            value = attr(query_ack.find(q(name)), "value")
            if value.isdigit():
                reply.counts[key] = int(value)
    for patient in cap.findall(f"{q('subject')}/{q('registrationEvent')}/{q('subject1')}/{q('patient')}"):
        person = patient.find(q("patientPerson"))
        names = []
        if person is not None:
            for element in person.findall(q("name")):
                if element.get("nullFlavor"):
                    continue
                names.append({"use": attr(element, "use"), "family": text(element.find(q("family"))),
                              "given": text(element.find(q("given")))})  # fmt: skip
        reply.patients.append({
            "ids": [[attr(i, "root"), attr(i, "extension")] for i in patient.findall(q("id"))],
            "names": names,
            "birth_date": attr(person.find(q("birthTime")), "value") if person is not None else "",
            "sex": attr(person.find(q("administrativeGenderCode")), "code") if person is not None else "",
        })  # fmt: skip
    return reply


class V3Client:
    """One HTTP(S) connection pool to a hub's v3 endpoints, presenting ``tls``'s certificate if given."""

    def __init__(self, base_url: str, tls: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, verify=tls if tls is not None else True,
                                  timeout=timeout)  # fmt: skip

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> V3Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def envelope(self, action: str, payload: etree._Element | None, message_id: str, to: str = "") -> bytes:
        env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "wsa": WSA})
        header = etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
        etree.SubElement(header, f"{{{WSA}}}Action").text = action
        etree.SubElement(header, f"{{{WSA}}}MessageID").text = message_id
        reply_to = etree.SubElement(header, f"{{{WSA}}}ReplyTo")
        etree.SubElement(reply_to, f"{{{WSA}}}Address").text = f"{WSA}/anonymous"
        if to:
            etree.SubElement(header, f"{{{WSA}}}To").text = to
        body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
        if payload is not None:
            body.append(payload)
        return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))

    def send(self, path: str, action: str, payload: etree._Element) -> V3Reply:
        """POST ``payload`` as ``action`` (e.g. ``urn:hl7-org:v3:PRPA_IN201309UV02``) to ``path``."""
        message_id = f"urn:uuid:{uuid.uuid4()}"
        data = self.envelope(action, payload, message_id, self.base_url + path)
        reply = self.post(path, data, f'{SOAP_MEDIA}; charset=UTF-8; action="{action}"')
        reply.request_message_id = message_id
        return reply

    def post(self, path: str, data: bytes, content_type: str) -> V3Reply:
        """POST raw bytes (hostile-input tests and raw scenario steps)."""
        started = time.perf_counter()
        response = self._http.post(path, content=data, headers={"Content-Type": content_type})
        reply = read_reply(response.status_code, response.content)
        reply.elapsed_ms = (time.perf_counter() - started) * 1000
        return reply

    def get(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        return self._http.get(path, params=params)
