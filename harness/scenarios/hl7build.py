"""HL7 v2 requests the MLLP steps send: ITI-8 ADT feeds, ITI-9 QBP^Q23, ITI-21 QBP^Q22 and QCN^J01.

Built with :class:`hl7wire.Message` (the one builder) as ER7 text and encoded only at the end (the charset
is the step's; ISO-2022-JP bytes are never assembled by hand). Data values are escaped; the step's
``set``/``append``/``drop`` edits are raw ER7 applied last, which is how scenarios make malformed or unusual
variants. Names follow JAHIS: PID-5 kanji with representation ``I`` and kana with ``P``; an ASCII message
carries the romaji name (``A``) instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hl7wire import ASCII, ISO2022_JP, MSH18, UTF8, Field, Message, Raw, Repeated, escape

if TYPE_CHECKING:
    from simulator.workload import PlanPatient

__all__ = [
    "CHARSETS",
    "Header",
    "Person",
    "apply_edits",
    "cancel_message",
    "feed_message",
    "pdq_message",
    "pix_message",
    "plan_person",
]

CHARSETS: Final[Mapping[str, tuple[str, str]]] = {
    "utf-8": (UTF8, MSH18[UTF8]),
    "iso-2022-jp": (ISO2022_JP, MSH18[ISO2022_JP]),
    "ascii": (ASCII, MSH18[ASCII]),
}
"""Step charset → (Python codec, MSH-18), as docs/hub-protocols.md §0 says Japanese senders declare them."""

_STRUCTURES: Final = {
    "A01": "ADT_A01",
    "A04": "ADT_A01",
    "A05": "ADT_A05",
    "A08": "ADT_A01",
    "A40": "ADT_A39",
}
_PATIENT_CLASS: Final = {"A01": "I", "A04": "O", "A05": "P", "A08": "N"}


@dataclass(frozen=True)
class Header:
    """What every MSH of a scenario's request carries."""

    sender: str  # MSH-4: the sending facility's code
    control_id: str  # MSH-10
    timestamp: str  # MSH-7, e.g. 20261031090000+0900
    version: str = "2.5"
    charset: str = "utf-8"
    receiving_application: str = "RHIN_HUB"
    receiving_facility: str = "RHIN"
    sending_application: str = "RHIN_TESTBED"


@dataclass(frozen=True)
class Person:
    """The demographics a feed sends (from the world, or overridden by the step)."""

    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    family_romaji: str
    given_romaji: str
    sex: str
    birth_date: str  # YYYYMMDD
    postcode: str
    address: str
    phone: str


def plan_person(p: PlanPatient, phone: str | None = None) -> Person:
    """A workload plan's patient as a feed's person (load users and calibration feed the world's people);
    ``phone`` overrides the plan's (an update's new number)."""
    return Person(
        family_name=p.family_name,
        given_name=p.given_name,
        family_kana=p.family_kana,
        given_kana=p.given_kana,
        family_romaji=p.family_romaji,
        given_romaji=p.given_romaji,
        sex=p.sex,
        birth_date=p.birth_date.replace("-", ""),
        postcode=p.postcode.replace("-", ""),
        address=p.address,
        phone=p.phone if phone is None else phone,
    )


def _message(h: Header, message_type: Sequence[str]) -> Message:
    """A message holding the MSH every request carries (MSH-18 as the step's charset declares it)."""
    msg = Message()
    msg.add(
        "MSH",
        {
            3: h.sending_application,
            4: h.sender,
            5: h.receiving_application,
            6: h.receiving_facility,
            7: h.timestamp,
            9: message_type,
            10: h.control_id,
            11: "P",
            12: h.version,
            18: Raw(CHARSETS[h.charset][1]),
        },
    )
    return msg


def _names(p: Person, charset: str) -> Field:
    if charset == "ascii":
        return [p.family_romaji.upper(), p.given_romaji.upper(), "", "", "", "", "L", "A"]
    kanji = [p.family_name, p.given_name, "", "", "", "", "L", "I"]
    kana = [p.family_kana, p.given_kana, "", "", "", "", "L", "P"]
    return Repeated(kanji, kana)


def feed_message(h: Header, event: str, pid3: str, person: Person, *, merge_from: str | None = None) -> str:
    """ADT^<event> (A01, A04, A05, A08, A40 …): MSH, EVN, PID, [MRG], [PV1]; ``pid3`` and ``merge_from`` are
    raw CX values."""
    msg = _message(h, ["ADT", event, _STRUCTURES.get(event, f"ADT_{event}")])
    msg.add("EVN", [event, h.timestamp])
    address = "" if h.charset == "ascii" else person.address
    xad = [address, "", "", "", person.postcode, "JPN", "H"] if address or person.postcode else None
    pid: dict[int, Field] = {1: "1", 3: Raw(pid3), 5: _names(person, h.charset), 7: person.birth_date}
    msg.add("PID", {**pid, 8: person.sex, 11: xad, 13: person.phone})
    if merge_from is not None:
        msg.add("MRG", [Raw(merge_from)])
    if event in _PATIENT_CLASS:
        msg.add("PV1", ["1", _PATIENT_CLASS[event]])
    return msg.to_er7()


def pix_message(h: Header, tag: str, qpd3: str, domains: Sequence[str]) -> str:
    """QBP^Q23^QBP_Q21: QPD-1 ``IHE PIX Query``, QPD-3 the person identifier, QPD-4 what domains returned."""
    msg = _message(h, ["QBP", "Q23", "QBP_Q21"])
    msg.add("QPD", ["IHE PIX Query", tag, Raw(qpd3), Raw("~".join(domains))])
    msg.add("RCP", ["I"])
    return msg.to_er7()


def pdq_message(
    h: Header,
    tag: str,
    fields: Mapping[str, str],
    domains: Sequence[str],
    *,
    quantity: int | None = None,
    pointer: str | None = None,
) -> str:
    """QBP^Q22^QBP_Q21: QPD-3 ``@PID.x^value`` repetitions, QPD-8 domains, RCP-2 ``n^RD``, [DSC pointer]."""
    msg = _message(h, ["QBP", "Q22", "QBP_Q21"])
    # Each QIP keeps its value component even when empty (``@PID.5.1^``): what a sender asks is kept as asked.
    qip = "~".join(
        f"{name if name.startswith('@') else '@' + name}^{escape(value)}" for name, value in fields.items()
    )
    msg.add("QPD", {1: "IHE PDQ Query", 2: tag, 3: Raw(qip), 8: Raw("~".join(domains))})
    msg.add("RCP", ["I", [str(quantity), "RD"] if quantity else None])
    if pointer:
        msg.add("DSC", [pointer, "I"])
    return msg.to_er7()


def cancel_message(h: Header, tag: str) -> str:
    """QCN^J01^QCN_J01 cancelling the continuation of query ``tag``."""
    msg = _message(h, ["QCN", "J01", "QCN_J01"])
    msg.add("QID", [tag, "IHE PDQ Query"])
    return msg.to_er7()


def apply_edits(
    text: str, set_fields: Mapping[str, str], append: Sequence[str] = (), drop: Sequence[str] = ()
) -> str:
    """Raw edits: ``{"MSH-12": "2.9"}`` replaces that field of the first such segment (added if short)."""
    lines = [line for line in text.split("\r") if line]
    for key, value in set_fields.items():
        name, number = key.split("-")
        n = int(number)
        for i, line in enumerate(lines):
            if line[:3] != name:
                continue
            fields = line.split("|")
            index = n - 1 if name == "MSH" else n  # MSH-1 is the separator itself
            while len(fields) <= index:
                fields.append("")
            fields[index] = value
            lines[i] = "|".join(fields)
            break
        else:
            lines.append(f"{name}|" + "|" * (n - 1) + value)
    lines = [line for line in lines if line[:3] not in set(drop)]
    lines.extend(a.rstrip("\r") for a in append)
    return "".join(line + "\r" for line in lines)
