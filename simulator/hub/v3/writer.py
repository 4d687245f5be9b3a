"""HL7 v3 replies written as XML text: the transmission wrapper with its acknowledgement, and the query
responses' controlActProcess (ITI-45 ``PRPA_IN201310UV02``, ITI-47 ``PRPA_IN201306UV02``).

**Why text, not a tree.** Building each reply as an lxml tree (one Python call per element, ~60 of them for
an ITI-45 answer, a deep copy of a template, then serialising) was the largest share of the hub's CPU per
ITI-45. Here the fixed parts are constant strings and every value taken from a request or the index goes
through :func:`esc` (text) or :func:`attr_esc` (attribute values), which escape exactly as libxml2 serialises
(text: ``& < >`` and CR; attributes: also ``"`` TAB LF) and, as lxml does, refuse a character XML 1.0 cannot
carry (:class:`ValueError`: the endpoint answers a Receiver fault rather than send malformed XML). What the
request itself contributes to a reply (the ``queryId`` in ``queryAck``, the echoed ``queryByParameter``) is
copied and serialised by lxml (:func:`echo`), so its namespaces and odd markup come out as they always did.
The output is byte-for-byte what the tree version wrote (its goldens, tests/test_v3_golden.py).
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from lxml import etree

from ..identity import Hit
from ..index import DomainDirectory, IndexDemographics
from .xmlsafe import HL7, child, q

__all__ = [
    "ACK_CODE_SYSTEM",
    "HUB_DEVICE_OID",
    "Answer",
    "Detail",
    "attr_esc",
    "echo",
    "esc",
    "payload",
]

ACK_CODE_SYSTEM: Final = "2.16.840.1.113883.12.357"
"""HL7 table 0357 (message error condition codes)."""
INTERACTION_OID: Final = "2.16.840.1.113883.1.6"
HUB_DEVICE_OID: Final = "1.2.392.200250.9.2"
"""The hub's application (device) OID: synthetic, next to the regional domain's arc (index.REGIONAL_OID)."""
_MESSAGE_ROOT: Final = "1.2.392.200250.9.3"
_NAMES_0357: Final = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "204": "Unknown key identifier",
    "207": "Application internal error",
}
QUERY_CODES: Final = {"PRPA_IN201310UV02": "PRPA_TE201310UV02", "PRPA_IN201306UV02": "PRPA_TE201306UV02"}
"""Query response interaction → its controlActProcess trigger event code."""
_counter = itertools.count(1)
_RUN: Final = f"{os.getpid()}.{int(datetime.now().timestamp())}"

# --------------------------------------------------------------------------------------------- escaping

_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_SPECIAL: Final = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_SPECIAL: Final = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_TEXT_MAP: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_MAP: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _escaped(value: str, table: dict[int, str]) -> str:
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise ValueError(f"character {bad.group()!r} cannot be written in XML 1.0")
    return value.translate(table)


def esc(value: str) -> str:
    """``value`` as element text (libxml2's escaping; ValueError for a character XML cannot carry)."""
    return value if _TEXT_SPECIAL.search(value) is None else _escaped(value, _TEXT_MAP)


def attr_esc(value: str) -> str:
    """``value`` as a double-quoted attribute value (as libxml2 writes it)."""
    return value if _ATTR_SPECIAL.search(value) is None else _escaped(value, _ATTR_MAP)


_HOLDER: Final = q("echo")
_HOLDER_OPEN: Final = f'<echo xmlns="{HL7}">'


def echo(element: etree._Element) -> str:
    """A copy of ``element`` (with its tail) as it serialises inside a reply whose root declares only the
    HL7 namespace as default: copied under such a holder and the holder's own tags cut off."""
    holder = etree.Element(_HOLDER, nsmap=_DEFAULT_NS)
    holder.append(copy.deepcopy(element))
    written = etree.tostring(holder, encoding="unicode")
    if not (written.startswith(_HOLDER_OPEN) and written.endswith("</echo>")):  # pragma: no cover - lxml
        raise ValueError(f"unexpected serialisation of the holder: {written[:80]!r}")
    return written[len(_HOLDER_OPEN) : -len("</echo>")]


_DEFAULT_NS: Final[Any] = {None: HL7}  # the stubs type nsmap keys as str

# --------------------------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class Detail:
    """One ``acknowledgementDetail``: a table 0357 code, the text, and where in the request."""

    code: str
    text: str
    location: str = ""


@dataclass
class Answer:
    """What a transaction decided: the acknowledgement, the query's status and what to return."""

    ack: str = "AA"
    details: tuple[Detail, ...] = ()
    status: str = ""  # queryResponseCode
    ids: list[tuple[str, str]] | None = None  # ITI-45: the IDs returned
    hits: Sequence[Hit] = ()  # ITI-47: this page
    counts: tuple[int, int, int] | None = None  # total, current, remaining


def _id(root: str, extension: str) -> str:
    """``<id>`` with ``root`` (``nullFlavor="UNK"`` without one) and ``extension`` if any."""
    head = f'<id root="{attr_esc(root)}"' if root else '<id nullFlavor="UNK"'
    return f'{head} extension="{attr_esc(extension)}"/>' if extension else head + "/>"


_DEVICE: Final = '<device classCode="DEV" determinerCode="INSTANCE">'


def _wrapper(interaction: str, sender: tuple[str, str], target: tuple[str, str], now: datetime,
             answer: Answer) -> list[str]:  # fmt: skip
    """A response's transmission wrapper and acknowledgement, open for a controlActProcess.

    ``sender`` is the request's sender device id (root, extension): the reply's receiver; ``target`` the
    request's own id, ``acknowledgement/targetMessage/id``.
    """
    parts = [
        f'<{interaction} xmlns="{HL7}" ITSVersion="XML_1.0">'
        f'<id root="{_MESSAGE_ROOT}" extension="{_RUN}.{next(_counter)}"/>'
        f'<creationTime value="{attr_esc(now.strftime("%Y%m%d%H%M%S%z"))}"/>'
        f'<interactionId root="{INTERACTION_OID}" extension="{interaction}"/>'
        '<processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>'
        f'<receiver typeCode="RCV">{_DEVICE}{_id(*sender)}</device></receiver>'
        f'<sender typeCode="SND">{_DEVICE}<id root="{HUB_DEVICE_OID}"/></device></sender>'
        f'<acknowledgement><typeCode code="{attr_esc(answer.ack)}"/>'
        f"<targetMessage>{_id(*target)}</targetMessage>"
    ]
    for detail in answer.details:
        name = attr_esc(_NAMES_0357.get(detail.code, ""))
        location = f"<location>{esc(detail.location)}</location>" if detail.location else ""
        parts.append(
            f'<acknowledgementDetail typeCode="E"><code code="{attr_esc(detail.code)}"'
            f' codeSystem="{ACK_CODE_SYSTEM}" displayName="{name}"/><text>{esc(detail.text)}</text>'
            f"{location}</acknowledgementDetail>"
        )
    parts.append("</acknowledgement>")
    return parts


def _patient_ids(ids: Iterable[tuple[str, str]], directory: DomainDirectory) -> str:
    """One ``id`` per (namespace, local ID), ``root`` the domain's OID."""
    written = []
    for namespace, local_id in ids:
        domain = directory.get(namespace)
        root = domain.oid if domain is not None else namespace
        written.append(f'<id root="{attr_esc(root)}" extension="{attr_esc(local_id)}"/>')
    return "".join(written)


_USES: Final = {"I": ' use="IDE"', "P": ' use="SYL"'}


def _person(demographics: IndexDemographics | None) -> str:
    """``patientPerson`` for ``demographics`` (None: PIX's empty person, ``<name nullFlavor="NA"/>``)."""
    head = '<patientPerson classCode="PSN" determinerCode="INSTANCE">'
    if demographics is None:
        return head + '<name nullFlavor="NA"/></patientPerson>'
    parts = [head]
    for name in demographics.names:
        family = f"<family>{esc(name.family)}</family>" if name.family else ""
        given = f"<given>{esc(name.given)}</given>" if name.given else ""
        use = _USES.get(name.representation, "")
        parts.append(f"<name{use}>{family}{given}</name>" if family or given else f"<name{use}/>")
    parts += [f'<telecom value="tel:{attr_esc(phone)}"/>' for phone in demographics.phones]
    if demographics.sex:
        parts.append(f'<administrativeGenderCode code="{attr_esc(demographics.sex)}"/>')
    if demographics.birth_date:
        parts.append(f'<birthTime value="{attr_esc(demographics.birth_date)}"/>')
    if demographics.address or demographics.postcode:
        parts.append("<addr>")
        if demographics.postcode:
            parts.append(f"<postalCode>{esc(demographics.postcode)}</postalCode>")
        if demographics.address:
            parts.append(f"<streetAddressLine>{esc(demographics.address)}</streetAddressLine>")
        parts.append("</addr>")
    parts.append("</patientPerson>")
    return "".join(parts)


_EVENT: Final = (
    '<subject typeCode="SUBJ" contextConductionInd="false"><registrationEvent classCode="REG" moodCode="EVN">'
    '<id nullFlavor="NA"/><statusCode code="active"/><subject1 typeCode="SBJ"><patient classCode="PAT">'
)
_STATUS: Final = '<statusCode code="active"/>'
_MATCH: Final = (
    '<subjectOf1><queryMatchObservation classCode="COND" moodCode="EVN"><code code="IHE_PDQ"/>'
    '<value xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" value="100" xsi:type="INT"/>'
    "</queryMatchObservation></subjectOf1>"
)
_EVENT_END: Final = (
    '</patient></subject1><custodian typeCode="CST"><assignedEntity classCode="ASSIGNED">'
    f'<id root="{HUB_DEVICE_OID}"/></assignedEntity></custodian></registrationEvent></subject>'
)
_QUANTITIES: Final = ("resultTotalQuantity", "resultCurrentQuantity", "resultRemainingQuantity")


def payload(response: str, sender: tuple[str, str], target: tuple[str, str], now: datetime, answer: Answer,
            query: etree._Element | None, directory: DomainDirectory) -> str:  # fmt: skip
    """The reply ``response`` (interaction) as XML text: the wrapper, then for a query response its
    controlActProcess (:func:`_query_response`)."""
    parts = _wrapper(response, sender, target, now, answer)
    code = QUERY_CODES.get(response)
    if code is not None:
        _query_response(parts, code, answer, query, directory)
    parts.append(f"</{response}>")
    return "".join(parts)


def _query_response(parts: list[str], code: str, answer: Answer, query: etree._Element | None,
                    directory: DomainDirectory) -> None:  # fmt: skip
    """controlActProcess: one subject per answer (ITI-45's IDs, or each ITI-47 hit), ``queryAck`` with the
    request's queryId, and the request's ``queryByParameter`` echoed (``query``: the request's
    queryByParameter or queryContinuation)."""
    parts.append(f'<controlActProcess classCode="CACT" moodCode="EVN"><code code="{code}" codeSystem="')
    parts.append(f'{INTERACTION_OID}"/>')
    if answer.ids:
        parts += (_EVENT, _patient_ids(answer.ids, directory), _STATUS, _person(None), _EVENT_END)
    for hit in answer.hits:
        parts += (_EVENT, _patient_ids(hit.ids, directory), _STATUS, _person(hit.record.demographics))
        parts += (_MATCH, _EVENT_END)
    query_id = child(query, q("queryId")) if query is not None else None
    parts.append("<queryAck>" + (echo(query_id) if query_id is not None else ""))
    status = attr_esc(answer.status or "AE")
    parts.append(f'<statusCode code="deliveredResponse"/><queryResponseCode code="{status}"/>')
    if answer.counts is not None:
        parts += (f'<{name} value="{n}"/>' for name, n in zip(_QUANTITIES, answer.counts, strict=True))
    parts.append("</queryAck>")
    if query is not None and etree.QName(query).localname == "queryByParameter":
        parts.append(echo(query))
    parts.append("</controlActProcess>")
