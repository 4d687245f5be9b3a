"""PIX Manager and PDQ Supplier over MLLP: IHE ITI-8 (feed), ITI-9 (PIX query) and ITI-21 (PDQ), HL7 v2.

Decoding, basic checks and the reply's charset are the wire layer's (:class:`~.mllp.HL7Handler`); identity
decisions are the index's (:mod:`.index`). This module only maps segments to index calls and the index's
answers to the expected ACK/RSP of hub-protocols.md §1.2. Errors are AE with ERR-3 204 wherever a key
(identifier or domain) is unknown, as rhin asserts strictly.

Choices where the sources leave room:

* Only facilities of the network may send: MSH-4 (HD.1) must be a facility code or its namespace, else AR with
  ERR 103 "Table value not found" at ``MSH^1^4`` (the sender is a coded value missing from our directory).
* ITI-8: a PID-3 repetition without CX.4 is given the sender's own domain (ITI8-019, one source per domain);
  CX.4 present but empty (``^^^&&``) cannot be resolved, and CX.4 naming another facility's domain or an
  unknown one is refused (AE, 204 at ``PID^1^3^n^4``, MSA-3 says why). A08 of an unknown ID creates it. An A40
  whose MRG-1 is not an active record is AE with 204 at ``MRG^1^1^1^1``.
* ITI-9: the queried ID itself is never returned; nothing else to return → AA/NF.
* ITI-21: one PID per person: records linked to one regional patient are folded together (their IDs all in
  PID-3, demographics from the first in (domain, ID) order). Continuation state is kept in memory per handler
  (the last ``max_continuations`` queries); a hub restart forgets it, and an unknown pointer is AE, 204.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from .hl7v2 import (
    ControlIds,
    ErrorCode,
    ErrorDetail,
    ErrorLocation,
    Field,
    HL7Error,
    Message,
    Raw,
    Repeated,
    Segment,
    codec_for,
    jst_now,
)
from .index import (
    Demographics,
    Domain,
    IdentityError,
    PatientIndex,
    PatientRecord,
    PersonName,
    SearchCriteria,
)
from .mllp import Clock, HL7Handler

__all__ = ["VERSIONS", "PixPdqHandler"]

VERSIONS: Final = ("2.3.1", "2.5", "2.5.1")
"""ITI-8 comes as 2.3.1 (IHE) or 2.5 (JAHIS); queries are 2.5. Replies carry the version of the request."""

_FEED_EVENTS: Final = frozenset({"A01", "A04", "A05", "A08", "A40"})
_UNKNOWN = ErrorCode.UNKNOWN_KEY_IDENTIFIER

# QPD-3 field names (QIP.1) → SearchCriteria attribute; "ns"/"oid" name the identifier's domain.
_PDQ_FIELDS: Final = {
    "@PID.5.1.1": "family",
    "@PID.5.1": "family",
    "@PID.5.2": "given",
    "@PID.7": "birth_date",
    "@PID.7.1": "birth_date",
    "@PID.8": "sex",
    "@PID.11.5": "postcode",
    "@PID.3.1": "identifier",
    "@PID.3.4": "ns",
    "@PID.3.4.1": "ns",
    "@PID.3.4.2": "oid",
}


class _Refused(Exception):  # noqa: N818 - a decided answer, not an error
    """An answer decided early: MSA-1 and the ERR to send."""

    def __init__(self, code: str, error: ErrorDetail) -> None:
        super().__init__(error.diagnostic)
        self.code = code
        self.error = error


def _refuse(code: ErrorCode, location: ErrorLocation | None, text: str, ack_code: str = "AE") -> _Refused:
    return _Refused(ack_code, ErrorDetail(code, location, diagnostic=text))


@dataclass(frozen=True)
class _Hit:
    record: PatientRecord
    ids: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Pending:
    tag: str
    hits: tuple[_Hit, ...]
    total: int


def _is_kana(text: str) -> bool:
    return bool(text) and all(
        "\u3040" <= c <= "\u30ff" or "\uff66" <= c <= "\uff9f" or c in " \u3000" for c in text
    )


def _demographics(pid: Segment) -> Demographics:
    """PID-5 (kanji ``I`` and kana ``P`` repetitions), 7, 8, 11 (first address) and 13 (phones)."""
    names = []
    for rep in range(len(pid.repetitions(5))):
        family, given = pid.get(5, rep, comp=1, sub=1), pid.get(5, rep, comp=2)
        if not family and not given:
            continue
        representation = pid.get(5, rep, comp=8) or ("P" if _is_kana(family + given) else "I")
        names.append(PersonName(family, given, representation))
    address = "".join(pid.get(11, comp=c) for c in (4, 3, 1, 2))
    phones = []
    for rep in range(len(pid.repetitions(13))):
        phone = pid.get(13, rep, comp=1) or pid.get(13, rep, comp=12)
        if phone:
            phones.append(phone)
    return Demographics(
        names=tuple(names),
        birth_date=pid.get(7, comp=1)[:8],
        sex=pid.get(8, comp=1),
        address=address,
        postcode=pid.get(11, comp=5),
        phones=tuple(phones),
    )


def _fitter(message: Message) -> Callable[[str], str]:
    """Text as the reply's charset can carry it: a half-width kana name fed in UTF-8 goes to an ISO-2022-JP
    viewer in full-width (NFKC). What NFKC cannot fix (e.g. 髙) still fails, as AE 207 from the wire layer."""
    try:
        codec = codec_for(message.charset_field, message.delimiters.repetition)
    except HL7Error:
        return lambda text: text

    def fit(text: str) -> str:
        try:
            text.encode(codec)
        except UnicodeEncodeError:
            return unicodedata.normalize("NFKC", text)
        return text

    return fit


class PixPdqHandler(HL7Handler):
    """The hub's MLLP application: ITI-8 into the index, ITI-9 and ITI-21 out of it.

    Every ACK to a feed is built after the index call returned, i.e. after its transaction committed.
    """

    def __init__(
        self,
        index: PatientIndex,
        *,
        clock: Clock = jst_now,
        control_ids: ControlIds | None = None,
        max_continuations: int = 1000,
    ) -> None:
        super().__init__(clock=clock, control_ids=control_ids, versions=VERSIONS)
        self.index = index
        self.max_continuations = max_continuations
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pointers = ControlIds()

    async def handle(self, message: Message) -> Message | None:
        kind, event, _ = message.message_type
        sender = message.get("MSH", 4, comp=1)
        facility = self.index.directory.facility(sender)
        try:
            if facility is None:
                raise _refuse(
                    ErrorCode.TABLE_VALUE_NOT_FOUND,
                    ErrorLocation("MSH", field=4),
                    f"sending facility {sender!r} is not a member of the network",
                    "AR",
                )
            if kind == "ADT":
                return self._feed(message, event, facility)
            if kind == "QBP" and event == "Q23":
                return self._pix(message)
            if kind == "QBP" and event == "Q22":
                return self._pdq(message)
            if kind == "QCN" and event == "J01":
                return self._cancel(message)
            if kind in ("QBP", "QCN"):
                raise _refuse(
                    ErrorCode.UNSUPPORTED_EVENT_CODE,
                    ErrorLocation("MSH", field=9, component=2),
                    f"{kind}^{event} is not supported",
                    "AR",
                )
            raise _refuse(
                ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
                ErrorLocation("MSH", field=9, component=1),
                f"message type {kind!r} is not supported",
                "AR",
            )
        except _Refused as refusal:
            return self.ack(message, refusal.code, errors=[refusal.error], text=refusal.error.diagnostic)

    # --------------------------------------------------------------------------------------- ITI-8

    def _feed_domain(self, seg: Segment, field: int, rep: int, own: Domain) -> Domain:
        """The domain in CX.4 of ``seg``-field[rep]: the sender's own if absent; refused if another."""
        where = ErrorLocation(seg.name, field=field, repetition=rep + 1, component=4)
        if not seg.get(field, rep, comp=4):
            return own
        ns, oid = seg.get(field, rep, comp=4, sub=1), seg.get(field, rep, comp=4, sub=2)
        if not ns and not oid:
            raise _refuse(_UNKNOWN, where, "the assigning authority could not be resolved (empty CX.4)")
        domain = self.index.directory.resolve(ns, oid)
        if domain is None:
            raise _refuse(_UNKNOWN, where, f"unknown assigning authority {ns or oid!r}")
        if domain != own:
            raise _refuse(_UNKNOWN, where, f"{own.facility} may not assign IDs in domain {domain.namespace}")
        return domain

    def _feed(self, message: Message, event: str, own: Domain) -> Message:
        if event not in _FEED_EVENTS:
            raise _refuse(
                ErrorCode.UNSUPPORTED_EVENT_CODE,
                ErrorLocation("MSH", field=9, component=2),
                f"ADT^{event} is not part of the patient identity feed",
                "AR",
            )
        pid = message.segment("PID")
        if pid is None or not pid.get(3, comp=1):
            raise _refuse(ErrorCode.REQUIRED_FIELD_MISSING, ErrorLocation("PID", field=3), "PID-3 is missing")
        for rep in range(len(pid.repetitions(3))):
            self._feed_domain(pid, 3, rep, own)  # every repetition must be in the sender's own domain
        local_id = pid.get(3, comp=1)
        demographics = _demographics(pid)
        try:
            if event == "A40":
                mrg = message.segment("MRG")
                if mrg is None or not mrg.get(1, comp=1):
                    raise _refuse(
                        ErrorCode.REQUIRED_FIELD_MISSING, ErrorLocation("MRG", field=1), "MRG-1 is missing"
                    )
                self._feed_domain(mrg, 1, 0, own)
                self.index.merge(own.namespace, local_id, mrg.get(1, comp=1), demographics)
            elif event == "A08":
                self.index.update(own.namespace, local_id, demographics)
            else:
                self.index.register(own.namespace, local_id, demographics)
        except IdentityError as exc:
            where = ErrorLocation("MRG", field=1, component=1) if event == "A40" else None
            raise _refuse(_UNKNOWN, where, str(exc)) from exc
        return self.ack(message, "AA")

    # --------------------------------------------------------------------------------------- ITI-9

    def _rsp(
        self,
        message: Message,
        event: str,
        code: str,
        status: str,
        *,
        errors: Sequence[ErrorDetail] = (),
        counts: Sequence[int] = (),
    ) -> Message:
        """MSH, MSA, [ERR], QAK (tag, status, query name, hit counts) and the request's QPD echoed."""
        structure = "RSP_K23" if event == "K23" else "RSP_K21"
        text = errors[0].diagnostic if errors else ""
        reply = self.ack(
            message, code, message_type="RSP", event=event, structure=structure, errors=errors, text=text
        )
        qpd = message.segment("QPD")
        tag = qpd.get(2) if qpd is not None else ""
        reply.add("QAK", [tag, status, Raw(qpd.field(1) if qpd else ""), *(str(c) for c in counts)])
        if qpd is not None:
            reply.append(qpd)
        return reply

    def _pix(self, message: Message) -> Message:
        try:
            qpd = message.segment("QPD")
            if qpd is None or not qpd.get(3, comp=1):
                loc = ErrorLocation("QPD", field=3, component=1)
                raise _refuse(ErrorCode.REQUIRED_FIELD_MISSING, loc, "QPD-3 patient identifier is missing")
            local_id = qpd.get(3, comp=1)
            source = self.index.directory.resolve(qpd.get(3, comp=4, sub=1), qpd.get(3, comp=4, sub=2))
            if source is None:
                loc = ErrorLocation("QPD", field=3, component=4)
                raise _refuse(_UNKNOWN, loc, "unknown assigning authority in QPD-3")
            wanted = self._domains(qpd, 4)
            if not self.index.known(source.namespace, local_id):
                loc = ErrorLocation("QPD", field=3, component=1)
                raise _refuse(_UNKNOWN, loc, f"unknown patient {local_id} in {source.namespace}")
        except _Refused as refusal:
            return self._rsp(message, "K23", refusal.code, "AE", errors=[refusal.error])
        ids = [
            i
            for i in self.index.identifiers(source.namespace, local_id)
            if i != (source.namespace, local_id) and (not wanted or i[0] in wanted)
        ]
        if not ids:
            return self._rsp(message, "K23", "AA", "NF")
        reply = self._rsp(message, "K23", "AA", "OK")
        reply.add("PID", {3: self._cx_list(ids), 5: Repeated("", ["", "", "", "", "", "", "S"])})
        return reply

    def _domains(self, qpd: Segment, field: int) -> set[str]:
        """QPD-4/QPD-8 "what domains returned": namespaces; unknown repetitions refused together."""
        wanted, bad = set(), []
        for rep in range(len(qpd.repetitions(field))):
            domain = self.index.directory.resolve(
                qpd.get(field, rep, comp=4, sub=1), qpd.get(field, rep, comp=4, sub=2)
            )
            if domain is None:
                bad.append(ErrorLocation("QPD", field=field, repetition=rep + 1))
            else:
                wanted.add(domain.namespace)
        if bad:
            raise _Refused(
                "AE", ErrorDetail(_UNKNOWN, tuple(bad), diagnostic=f"unknown domain requested in QPD-{field}")
            )
        return wanted

    def _cx_list(self, ids: Iterable[tuple[str, str]]) -> Repeated:
        directory = self.index.directory
        values = []
        for ns, local_id in ids:
            domain = directory.get(ns)
            oid = domain.oid if domain is not None else ""
            values.append([local_id, "", "", [ns, oid, "ISO"], "PI"])
        return Repeated(*values)

    # --------------------------------------------------------------------------------------- ITI-21

    def _criteria(self, qpd: Segment) -> SearchCriteria:
        values: dict[str, str] = {}
        ns_rep = 0
        for rep in range(len(qpd.repetitions(3))):
            name = qpd.get(3, rep, comp=1)
            key = _PDQ_FIELDS.get(name)
            if key is None:
                loc = ErrorLocation("QPD", field=3, repetition=rep + 1, component=1)
                raise _refuse(ErrorCode.TABLE_VALUE_NOT_FOUND, loc, f"unsupported query field {name!r}")
            values[key] = qpd.get(3, rep, comp=2)
            if key in ("ns", "oid"):
                ns_rep = rep + 1
        ns, oid = values.pop("ns", ""), values.pop("oid", "")
        criteria = SearchCriteria(**values)
        if ns or oid:
            domain = self.index.directory.resolve(ns, oid)
            if domain is None:
                loc = ErrorLocation("QPD", field=3, repetition=ns_rep, component=2)
                raise _refuse(_UNKNOWN, loc, f"unknown assigning authority {ns or oid!r}")
            criteria = replace(criteria, identifier_domain=domain.namespace)
        if criteria.empty():
            loc = ErrorLocation("QPD", field=3)
            raise _refuse(ErrorCode.REQUIRED_FIELD_MISSING, loc, "QPD-3 has no search criteria")
        return criteria

    def _hits(self, criteria: SearchCriteria, wanted: set[str]) -> list[_Hit]:
        hits, seen = [], set()
        for record in self.index.search(criteria):
            key = record.regional_id or f"{record.domain}|{record.local_id}"
            if key in seen:
                continue
            seen.add(key)
            ids = self.index.identifiers(record.domain, record.local_id)
            if wanted:
                ids = [i for i in ids if i[0] in wanted]
                if not ids:
                    continue
            hits.append(_Hit(record, tuple(ids)))
        return hits

    def _pdq(self, message: Message) -> Message:
        qpd = message.segment("QPD")
        pointer = message.get("DSC", 1)
        try:
            if qpd is None:
                raise _refuse(ErrorCode.SEGMENT_SEQUENCE_ERROR, ErrorLocation("QPD"), "QPD is missing")
            if pointer:
                pending = self._pending.pop(pointer, None)
                if pending is None or pending.tag != qpd.get(2):
                    loc = ErrorLocation("DSC", field=1)
                    raise _refuse(_UNKNOWN, loc, f"unknown or expired continuation pointer {pointer!r}")
                hits, total = list(pending.hits), pending.total
            else:
                criteria = self._criteria(qpd)
                wanted = self._domains(qpd, 8)
                hits = self._hits(criteria, wanted)
                total = len(hits)
        except _Refused as refusal:
            return self._rsp(message, "K22", refusal.code, "AE", errors=[refusal.error])
        if not hits:
            return self._rsp(message, "K22", "AA", "NF", counts=(0, 0, 0))
        limit = self._quantity(message)
        page, rest = (hits[:limit], hits[limit:]) if limit else (hits, [])
        reply = self._rsp(message, "K22", "AA", "OK", counts=(total, len(page), len(rest)))
        fit = _fitter(message)
        for n, hit in enumerate(page, 1):
            reply.add("PID", self._pid(n, hit, fit))
        if rest:
            assert qpd is not None
            next_pointer = self._pointers.next()
            self._pending[next_pointer] = _Pending(qpd.get(2), tuple(rest), total)
            while len(self._pending) > self.max_continuations:
                self._pending.popitem(last=False)
            reply.add("DSC", [next_pointer, "I"])
        return reply

    @staticmethod
    def _quantity(message: Message) -> int | None:
        """RCP-2 ``n^RD``: at most n records per reply; absent or unusable means no limit."""
        raw = message.get("RCP", 2, comp=1)
        return int(raw) if raw.isdigit() and int(raw) > 0 else None

    def _pid(self, set_id: int, hit: _Hit, fit: Callable[[str], str]) -> dict[int, Field]:
        demo = hit.record.demographics
        names = [[fit(n.family), fit(n.given), "", "", "", "", "L", n.representation] for n in demo.names]
        return {
            1: str(set_id),
            3: self._cx_list(hit.ids),
            5: Repeated(*names) if names else None,
            7: demo.birth_date,
            8: demo.sex,
            11: [fit(demo.address), "", "", "", demo.postcode] if demo.address or demo.postcode else None,
            13: Repeated(*demo.phones) if demo.phones else None,
        }

    def _cancel(self, message: Message) -> Message:
        """QCN^J01: forget the continuations of QID-1's query tag; AA even if none was pending."""
        tag = message.get("QID", 1)
        for pointer in [p for p, pending in self._pending.items() if pending.tag == tag]:
            del self._pending[pointer]
        return self.ack(message, "AA")
