"""PIX Manager and PDQ Supplier over MLLP: IHE ITI-8 (feed), ITI-9 (PIX query) and ITI-21 (PDQ), HL7 v2.

Decoding, basic checks and the reply's charset are the wire layer's (:class:`~.mllp.HL7Handler`); identity
decisions are the index's (:mod:`.index`). This module only maps segments to index calls and the index's
answers to the expected ACK/RSP of docs/hub-protocols.md §1.2. Errors are AE with ERR-3 204 wherever a key
(identifier or domain) is unknown, as rhin asserts strictly.

Choices where the sources leave room:

* Only facilities of the network may send: MSH-4 (HD.1) must be a facility code or its namespace, else AR with
  ERR 103 "Table value not found" at ``MSH^1^4`` (the sender is a coded value missing from our directory).
* **Authenticated sender** (MLLP over TLS, :data:`~.mllp.PEER`): MSH-4 must name the facility of the
  connection's client certificate, else AR with ERR 103 "Table value not found" at ``MSH^1^4`` as well — the
  set of senders a connection may claim is one entry long, and the claim is not in it (table 0357 has no
  authentication code; 103 keeps one answer for "not a sender you may be"). Checked before anything else,
  so everything below (a feed only into the sender's own domain, ITI8-019) rests on the certificate. On plain
  MLLP (``rhin hub --plain-mllp``, for hubs under test) MSH-4 is trusted as sent: nothing authenticates it.
* **Bounded repetitions**: a field the hub iterates (PID-3, PID-5, PID-13, MRG-1, QPD-3, QPD-4, QPD-8) with
  more than :data:`MAX_REPETITIONS` repetitions is AE with ERR 102 "Data type error" at that field: its
  cardinality is beyond what the hub accepts (a patient has one ID per domain and a feed carries only the
  sender's own; 10,000 repetitions were a denial of service). Nothing of such a message is acted on.
* ITI-8: a PID-3 repetition without CX.4 is given the sender's own domain (ITI8-019, one source per domain);
  CX.4 present but empty (``^^^&&``) cannot be resolved, and CX.4 naming another facility's domain or an
  unknown one is refused (AE, 204 at ``PID^1^3^n^4``, MSA-3 says why). A08 of an unknown ID creates it. An A40
  whose MRG-1 is not an active record is AE with 204 at ``MRG^1^1^1^1``.
* ITI-9: the queried ID itself is never returned; nothing else to return → AA/NF.
* ITI-21: one PID per person: records linked to one regional patient are folded together (their IDs all in
  PID-3, demographics from the first in (domain, ID) order). Continuation state is kept in memory per handler
  (the last ``max_continuations`` queries); a hub restart forgets it, and an unknown pointer is AE, 204.
  A PDQ's search runs in a worker thread (it may match thousands of records: ~65 ms for 2,000, ~0.9 s for
  10,000 on the reference machine), so other connections' messages are not held up behind it; feeds and PIX
  queries, single-key lookups, stay on the loop. What a broad PDQ still does on the loop is its audit (one
  record per person returned: ~160 ms for 10,000) and encoding its reply; and every reply waits for its own
  audit commit, which queues behind such a batch (measured: PIX p50 3.9 ms, max 0.62 s during five
  back-to-back 10,000-hit PDQs, against 54 PIX answered in 3.5 s, max 0.72 s, with the search on the loop).

Audit (with ``audit=``): every message that reaches the handler is recorded, and its reply is sent only once
the record is committed (:class:`~.audit.AuditBatcher` commits concurrent messages together).
``actor_facility`` is the sender's facility code (MSH-4 as sent when it is not a member), ``actor_user``
MSH-3, ``outcome`` MSA-1, ``reason`` MSA-3 (the refusal's text), ``details`` the message type, control ID
and, for queries, the query tag and QAK-2 status (OK/NF/AE).

* ITI-8: action ``feed``, target ``<domain>|<local ID>`` (PID-3), patient the record's regional ID if linked.
* ITI-9: action ``query``, target the queried ``<domain>|<ID>``, patient the regional ID of that patient.
* ITI-21: a query may disclose several people, and a patient's access report must list it under each of them,
  so a PDQ answer writes one ``query`` record per person returned (patient = their regional ID, or "" when
  unlinked; target = their first ``<domain>|<local ID>``; details ``"role": "hit"``) and then one summary
  (patient "", target "", details ``"role": "summary"``, hit counts and the QPD-3 criteria as sent), all in
  one transaction and sharing the control ID and query tag. A continuation page is audited the same way
  (details ``pointer``); QCN^J01 is ``cancel``.
* A sender that is not a member, or not the certificate's facility: action ``rejected-sender``, outcome AR;
  on TLS ``actor_facility`` is the certificate's facility and details carry ``claimed`` (MSH-4) and
  ``certificate``. Other refusals keep their action
  (``feed``, ``query``; unsupported message types ``unsupported``) with outcome AE/AR.

Messages refused by the wire layer before reaching the handler (undecodable, failed basic checks) are not
audited: they carry nothing the hub acted on.
"""

from __future__ import annotations

import asyncio
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Final

from hl7wire import (
    ControlIds,
    Delimiters,
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
    escape,
)
from synthetic.clock import jst_now

from .auditbatch import AuditBatcher
from .identity import Hit, Note, audit_note, feed_domain_refusal, fold_hits, pix_ids
from .index import (
    REGIONAL_NAMESPACE,
    Domain,
    IdentityError,
    IndexDemographics,
    IndexName,
    PatientIndex,
    SearchCriteria,
    UnknownPatientError,
)
from .mllp import PEER, Clock, HL7Handler

__all__ = [
    "MAX_REPETITIONS",
    "VERSIONS",
    "PixPdqHandler",
]

MAX_REPETITIONS: Final = 32
"""At most this many repetitions of a field the hub iterates (see the module docstring)."""
_BOUNDED: Final = {"PID": (3, 5, 13), "MRG": (1,), "QPD": (3, 4, 8)}

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
class _Pending:
    tag: str
    hits: tuple[Hit, ...]
    total: int
    sender: str  # the asking facility's domain (namespace): only it may continue or cancel the query


def _owned(pending: _Pending, tag: str, sender: str) -> bool:
    """Is ``pending`` the continuation of ``sender``'s query ``tag``? Pointers are sequential (guessable) and
    tags often predictable, so a continuation or a cancel is only ever the asking facility's."""
    return pending.tag == tag and pending.sender == sender


def _is_kana(text: str) -> bool:
    return bool(text) and all(
        "\u3040" <= c <= "\u30ff" or "\uff66" <= c <= "\uff9f" or c in " \u3000" for c in text
    )


def _demographics(pid: Segment) -> IndexDemographics:
    """PID-5 (kanji ``I`` and kana ``P`` repetitions), 7, 8, 11 (first address) and 13 (phones)."""
    names = []
    for rep in range(len(pid.repetitions(5))):
        family, given = pid.get(5, rep, comp=1, sub=1), pid.get(5, rep, comp=2)
        if not family and not given:
            continue
        representation = pid.get(5, rep, comp=8) or ("P" if _is_kana(family + given) else "I")
        names.append(IndexName(family, given, representation))
    address = "".join(pid.get(11, comp=c) for c in (4, 3, 1, 2))
    phones = []
    for rep in range(len(pid.repetitions(13))):
        phone = pid.get(13, rep, comp=1) or pid.get(13, rep, comp=12)
        if phone:
            phones.append(phone)
    return IndexDemographics(
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


@lru_cache(maxsize=4096)
def _cx_suffix(namespace: str, oid: str, d: Delimiters) -> str:
    """``^^^NS&OID&ISO^PI`` in ``d``: the part of a returned CX that depends only on its domain."""
    c, s = d.component, d.subcomponent
    return f"{c}{c}{c}{escape(namespace, d)}{s}{escape(oid, d)}{s}ISO{c}PI"


class PixPdqHandler(HL7Handler):
    """The hub's MLLP application: ITI-8 into the index, ITI-9 and ITI-21 out of it.

    Every ACK to a feed is built after the index call returned, i.e. after its transaction committed; with
    ``audit``, every reply also waits for its audit record's commit (see the module docstring).
    """

    def __init__(
        self,
        index: PatientIndex,
        *,
        clock: Clock = jst_now,
        control_ids: ControlIds | None = None,
        max_continuations: int = 1000,
        audit: AuditBatcher | None = None,
    ) -> None:
        super().__init__(clock=clock, control_ids=control_ids, versions=VERSIONS)
        self.index = index
        self.audit = audit
        self.max_continuations = max_continuations
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pending_lock = threading.Lock()  # PDQs run in worker threads; cancels on the loop
        self._pointers = ControlIds()

    async def handle(self, message: Message) -> Message | None:
        msh = message.segment("MSH")
        assert msh is not None  # the wire layer's basic checks
        kind, event = msh.get(9, comp=1), msh.get(9, comp=2)
        sender = msh.get(4, comp=1)
        facility = self.index.directory.facility(sender)
        note = Note(self.clock())
        peer = PEER.get()
        certified = peer.facility if peer is not None and peer.tls else None
        try:
            if peer is not None and peer.tls and (facility is None or facility.facility != certified):
                note.action = "rejected-sender"
                note.details |= {"claimed": sender, "certificate": certified or ""}
                facility = None
                raise _refuse(
                    ErrorCode.TABLE_VALUE_NOT_FOUND,
                    ErrorLocation("MSH", field=4),
                    f"sending facility {sender!r} is not the facility of the client certificate"
                    f" ({certified or 'none'})",
                    "AR",
                )
            if facility is None:
                note.action = "rejected-sender"
                raise _refuse(
                    ErrorCode.TABLE_VALUE_NOT_FOUND,
                    ErrorLocation("MSH", field=4),
                    f"sending facility {sender!r} is not a member of the network",
                    "AR",
                )
            self._check_repetitions(message, note)
            if kind == "ADT":
                note.action = "feed"
                reply = self._feed(message, event, facility, note)
            elif kind == "QBP" and event == "Q23":
                note.action = "query"
                reply = self._pix(message, note)
            elif kind == "QBP" and event == "Q22":
                note.action = "query"
                # A PDQ may match thousands of records (~30 µs each): off the loop, so it stalls no one.
                reply = await asyncio.to_thread(self._pdq, message, note, facility.namespace)
            elif kind == "QCN" and event == "J01":
                note.action = "cancel"
                reply = self._cancel(message, note, facility.namespace)
            elif kind in ("QBP", "QCN"):
                raise _refuse(
                    ErrorCode.UNSUPPORTED_EVENT_CODE,
                    ErrorLocation("MSH", field=9, component=2),
                    f"{kind}^{event} is not supported",
                    "AR",
                )
            else:
                raise _refuse(
                    ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
                    ErrorLocation("MSH", field=9, component=1),
                    f"message type {kind!r} is not supported",
                    "AR",
                )
        except _Refused as refusal:
            note.refused(refusal.code, refusal.error.diagnostic)
            reply = self.ack(
                message, refusal.code, errors=[refusal.error], text=refusal.error.diagnostic, now=note.now
            )
        if self.audit is not None:
            actor = facility.facility if facility is not None and facility.facility else certified or sender
            await self._audit(self.audit, msh, note, actor or "", f"{kind}^{event}")
        return reply

    def _check_repetitions(self, message: Message, note: Note) -> None:
        """AE + ERR 102 at the first field with more than MAX_REPETITIONS repetitions (module docstring)."""
        for segment in message:
            for number in _BOUNDED.get(segment.name, ()):
                raw = segment.field(number)
                count = raw.count(segment.delimiters.repetition) + 1 if raw else 0
                if count > MAX_REPETITIONS:
                    note.details["repetitions"] = count
                    raise _refuse(
                        ErrorCode.DATA_TYPE_ERROR,
                        ErrorLocation(segment.name, field=number),
                        f"{segment.name}-{number} has {count} repetitions;"
                        f" at most {MAX_REPETITIONS} are accepted",
                    )

    async def _audit(self, audit: AuditBatcher, msh: Segment, note: Note, actor: str, kind: str) -> None:
        """The message's audit record(s), committed before the reply goes out."""
        await audit_note(audit, note, actor, msh.get(3, comp=1), kind, msh.get(10))

    # --------------------------------------------------------------------------------------- ITI-8

    def _feed_domain(self, seg: Segment, field: int, rep: int, own: Domain) -> Domain:
        """The domain in CX.4 of ``seg``-field[rep]: the sender's own if absent; refused if another."""
        where = ErrorLocation(seg.name, field=field, repetition=rep + 1, component=4)
        if not seg.get(field, rep, comp=4):
            return own
        ns, oid = seg.get(field, rep, comp=4, sub=1), seg.get(field, rep, comp=4, sub=2)
        why = feed_domain_refusal(self.index.directory, ns, oid, own)
        if why:
            raise _refuse(_UNKNOWN, where, why)
        return own

    def _feed(self, message: Message, event: str, own: Domain, note: Note) -> Message:
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
        local_id = pid.get(3, comp=1)
        named = pid.get(3, comp=4, sub=1) or pid.get(3, comp=4, sub=2)
        note.target = f"{named or own.namespace}|{local_id}"  # as sent, until it is known to be ours
        for rep in range(len(pid.repetitions(3))):
            self._feed_domain(pid, 3, rep, own)  # every repetition must be in the sender's own domain
        note.target = f"{own.namespace}|{local_id}"
        demographics = _demographics(pid)
        try:
            if event == "A40":
                mrg = message.segment("MRG")
                if mrg is None or not mrg.get(1, comp=1):
                    raise _refuse(
                        ErrorCode.REQUIRED_FIELD_MISSING, ErrorLocation("MRG", field=1), "MRG-1 is missing"
                    )
                note.details["merged"] = mrg.get(1, comp=1)
                self._feed_domain(mrg, 1, 0, own)
                self.index.merge(own.namespace, local_id, mrg.get(1, comp=1), demographics)
            elif event == "A08":
                self.index.update(own.namespace, local_id, demographics)
            else:
                self.index.register(own.namespace, local_id, demographics)
        except IdentityError as exc:
            where = ErrorLocation("MRG", field=1, component=1) if event == "A40" else None
            raise _refuse(_UNKNOWN, where, str(exc)) from exc
        if self.audit is not None:
            note.patient = self.index.regional_id(own.namespace, local_id) or ""
        return self.ack(message, "AA", now=note.now)

    # --------------------------------------------------------------------------------------- ITI-9

    def _rsp(
        self,
        message: Message,
        event: str,
        code: str,
        status: str,
        note: Note,
        *,
        errors: Sequence[ErrorDetail] = (),
        counts: Sequence[int] = (),
    ) -> Message:
        """MSH, MSA, [ERR], QAK (tag, status, query name, hit counts) and the request's QPD echoed."""
        structure = "RSP_K23" if event == "K23" else "RSP_K21"
        text = errors[0].diagnostic if errors else ""
        note.code, note.status, note.reason = code, status, text
        reply = self.ack(
            message,
            code,
            message_type="RSP",
            event=event,
            structure=structure,
            errors=errors,
            text=text,
            now=note.now,
        )
        qpd = message.segment("QPD")
        if qpd is None:
            reply.add("QAK", ["", status, "", *(str(c) for c in counts)])
        else:
            if self.audit is not None:
                note.details["tag"] = qpd.get(2)
            fields = ["QAK", qpd.field(2), status, qpd.field(1), *(str(c) for c in counts)]
            while not fields[-1]:
                fields.pop()
            reply.append(Segment(fields, reply.delimiters))
            reply.append(qpd)
        return reply

    def _pix(self, message: Message, note: Note) -> Message:
        try:
            qpd = message.segment("QPD")
            local_id = "" if qpd is None else qpd.get(3, comp=1)
            if qpd is None or not local_id:
                loc = ErrorLocation("QPD", field=3, component=1)
                raise _refuse(ErrorCode.REQUIRED_FIELD_MISSING, loc, "QPD-3 patient identifier is missing")
            ns, oid = qpd.get(3, comp=4, sub=1), qpd.get(3, comp=4, sub=2)
            source = self.index.directory.resolve(ns, oid)
            if source is None:
                note.target = f"{ns or oid}|{local_id}"
                loc = ErrorLocation("QPD", field=3, component=4)
                raise _refuse(_UNKNOWN, loc, "unknown assigning authority in QPD-3")
            note.target = f"{source.namespace}|{local_id}"
            wanted = self._domains(qpd, 4)
            try:
                found = self.index.identifiers(source.namespace, local_id)
            except UnknownPatientError:
                loc = ErrorLocation("QPD", field=3, component=1)
                raise _refuse(_UNKNOWN, loc, f"unknown patient {local_id} in {source.namespace}") from None
        except _Refused as refusal:
            return self._rsp(message, "K23", refusal.code, "AE", note, errors=[refusal.error])
        if found[0][0] == REGIONAL_NAMESPACE:
            note.patient = found[0][1]
        query = (source.namespace, local_id)
        ids = pix_ids(found, query, wanted)
        if not ids:
            return self._rsp(message, "K23", "AA", "NF", note)
        reply = self._rsp(message, "K23", "AA", "OK", note)
        d = reply.delimiters
        empty_name = d.repetition + d.component * 6 + "S"  # PID-5 ``~^^^^^^S``: the K23's empty name
        reply.append(Segment(["PID", "", "", self._cx_text(ids, d), "", empty_name], d))
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

    def _cx_text(self, ids: Iterable[tuple[str, str]], d: Delimiters) -> str:
        """PID-3 as ER7: one ``ID^^^NS&OID&ISO^PI`` repetition per identifier."""
        directory = self.index.directory
        parts = []
        for ns, local_id in ids:
            domain = directory.get(ns)
            parts.append(escape(local_id, d) + _cx_suffix(ns, domain.oid if domain is not None else "", d))
        return d.repetition.join(parts)

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

    def _pdq(self, message: Message, note: Note, sender: str) -> Message:
        """ITI-21. A continuation is the asking facility's own: a pointer (sequential, so guessable) and a
        query tag presented by another facility is an unknown pointer, and stays pending for its owner."""
        qpd = message.segment("QPD")
        pointer = message.get("DSC", 1)
        if qpd is not None:
            note.details["query"] = qpd.field(3)
        if pointer:
            note.details["pointer"] = pointer
        try:
            if qpd is None:
                raise _refuse(ErrorCode.SEGMENT_SEQUENCE_ERROR, ErrorLocation("QPD"), "QPD is missing")
            if pointer:
                with self._pending_lock:
                    pending = self._pending.get(pointer)
                    if pending is not None and _owned(pending, qpd.get(2), sender):
                        del self._pending[pointer]
                    else:
                        pending = None
                if pending is None:
                    loc = ErrorLocation("DSC", field=1)
                    raise _refuse(_UNKNOWN, loc, f"unknown or expired continuation pointer {pointer!r}")
                hits, total = list(pending.hits), pending.total
            else:
                criteria = self._criteria(qpd)
                wanted = self._domains(qpd, 8)
                hits = fold_hits(self.index, criteria, wanted)
                total = len(hits)
        except _Refused as refusal:
            return self._rsp(message, "K22", refusal.code, "AE", note, errors=[refusal.error])
        note.hits = []
        if not hits:
            note.details["hits"] = 0
            return self._rsp(message, "K22", "AA", "NF", note, counts=(0, 0, 0))
        limit = self._quantity(message)
        page, rest = (hits[:limit], hits[limit:]) if limit else (hits, [])
        note.details |= {"hits": total, "returned": len(page)}
        note.hits = [(h.record.regional_id or "", f"{h.record.domain}|{h.record.local_id}") for h in page]
        reply = self._rsp(message, "K22", "AA", "OK", note, counts=(total, len(page), len(rest)))
        fit = _fitter(message)
        for n, hit in enumerate(page, 1):
            reply.add("PID", self._pid(n, hit, fit, reply.delimiters))
        if rest:
            assert qpd is not None
            next_pointer = self._pointers.next()
            with self._pending_lock:
                self._pending[next_pointer] = _Pending(qpd.get(2), tuple(rest), total, sender)
                while len(self._pending) > self.max_continuations:
                    self._pending.popitem(last=False)
            reply.add("DSC", [next_pointer, "I"])
        return reply

    @staticmethod
    def _quantity(message: Message) -> int | None:
        """RCP-2 ``n^RD``: at most n records per reply; absent or unusable means no limit."""
        raw = message.get("RCP", 2, comp=1)
        return int(raw) if raw.isdigit() and int(raw) > 0 else None

    def _pid(self, set_id: int, hit: Hit, fit: Callable[[str], str], d: Delimiters) -> dict[int, Field]:
        demo = hit.record.demographics
        names = [[fit(n.family), fit(n.given), "", "", "", "", "L", n.representation] for n in demo.names]
        return {
            1: str(set_id),
            3: Raw(self._cx_text(hit.ids, d)),
            5: Repeated(*names) if names else None,
            7: demo.birth_date,
            8: demo.sex,
            11: [fit(demo.address), "", "", "", demo.postcode] if demo.address or demo.postcode else None,
            13: Repeated(*demo.phones) if demo.phones else None,
        }

    def _cancel(self, message: Message, note: Note, sender: str) -> Message:
        """QCN^J01: forget the sender's continuations of QID-1's query tag (another facility's query with
        the same tag is not its to cancel); AA even if none was pending."""
        tag = message.get("QID", 1)
        note.details["tag"] = tag
        with self._pending_lock:
            for pointer in [p for p, q in self._pending.items() if _owned(q, tag, sender)]:
                del self._pending[pointer]
        return self.ack(message, "AA", now=note.now)
