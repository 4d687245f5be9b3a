"""PIXv3 and PDQv3 on the hub's index: ITI-44 (feed), ITI-45 (PIX query) and ITI-47 (PDQ, continuation,
cancel), mapping HL7 v3 elements to the same index calls and decisions as ITI-8/9/21 (:mod:`..pixpdq`).

Every decision about identity is the index's or a function shared with the v2 handler (:mod:`..identity`:
``feed_domain_refusal``, ``pix_ids``, ``fold_hits``), and every message is audited by its ``audit_note``
exactly as its v2 twin (same actions, outcomes, targets and per-person PDQ records; ``details.type`` is
the v3 interaction, ``control`` the message id, ``tag`` the queryId extension). The acknowledgement maps
v2's answer the IPF way (acknowledgementDetail with the table 0357 code; ITI-45/47
``queryAck/queryResponseCode`` OK/NF/AE as QAK-2):

* sender not a member, or not the certificate's facility: AR, 103 at ``sender/device/id`` (audited
  ``rejected-sender``);
* ITI-44: an identifier's root unknown, empty or another facility's domain: AE 204 at that ``patient/id``
  (v3's II needs a root, so there is no v3 twin of ITI8-019's "absent CX.4 means the sender's domain": a
  missing root is refused); a revise of an unknown ID creates it (as A08); a merge whose prior ID is not an
  active record: AE 204 at ``priorRegisteredRole/id``; interactions other than 201301/201302/201304: the
  endpoint's ``wsa:ActionNotSupported`` fault;
* ITI-45: no patientIdentifier: AE 101; unknown root: AE 204 at ``patientIdentifier/value``; unknown patient:
  AE 204 (same location, MESA 10502); an unknown ``dataSource``: AE 204 at each such ``dataSource`` (all of
  them); known but nothing in the wanted domains: AA + NF, no ``subject``;
* ITI-47: parameters livingSubjectName (the first one; family/given, ``*`` suffix a prefix, kanji or kana —
  the index normalises as for ITI-21), livingSubjectBirthTime, livingSubjectAdministrativeGender,
  patientAddress (postalCode only), livingSubjectId, otherIDsScopingOrganization; any other parameter, or an
  address part other than postalCode: AE 103 at it; no criterion: AE 101; unknown domain in livingSubjectId
  or otherIDsScopingOrganization: AE 204; no match: AA + NF. ``initialQuantity`` pages the answer; the rest is
  kept (per asking facility and queryId, the last ``max_continuations`` queries, in memory) for
  ``QUQI_IN000003UV01_Continue`` (``continuationQuantity`` the next page's size, default the initial one);
  another facility's queryId, or one not pending, is AE 204 at ``queryContinuation/queryId``;
  ``QUQI_IN000003UV01_Cancel`` forgets it and is acknowledged AA (MCCI_IN000002UV01) even if none was
  pending, as QCN^J01.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from lxml import etree

from ..auditbatch import AuditBatcher
from ..identity import Hit, Note, audit_note, feed_domain_refusal, fold_hits, pix_ids
from ..index import (
    REGIONAL_NAMESPACE,
    Domain,
    IdentityError,
    IndexDemographics,
    PatientIndex,
    SearchCriteria,
    UnknownPatientError,
)
from ..pixpdq import MAX_REPETITIONS
from . import writer
from .messages import WrapperHeader, demographics_of, read_header, sender_facility
from .soap import SoapRequest
from .writer import QUERY_CODES, Answer, Detail
from .xmlsafe import attr, child, q, text

__all__ = ["FEED_ACTIONS", "PDQ_ACTIONS", "PIX_ACTIONS", "RESPONSES", "V3Hub"]

V3: Final = "urn:hl7-org:v3:"
RESPONSES: Final = {
    "PRPA_IN201301UV02": "MCCI_IN000002UV01",
    "PRPA_IN201302UV02": "MCCI_IN000002UV01",
    "PRPA_IN201304UV02": "MCCI_IN000002UV01",
    "PRPA_IN201309UV02": "PRPA_IN201310UV02",
    "PRPA_IN201305UV02": "PRPA_IN201306UV02",
    "QUQI_IN000003UV01_Continue": "PRPA_IN201306UV02",
    "QUQI_IN000003UV01_Cancel": "MCCI_IN000002UV01",
}
"""Request interaction (the ``wsa:Action`` without ``urn:hl7-org:v3:``) → response interaction."""
FEED_ACTIONS: Final = frozenset(
    V3 + k for k in ("PRPA_IN201301UV02", "PRPA_IN201302UV02", "PRPA_IN201304UV02")
)
PIX_ACTIONS: Final = frozenset({V3 + "PRPA_IN201309UV02"})
PDQ_ACTIONS: Final = frozenset(
    V3 + k for k in ("PRPA_IN201305UV02", "QUQI_IN000003UV01_Continue", "QUQI_IN000003UV01_Cancel")
)
_CAP = "/controlActProcess"
_QBP = _CAP + "/queryByParameter"
_PARAMS = _QBP + "/parameterList"
_PATIENT = _CAP + "/subject/registrationEvent/subject1/patient"
_PRIOR_ID: Final = tuple(
    q(n)
    for n in (
        "subject",
        "registrationEvent",
        "replacementOf",
        "priorRegistration",
        "subject1",
        "priorRegisteredRole",
        "id",
    )
)
_PDQ_PARAMETERS: Final = frozenset(
    {
        "livingSubjectName",
        "livingSubjectBirthTime",
        "livingSubjectAdministrativeGender",
        "patientAddress",
        "livingSubjectId",
        "otherIDsScopingOrganization",
    }
)


class _Refused(Exception):  # noqa: N818 - a decided answer
    def __init__(self, ack: str, *details: Detail) -> None:
        super().__init__(details[0].text if details else ack)
        self.ack, self.details = ack, details


def _ae(code: str, location: str, why: str) -> _Refused:
    return _Refused("AE", Detail(code, why, location))


@dataclass(frozen=True)
class _Pending:
    hits: tuple[Hit, ...]
    total: int
    page: int
    query: etree._Element  # the queryByParameter, echoed on every page


class V3Hub:
    """The three v3 endpoints' logic over one index and audit; :mod:`.app` is its HTTP face."""

    def __init__(
        self,
        index: PatientIndex,
        *,
        audit: AuditBatcher | None,
        clock: Callable[[], datetime],
        max_continuations: int = 1000,
    ) -> None:
        self.index = index
        self.audit = audit
        self.clock = clock
        self.max_continuations = max_continuations
        self._pending: OrderedDict[tuple[str, str, str], _Pending] = OrderedDict()
        self._lock = threading.Lock()

    async def handle(self, soap: SoapRequest, tls: bool, certified: str | None) -> tuple[str, str]:
        """The response interaction and its payload (XML text) for ``soap`` (sender ``certified`` when
        ``tls``)."""
        kind = soap.action.removeprefix(V3)
        response = RESPONSES[kind]
        header = read_header(soap.body)
        directory = self.index.directory
        facility = sender_facility(directory, header)
        note = Note(self.clock())
        answer = Answer()
        query = self._query_element(header)
        try:
            if tls and (facility is None or facility.facility != certified):
                note.action = "rejected-sender"
                note.details |= {"claimed": header.sender, "certificate": certified or ""}
                facility = None
                raise _Refused(
                    "AR",
                    Detail(
                        "103",
                        f"sending device {header.sender!r} is not the facility of the client certificate"
                        f" ({certified or 'none'})",
                        "/sender/device/id",
                    ),
                )
            if facility is None:
                note.action = "rejected-sender"
                raise _Refused(
                    "AR",
                    Detail(
                        "103",
                        f"sending device {header.sender!r} is not a member of the network",
                        "/sender/device/id",
                    ),
                )
            if header.control is None:
                raise _Refused("AE", Detail("100", "controlActProcess is missing", _CAP))
            if kind in ("PRPA_IN201301UV02", "PRPA_IN201302UV02", "PRPA_IN201304UV02"):
                note.action = "feed"
                self._feed(kind, header.control, facility, note)
            elif kind == "PRPA_IN201309UV02":
                note.action = "query"
                answer = self._pix(header.control, note)
            elif kind == "PRPA_IN201305UV02":
                note.action = "query"
                answer = await asyncio.to_thread(self._pdq, header.control, note, facility)
            elif kind == "QUQI_IN000003UV01_Continue":
                note.action = "query"
                answer = self._continue(header.control, note, facility)
            else:
                note.action = "cancel"
                self._cancel(header.control, note, facility)
        except _Refused as refusal:
            answer = Answer(refusal.ack, refusal.details, "AE" if response in QUERY_CODES else "")
        note.code = answer.ack
        note.status = answer.status
        note.reason = answer.details[0].text if answer.details else ""
        if answer.status == "NF" and response == "PRPA_IN201306UV02":
            note.details["hits"] = 0
        if query is not None:
            note.details["tag"] = attr(child(query, q("queryId")), "extension")
        sender, target = (header.sender_root, header.sender_extension), (header.id_root, header.id_extension)
        payload = writer.payload(response, sender, target, note.now, answer, query, self.index.directory)
        if self.audit is not None:
            actor = facility.facility if facility is not None and facility.facility else certified
            await audit_note(self.audit, note, actor or header.sender, header.sender, kind, header.control_id)
        return response, payload

    @staticmethod
    def _query_element(header: WrapperHeader) -> etree._Element | None:
        if header.control is None:
            return None
        found = child(header.control, q("queryByParameter"))
        return found if found is not None else child(header.control, q("queryContinuation"))

    # --------------------------------------------------------------------------------------- ITI-44

    def _feed(self, kind: str, control: etree._Element, own: Domain, note: Note) -> None:
        patient = child(control, q("subject"), q("registrationEvent"), q("subject1"), q("patient"))
        ids = [] if patient is None else list(patient.iterchildren(q("id")))
        if not ids or not attr(ids[0], "extension"):
            raise _ae("101", _PATIENT + "/id", "patient/id is missing")
        if len(ids) > MAX_REPETITIONS:
            raise _ae("102", _PATIENT + "/id", f"at most {MAX_REPETITIONS} patient ids are accepted")
        assert patient is not None
        local_id = attr(ids[0], "extension")
        named = attr(ids[0], "root")
        domain = self.index.directory.resolve("", named) if named else None
        note.target = f"{(domain.namespace if domain else named) or own.namespace}|{local_id}"
        for n, element in enumerate(ids, 1):
            why = feed_domain_refusal(self.index.directory, "", attr(element, "root"), own)
            if why:
                raise _ae("204", f"{_PATIENT}/id[{n}]", why)
        note.target = f"{own.namespace}|{local_id}"
        person = child(patient, q("patientPerson"))
        demographics = demographics_of(person) if person is not None else IndexDemographics()
        if len(demographics.names) > MAX_REPETITIONS or len(demographics.phones) > MAX_REPETITIONS:
            raise _ae("102", _PATIENT + "/patientPerson", f"at most {MAX_REPETITIONS} names and telecoms")
        prior_path = (
            _CAP
            + "/subject/registrationEvent/replacementOf/priorRegistration/subject1/priorRegisteredRole/id"
        )
        try:
            if kind == "PRPA_IN201304UV02":
                prior = child(control, *_PRIOR_ID)
                merged = attr(prior, "extension")
                if not merged:
                    raise _ae("101", prior_path, "priorRegisteredRole/id is missing")
                note.details["merged"] = merged
                why = feed_domain_refusal(self.index.directory, "", attr(prior, "root"), own)
                if why:
                    raise _ae("204", prior_path, why)
                self.index.merge(own.namespace, local_id, merged, demographics)
            elif kind == "PRPA_IN201302UV02":
                self.index.update(own.namespace, local_id, demographics)
            else:
                self.index.register(own.namespace, local_id, demographics)
        except IdentityError as exc:
            where = prior_path if kind == "PRPA_IN201304UV02" else _PATIENT + "/id"
            raise _ae("204", where, str(exc)) from exc
        if self.audit is not None:
            note.patient = self.index.regional_id(own.namespace, local_id) or ""

    # --------------------------------------------------------------------------------------- ITI-45

    def _wanted(self, params: etree._Element, name: str) -> set[str]:
        """``dataSource`` or ``otherIDsScopingOrganization`` roots as namespaces; unknown ones refused
        together."""
        wanted: set[str] = set()
        bad = []
        elements = list(params.iterchildren(q(name)))
        if len(elements) > MAX_REPETITIONS:
            raise _ae("102", f"{_PARAMS}/{name}", f"at most {MAX_REPETITIONS} {name} are accepted")
        for n, element in enumerate(elements, 1):
            for value in element.iterchildren(q("value")):
                domain = self.index.directory.resolve("", attr(value, "root"))
                if domain is None:
                    bad.append(
                        Detail(
                            "204",
                            f"unknown domain {attr(value, 'root')!r} in {name}",
                            f"{_PARAMS}/{name}[{n}]/value",
                        )
                    )
                else:
                    wanted.add(domain.namespace)
        if bad:
            raise _Refused("AE", *bad)
        return wanted

    def _pix(self, control: etree._Element, note: Note) -> Answer:
        params = child(control, q("queryByParameter"), q("parameterList"))
        value = None if params is None else child(params, q("patientIdentifier"), q("value"))
        where = _PARAMS + "/patientIdentifier/value"
        local_id, root = attr(value, "extension"), attr(value, "root")
        if params is None or value is None or not local_id:
            raise _ae("101", where, "patientIdentifier is missing")
        source = self.index.directory.resolve("", root) if root else None
        if source is None:
            note.target = f"{root}|{local_id}"
            raise _ae("204", where, "unknown assigning authority in patientIdentifier")
        note.target = f"{source.namespace}|{local_id}"
        wanted = self._wanted(params, "dataSource")
        try:
            found = self.index.identifiers(source.namespace, local_id)
        except UnknownPatientError:
            raise _ae("204", where, f"unknown patient {local_id} in {source.namespace}") from None
        if found[0][0] == REGIONAL_NAMESPACE:
            note.patient = found[0][1]
        ids = pix_ids(found, (source.namespace, local_id), wanted)
        return Answer("AA", (), "OK" if ids else "NF", ids=ids or None)

    # --------------------------------------------------------------------------------------- ITI-47

    def _criteria(self, params: etree._Element) -> tuple[SearchCriteria, set[str]]:
        values: dict[str, str] = {}
        domain_ns = ""
        for element in params:
            if not isinstance(element.tag, str):
                continue
            name = etree.QName(element).localname
            if name not in _PDQ_PARAMETERS:
                raise _ae("103", f"{_PARAMS}/{name}", f"unsupported query parameter {name!r}")
        names = list(params.iterchildren(q("livingSubjectName")))
        if names:
            value = child(names[0], q("value"))
            if value is not None:
                values["family"] = " ".join(text(f) for f in value.iterchildren(q("family")))
                values["given"] = " ".join(text(g) for g in value.iterchildren(q("given")))
        birth = child(params, q("livingSubjectBirthTime"), q("value"))
        if birth is not None:
            values["birth_date"] = attr(birth, "value")
        sex = child(params, q("livingSubjectAdministrativeGender"), q("value"))
        if sex is not None:
            values["sex"] = attr(sex, "code")
        address = child(params, q("patientAddress"), q("value"))
        if address is not None:
            for part in address:
                if isinstance(part.tag, str) and etree.QName(part).localname != "postalCode":
                    local = etree.QName(part).localname
                    where = f"{_PARAMS}/patientAddress/value/{local}"
                    raise _ae(
                        "103", where, f"unsupported address part {local!r}: only postalCode is searched"
                    )
            values["postcode"] = text(child(address, q("postalCode")))
        identifier = child(params, q("livingSubjectId"), q("value"))
        if identifier is not None:
            values["identifier"] = attr(identifier, "extension")
            root = attr(identifier, "root")
            if root:
                domain = self.index.directory.resolve("", root)
                if domain is None:
                    where = _PARAMS + "/livingSubjectId/value"
                    raise _ae("204", where, f"unknown assigning authority {root!r}")
                domain_ns = domain.namespace
        criteria = SearchCriteria(**values)
        if domain_ns:
            criteria = replace(criteria, identifier_domain=domain_ns)
        if criteria.empty():
            raise _ae("101", _PARAMS, "the query has no search criteria")
        return criteria, self._wanted(params, "otherIDsScopingOrganization")

    def _pdq(self, control: etree._Element, note: Note, own: Domain) -> Answer:
        qbp = child(control, q("queryByParameter"))
        params = None if qbp is None else child(qbp, q("parameterList"))
        if qbp is None or params is None:
            raise _ae("101", _PARAMS, "queryByParameter/parameterList is missing")
        note.details["query"] = {
            etree.QName(e).localname: " ".join(str(t).strip() for t in e.itertext() if str(t).strip())[:200]
            for e in params
            if isinstance(e.tag, str)
        }
        criteria, wanted = self._criteria(params)
        hits = fold_hits(self.index, criteria, wanted)
        quantity = attr(child(qbp, q("initialQuantity")), "value")
        limit = int(quantity) if quantity.isdigit() and int(quantity) > 0 else 0
        return self._page(note, own, qbp, hits, len(hits), limit)

    def _page(
        self, note: Note, own: Domain, qbp: etree._Element, hits: Sequence[Hit], total: int, limit: int
    ) -> Answer:
        note.hits = []
        if not hits:
            return Answer("AA", (), "NF", counts=(0, 0, 0))
        page, rest = (hits[:limit], hits[limit:]) if limit else (hits, [])
        note.details |= {"hits": total, "returned": len(page)}
        note.hits = [(h.record.regional_id or "", f"{h.record.domain}|{h.record.local_id}") for h in page]
        key = self._key(own, child(qbp, q("queryId")))
        with self._lock:
            self._pending.pop(key, None)
            if rest:
                self._pending[key] = _Pending(tuple(rest), total, limit, qbp)
                while len(self._pending) > self.max_continuations:
                    self._pending.popitem(last=False)
        return Answer("AA", (), "OK", hits=page, counts=(total, len(page), len(rest)))

    @staticmethod
    def _key(own: Domain, query_id: etree._Element | None) -> tuple[str, str, str]:
        return own.namespace, attr(query_id, "root"), attr(query_id, "extension")

    def _continue(self, control: etree._Element, note: Note, own: Domain) -> Answer:
        continuation = child(control, q("queryContinuation"))
        where = _CAP + "/queryContinuation/queryId"
        query_id = None if continuation is None else child(continuation, q("queryId"))
        if query_id is None:
            raise _ae("101", where, "queryContinuation/queryId is missing")
        assert continuation is not None
        note.details["pointer"] = attr(query_id, "extension")
        with self._lock:
            pending = self._pending.pop(self._key(own, query_id), None)
        if pending is None:
            raise _ae("204", where, "unknown, finished or cancelled query")
        quantity = attr(child(continuation, q("continuationQuantity")), "value")
        limit = int(quantity) if quantity.isdigit() and int(quantity) > 0 else pending.page
        return self._page(note, own, pending.query, pending.hits, pending.total, limit)

    def _cancel(self, control: etree._Element, note: Note, own: Domain) -> None:
        continuation = child(control, q("queryContinuation"))
        query_id = None if continuation is None else child(continuation, q("queryId"))
        if query_id is None:
            raise _ae("101", _CAP + "/queryContinuation/queryId", "queryContinuation/queryId is missing")
        with self._lock:
            self._pending.pop(self._key(own, query_id), None)
