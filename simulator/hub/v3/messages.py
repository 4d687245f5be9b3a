"""HL7 v3 message parts PIXv3 and PDQv3 share: the transmission wrapper, acknowledgements, patient persons.

Choices where the sources leave room:

* **Who sends**: ``sender/device/id``. ``@extension`` names the facility (its code or its namespace, as MSH-4
  does in v2) under any ``@root``; without an extension, ``@root`` must be the facility's own
  assigning-authority OID. Over TLS the facility must be the client certificate's (:mod:`.app`).
* **Errors** use HL7 table 0357 in ``acknowledgementDetail/code`` (codeSystem ``2.16.840.1.113883.12.357``,
  as IPF's v2→v3 translator does), ``typeCode="E"``, the text, and ``location`` an XPath-like path into the
  request (the v3 twin of ERR-2).
* **Japanese names** (JAHIS): kanji in ``<name use="IDE">``, kana in ``<name use="SYL">``; a name without
  ``use`` is kana if all of it is kana, else kanji, as PID-5 without XPN.8 is in v2. The index's
  :class:`~simulator.hub.index.IndexName` keeps ``I``/``P`` (v2's XPN.8), so one stored record answers both.
* **Addresses**: the index keeps one address string and the postcode; ``addr`` is read as
  state + city + streetAddressLine(s) (v2's PID-11 order) and written back as one ``streetAddressLine``.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from lxml import etree

from ..index import Domain, DomainDirectory, IndexDemographics, IndexName
from .xmlsafe import HL7, attr, q, text

__all__ = [
    "ACK_CODE_SYSTEM",
    "HUB_DEVICE_OID",
    "Detail",
    "WrapperHeader",
    "add",
    "demographics_of",
    "patient_person",
    "read_header",
    "sender_facility",
    "wrapper",
]

ACK_CODE_SYSTEM: Final = "2.16.840.1.113883.12.357"
"""HL7 table 0357 (message error condition codes)."""
INTERACTION_OID: Final = "2.16.840.1.113883.1.6"
HUB_DEVICE_OID: Final = "1.2.392.200250.9.2"
"""The hub's application (device) OID: synthetic, next to the regional domain's arc (index.REGIONAL_OID)."""
_NSMAP: Final[Any] = {None: HL7}  # the default namespace (the stubs type nsmap keys as str)
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
_counter = itertools.count(1)
_RUN: Final = f"{os.getpid()}.{int(datetime.now().timestamp())}"


@dataclass(frozen=True)
class WrapperHeader:
    """The request's transmission wrapper: its id, interaction and sender/receiver devices."""

    interaction: str
    id_root: str
    id_extension: str
    sender_root: str
    sender_extension: str
    receiver_root: str
    control: etree._Element | None

    @property
    def control_id(self) -> str:
        """The message id as the audit keeps it (``extension`` or ``root``)."""
        return self.id_extension or self.id_root

    @property
    def sender(self) -> str:
        return self.sender_extension or self.sender_root


@dataclass(frozen=True)
class Detail:
    """One ``acknowledgementDetail``: a table 0357 code, the text, and where in the request."""

    code: str
    text: str
    location: str = ""


def read_header(root: etree._Element) -> WrapperHeader:
    sender = root.find(f"{q('sender')}/{q('device')}/{q('id')}")
    receiver = root.find(f"{q('receiver')}/{q('device')}/{q('id')}")
    msg_id = root.find(q("id"))
    return WrapperHeader(
        etree.QName(root).localname,
        attr(msg_id, "root"),
        attr(msg_id, "extension"),
        attr(sender, "root"),
        attr(sender, "extension"),
        attr(receiver, "root"),
        root.find(q("controlActProcess")),
    )


def sender_facility(directory: DomainDirectory, header: WrapperHeader) -> Domain | None:
    """The member facility (its domain) the sender device names, or None (module docstring)."""
    if header.sender_extension:
        return directory.facility(header.sender_extension)
    domain = directory.resolve("", header.sender_root) if header.sender_root else None
    return domain if domain is not None and domain.facility else None


def add(parent: etree._Element, name: str, value: str | None = None, /, **attrs: str) -> etree._Element:
    """A child element in the HL7 namespace with ``attrs`` (``class_`` → ``classCode`` style left to the
    caller) and optional text."""
    element = etree.SubElement(parent, q(name), attrs)
    if value is not None:
        element.text = value
    return element


@functools.lru_cache(maxsize=16)
def _template(interaction: str) -> etree._Element:
    """The parts of a response wrapper that never change for ``interaction`` (copied, then filled in)."""
    root = etree.Element(q(interaction), {"ITSVersion": "XML_1.0"}, nsmap=_NSMAP)
    add(root, "id", root=_MESSAGE_ROOT)
    add(root, "creationTime")
    add(root, "interactionId", root=INTERACTION_OID, extension=interaction)
    add(root, "processingCode", code="P")
    add(root, "processingModeCode", code="T")
    add(root, "acceptAckCode", code="NE")
    receiver = add(
        add(root, "receiver", typeCode="RCV"), "device", classCode="DEV", determinerCode="INSTANCE"
    )
    add(receiver, "id")
    sender = add(add(root, "sender", typeCode="SND"), "device", classCode="DEV", determinerCode="INSTANCE")
    add(sender, "id", root=HUB_DEVICE_OID)
    acknowledgement = add(root, "acknowledgement")
    add(acknowledgement, "typeCode")
    add(add(acknowledgement, "targetMessage"), "id")
    return root


def _set_id(element: etree._Element, root: str, extension: str) -> None:
    if root:
        element.set("root", root)
    else:
        element.set("nullFlavor", "UNK")
    if extension:
        element.set("extension", extension)


def wrapper(
    interaction: str,
    request: WrapperHeader,
    now: datetime,
    ack: str,
    details: Sequence[Detail] = (),
) -> etree._Element:
    """A response's transmission wrapper and acknowledgement (to ``request``), ready for a controlActProcess.

    ``ack`` is ``acknowledgement/typeCode`` (AA, AE, AR); ``targetMessage/id`` is the request's id.
    """
    root = copy.deepcopy(_template(interaction))
    own, created, _, _, _, _, receiver, _, acknowledgement = root
    own.set("extension", f"{_RUN}.{next(_counter)}")
    created.set("value", now.strftime("%Y%m%d%H%M%S%z"))
    _set_id(receiver[0][0], request.sender_root, request.sender_extension)
    acknowledgement[0].set("code", ack)
    _set_id(acknowledgement[1][0], request.id_root, request.id_extension)
    for detail in details:
        element = add(acknowledgement, "acknowledgementDetail", typeCode="E")
        add(
            element,
            "code",
            code=detail.code,
            codeSystem=ACK_CODE_SYSTEM,
            displayName=_NAMES_0357.get(detail.code, ""),
        )
        add(element, "text", detail.text)
        if detail.location:
            add(element, "location", detail.location)
    return root


# ------------------------------------------------------------------------------------------- persons


def _is_kana(value: str) -> bool:
    return bool(value) and all(
        "\u3040" <= c <= "\u30ff" or "\uff66" <= c <= "\uff9f" or c in " \u3000" for c in value
    )


def name_of(element: etree._Element) -> IndexName | None:
    """A PN element as the index's name: ``use`` IDE → I (kanji), SYL → P (kana), else guessed."""
    family = " ".join(text(f) for f in element.findall(q("family")))
    given = " ".join(text(g) for g in element.findall(q("given")))
    if not family and not given:
        return None
    uses = set(attr(element, "use").split())
    representation = "I" if "IDE" in uses else "P" if "SYL" in uses else ""
    return IndexName(family, given, representation or ("P" if _is_kana(family + given) else "I"))


def demographics_of(person: etree._Element) -> IndexDemographics:
    """``patientPerson`` as the index's demographics (names, birth date, sex, address, postcode, phones)."""
    names = [n for n in (name_of(e) for e in person.findall(q("name"))) if n is not None]
    addr = person.find(q("addr"))
    address, postcode = "", ""
    if addr is not None:
        parts = [text(addr.find(q("state"))), text(addr.find(q("city")))]
        parts += [text(s) for s in addr.findall(q("streetAddressLine"))]
        address = "".join(parts)
        postcode = text(addr.find(q("postalCode")))
    phones = []
    for telecom in person.findall(q("telecom")):
        value = attr(telecom, "value")
        if value:
            phones.append(value.removeprefix("tel:"))
    return IndexDemographics(
        names=tuple(names),
        birth_date=attr(person.find(q("birthTime")), "value")[:8],
        sex=attr(person.find(q("administrativeGenderCode")), "code"),
        address=address,
        postcode=postcode,
        phones=tuple(phones),
    )


def patient_ids(parent: etree._Element, ids: Iterable[tuple[str, str]], directory: DomainDirectory) -> None:
    """One ``id`` per (namespace, local ID), ``root`` the domain's OID."""
    for namespace, local_id in ids:
        domain = directory.get(namespace)
        add(parent, "id", root=domain.oid if domain is not None else namespace, extension=local_id)


def patient_person(parent: etree._Element, demographics: IndexDemographics | None) -> etree._Element:
    """``patientPerson`` for ``demographics`` (None: PIX's empty person, ``<name nullFlavor="NA"/>``)."""
    person = add(parent, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    if demographics is None:
        add(person, "name", nullFlavor="NA")
        return person
    for name in demographics.names:
        use = {"I": "IDE", "P": "SYL"}.get(name.representation)
        element = add(person, "name", use=use) if use else add(person, "name")
        if name.family:
            add(element, "family", name.family)
        if name.given:
            add(element, "given", name.given)
    for phone in demographics.phones:
        add(person, "telecom", value=f"tel:{phone}")
    if demographics.sex:
        add(person, "administrativeGenderCode", code=demographics.sex)
    if demographics.birth_date:
        add(person, "birthTime", value=demographics.birth_date)
    if demographics.address or demographics.postcode:
        addr = add(person, "addr")
        if demographics.postcode:
            add(addr, "postalCode", demographics.postcode)
        if demographics.address:
            add(addr, "streetAddressLine", demographics.address)
    return person
