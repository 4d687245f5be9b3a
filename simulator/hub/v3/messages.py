"""Reading the HL7 v3 requests PIXv3 and PDQv3 share: the transmission wrapper, the sender, patient persons
(:mod:`.writer` writes the replies).

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

from dataclasses import dataclass
from typing import Final

from lxml import etree

from ..index import Domain, DomainDirectory, IndexDemographics, IndexName
from .xmlsafe import attr, child, q, text

__all__ = ["WrapperHeader", "demographics_of", "name_of", "read_header", "sender_facility"]


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


_SENDER: Final = (q("sender"), q("device"), q("id"))
_RECEIVER: Final = (q("receiver"), q("device"), q("id"))
_ID: Final = q("id")
_CONTROL: Final = q("controlActProcess")


def read_header(root: etree._Element) -> WrapperHeader:
    """The request's wrapper fields (``root`` is the interaction element)."""
    sender = child(root, *_SENDER)
    receiver = child(root, *_RECEIVER)
    msg_id = child(root, _ID)
    return WrapperHeader(
        str(root.tag).rpartition("}")[2],
        attr(msg_id, "root"),
        attr(msg_id, "extension"),
        attr(sender, "root"),
        attr(sender, "extension"),
        attr(receiver, "root"),
        child(root, _CONTROL),
    )


def sender_facility(directory: DomainDirectory, header: WrapperHeader) -> Domain | None:
    """The member facility (its domain) the sender device names, or None (module docstring)."""
    if header.sender_extension:
        return directory.facility(header.sender_extension)
    domain = directory.resolve("", header.sender_root) if header.sender_root else None
    return domain if domain is not None and domain.facility else None


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
