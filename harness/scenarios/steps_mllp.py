"""The MLLP step kinds: ITI-8 feed, ITI-9 PIX query, ITI-21 PDQ query / continuation / cancel, raw bytes.

Connections are named per scenario (``connection:``, default ``main``; raw steps default to ``raw``) and kept
open between steps, as facilities do; a connection the hub closed is reopened on next use. A reply that does
not come is an observation (``reply: none``), not an error: a hub that stays silent fails its assertions
with evidence. Only an unreachable target is a step error.

MLLP over TLS (the target's ``mllp_tls``): a connection presents one facility's client certificate — the
step's ``cert:``, by default the ``from`` facility's (raw steps: MSH-4's facility if the world knows it,
else the scenario's first facility) — so connections are kept per (name, certificate). ``cert: none``
presents none, ``cert: plain`` speaks plain MLLP. A refused handshake is an observation too: the connection
is closed and no reply came, with the TLS error in the exchange's note.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import replace
from typing import Final

from hl7wire import (
    BlockingClient,
    ConnectionClosedError,
    FramingError,
    HandshakeError,
    HL7Error,
    decode,
    encode,
    frame,
    parse_header,
)
from simulator.pki import PkiError

from .actions import Feed, MllpRaw, PdqCancel, PdqQuery, PixQuery, _Hl7Edits
from .context import Context, PdqState
from .errors import StepError
from .hl7build import (
    CHARSETS,
    Header,
    Person,
    apply_edits,
    cancel_message,
    feed_message,
    pdq_message,
    pix_message,
)
from .results import Exchange
from .runners import runs
from .subjects import MllpObservation

__all__ = ["MllpConnection", "run_cancel", "run_feed", "run_pdq", "run_pix", "run_raw"]

_MAX_REPLY: Final = 16 * 1_048_576
Outcome = tuple[MllpObservation, list[Exchange]]


class MllpConnection:
    """A scenario's named MLLP connection over :class:`hl7wire.BlockingClient`, opened on first use (and
    again after the peer closed it). It sends bytes exactly as a step gives them and tells a close from a
    silence: a harness observes what a hub does, so a missing reply or a refused handshake is not an error
    here but an observation (a reply without its start byte is kept as the reply, for the same reason)."""

    def __init__(self, address: tuple[str, int], timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.tls = tls
        self.refusal = ""  # the TLS error of the last refused handshake, until read() reports it
        self._client: BlockingClient | None = None

    def _connect(self) -> BlockingClient | None:
        """The open client; None when the TLS handshake was refused (``refusal`` says how)."""
        if self._client is None:
            host, port = self.address
            try:
                self._client = BlockingClient(
                    host, port, timeout=self.timeout, max_message_bytes=_MAX_REPLY, tls=self.tls
                )
            except HandshakeError as exc:
                self.refusal = f"TLS handshake refused: {exc.__cause__}"
                return None
            except OSError as exc:
                raise StepError(f"cannot connect to MLLP {host}:{port}: {exc}") from exc
        return self._client

    def send(self, data: bytes, *, eof: bool = False) -> None:
        client = self._connect()
        if client is None:
            return  # refused: read() observes the close
        try:
            client.write_raw(data)
            if eof:
                client.shutdown_write()
        except (ConnectionClosedError, OSError) as exc:
            self.close()
            cause = exc.__cause__ if isinstance(exc, ConnectionClosedError) else exc
            if isinstance(cause, ssl.SSLError):  # TLS 1.3: a refused certificate shows after the handshake
                self.refusal = f"TLS refused: {cause}"
                return
            raise StepError(f"sending to MLLP {self.address[0]}:{self.address[1]} failed: {cause}") from exc

    def read(self, timeout: float) -> tuple[bytes | None, bool]:
        """(the next block's payload or None, whether the peer closed the connection)."""
        if self.refusal and self._client is None:
            return None, True
        client = self._connect()
        if client is None:
            return None, True
        try:
            return client.read(timeout), False
        except TimeoutError:
            return None, False
        except FramingError as exc:  # no start byte: still what the hub answered; oversize: no reply
            return exc.block, False
        except ConnectionClosedError as exc:  # a close, a reset, or the TLS alert of a refused certificate
            if isinstance(exc.__cause__, ssl.SSLError):
                self.refusal = f"TLS refused: {exc.__cause__}"
            self.close()
            return None, True

    def peer_closed(self) -> bool:
        """Has the peer closed (EOF waiting) — checked without blocking, after a reply was read."""
        if self._client is None:
            return True
        if self._client.peer_closed():
            self.close()
            return True
        return False

    def take_refusal(self) -> str:
        """The refused handshake's error, once (for the exchange's note)."""
        refusal, self.refusal = self.refusal, ""
        return refusal

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None


def _connection(ctx: Context, name: str, cert: str) -> MllpConnection:
    """The named connection presenting ``cert`` (a facility code, ``none`` or ``plain``; see the module)."""
    target = ctx.target
    if target.mllp is None:
        raise StepError(f"target {target.name} has no MLLP address")
    tls = target.mllp_tls
    key = name if tls is None else f"{name}|{cert}"
    conn = ctx.connections.get(key)
    if not isinstance(conn, MllpConnection):  # none yet (only this module opens connections)
        context = None
        if tls is not None and cert != "plain":
            try:
                context = tls.context(None if cert == "none" else cert)
            except PkiError as exc:
                raise StepError(f"no client certificate to present: {exc}") from exc
        conn = ctx.connections[key] = MllpConnection(target.mllp, target.mllp_timeout, context)
    return conn


def _cert(ctx: Context, choice: str | None, default: str) -> str:
    """``cert:`` as a facility code, ``none`` or ``plain`` (``default``: a facility code)."""
    if choice is None:
        return default
    if choice in ("none", "plain"):
        return choice
    return ctx.facility(choice).code


def _note(conn: MllpConnection, reply: bytes | None, closed: bool) -> str:
    if reply is not None:
        return ""
    refusal = conn.take_refusal()
    if refusal:
        return f"connection closed, no reply ({refusal})"
    return "connection closed, no reply" if closed else "no reply in time"


def _shown(text: str) -> str:
    """For people (and XML): segments on lines, other control characters as ``\\xNN``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    return "".join(c if c in "\n\t" or (c >= " " and c != "\x7f") else f"\\x{ord(c):02x}" for c in text)


def _observe_reply(payload: bytes | None, closed: bool, control_id: str, elapsed: float) -> MllpObservation:
    if payload is None:
        return MllpObservation(None, None, control_id, closed, elapsed)
    try:
        message, codec = decode(payload)
    except HL7Error:
        return MllpObservation(None, None, control_id, closed, elapsed, payload.decode("latin-1"))
    return MllpObservation(message, codec, control_id, closed, elapsed, message.to_er7())


def _exchange(ctx: Context, edits: _Hl7Edits, text: str, label: str, control_id: str, sender: str) -> Outcome:
    """Apply the step's raw edits, encode in its charset, send, read the reply."""
    text = apply_edits(
        text, {k: ctx.text(v) for k, v in edits.set.items()}, [ctx.text(a) for a in edits.append]
    )
    text = apply_edits(text, {}, drop=edits.drop)
    codec = CHARSETS[edits.charset][0]
    try:
        payload = encode(text, codec)
    except HL7Error as exc:
        raise StepError(f"the request cannot be sent as {edits.charset}: {exc}") from exc
    if "MSH-10" in edits.set:
        control_id = ctx.text(edits.set["MSH-10"])
    conn = _connection(ctx, edits.connection, _cert(ctx, edits.cert, sender))
    started = time.perf_counter()
    conn.send(frame(payload))
    reply, closed = conn.read(ctx.target.mllp_timeout)
    elapsed = (time.perf_counter() - started) * 1000
    if reply is not None:
        closed = conn.peer_closed()
    obs = _observe_reply(reply, closed, control_id, elapsed)
    note = _note(conn, reply, closed)
    shown = _shown(obs.text) if obs.text else None
    return obs, [Exchange("mllp", label, _shown(text), shown, elapsed, note=note)]


def _header(ctx: Context, sender: str, charset: str, version: str = "2.5") -> Header:
    t = ctx.target
    return Header(
        sender=sender,
        control_id=ctx.control_id(),
        timestamp=ctx.timestamp(),
        version=version,
        charset=charset,
        receiving_application=t.receiving_application,
        receiving_facility=t.receiving_facility,
    )


def _cx(local_id: str, authority: str, namespace: str, oid: str) -> str:
    return {
        "full": f"{local_id}^^^{namespace}&{oid}&ISO",
        "namespace": f"{local_id}^^^{namespace}",
        "oid": f"{local_id}^^^&{oid}&ISO",
        "none": local_id,
        "empty": f"{local_id}^^^&&",
    }[authority]


# ------------------------------------------------------------------------------------------- ITI-8


def _person(ctx: Context, a: Feed) -> Person:
    b = ctx.patient(a.demographics_of or a.patient)
    p = b.patient
    person = Person(
        family_name=p.family_name,
        given_name=p.given_name,
        family_kana=p.family_kana,
        given_kana=p.given_kana,
        family_romaji=p.family_romaji,
        given_romaji=p.given_romaji,
        sex=p.sex,
        birth_date=b.birth_date,
        postcode=p.postcode,
        address=p.address,
        phone=p.phone,
    )
    if a.demographics is not None:
        overrides = {k: ctx.text(v) for k, v in a.demographics.model_dump(exclude_none=True).items()}
        person = replace(person, **overrides)
    return person


@runs(Feed)
def run_feed(ctx: Context, a: Feed) -> Outcome:
    sender = ctx.facility(a.from_)
    domain = ctx.facility(a.domain or a.from_)
    binding = ctx.patient(a.patient)
    local = ctx.maybe(a.local_id) or binding.local_id(domain.code)
    pid3 = _cx(local, a.authority, domain.namespace, domain.oid)
    merge = None
    if a.merge_from is not None:
        merge = _cx(ctx.text(a.merge_from), a.authority, domain.namespace, domain.oid)
    header = _header(ctx, sender.code, a.charset, a.version)
    text = feed_message(header, a.event, pid3, _person(ctx, a), merge_from=merge)
    return _exchange(ctx, a, text, f"ITI-8 ADT^{a.event} from {sender.code}", header.control_id, sender.code)


# ------------------------------------------------------------------------------------------- ITI-9


@runs(PixQuery)
def run_pix(ctx: Context, a: PixQuery) -> Outcome:
    sender = ctx.facility(a.from_)
    qpd3 = ""
    if a.at == "regional":
        t = ctx.target
        rid = ctx.maybe(a.local_id) or ctx.regional_id(a.patient, None)
        qpd3 = _cx(rid, a.authority, t.regional_namespace, t.regional_oid)
    elif a.at is not None:
        at = ctx.facility(a.at)
        domain = ctx.facility(a.domain or a.at)
        if a.local_id is not None:
            local = ctx.text(a.local_id)
        elif a.patient is not None:
            local = ctx.patient(a.patient).local_id(at.code)
        else:
            raise StepError("a PIX query at a facility needs `patient` or `local_id`")
        qpd3 = _cx(local, a.authority, domain.namespace, domain.oid)
    tag = ctx.maybe(a.query_tag) or ctx.query_tag()
    header = _header(ctx, sender.code, a.charset)
    text = pix_message(header, tag, qpd3, [ctx.domain(d) for d in a.domains])
    return _exchange(ctx, a, text, f"ITI-9 QBP^Q23 from {sender.code}", header.control_id, sender.code)


# ------------------------------------------------------------------------------------------- ITI-21


@runs(PdqQuery)
def run_pdq(ctx: Context, a: PdqQuery) -> Outcome:
    sender = ctx.facility(a.from_)
    tag = ctx.maybe(a.query_tag) or (ctx.last_query_tag if a.continue_ else None) or ctx.query_tag()
    if a.continue_:
        state = ctx.pdq.get(tag)
        if state is None:
            raise StepError(f"`continue`: no earlier PDQ query with tag {tag!r} in this scenario")
        if a.fields:
            state = replace(state, fields={k: ctx.text(v) for k, v in a.fields.items()})
        pointer = ctx.maybe(a.pointer) or state.pointer
        if not pointer:
            raise StepError(f"`continue`: the last reply to {tag!r} gave no DSC continuation pointer")
    else:
        state = PdqState(
            sender.code,
            a.charset,
            {k: ctx.text(v) for k, v in a.fields.items()},
            [ctx.domain(d) for d in a.domains],
            a.quantity,
        )
        pointer = ctx.maybe(a.pointer) or ""
    header = _header(ctx, sender.code, a.charset)
    quantity = a.quantity if a.quantity is not None else state.quantity
    text = pdq_message(header, tag, state.fields, state.domains, quantity=quantity, pointer=pointer or None)
    label = f"ITI-21 QBP^Q22 from {sender.code}" + (" (continuation)" if pointer else "")
    obs, exchanges = _exchange(ctx, a, text, label, header.control_id, sender.code)
    next_pointer = obs.reply.get("DSC", 1) if obs.reply is not None else ""
    ctx.pdq[tag] = replace(state, pointer=next_pointer, quantity=quantity)
    ctx.last_query_tag = tag
    return obs, exchanges


@runs(PdqCancel)
def run_cancel(ctx: Context, a: PdqCancel) -> Outcome:
    sender = ctx.facility(a.from_)
    header = _header(ctx, sender.code, a.charset)
    text = cancel_message(header, ctx.text(a.query_tag))
    return _exchange(ctx, a, text, f"QCN^J01 from {sender.code}", header.control_id, sender.code)


# ------------------------------------------------------------------------------------------- raw


def _hex(data: bytes, limit: int = 4096) -> str:
    shown = data[:limit].hex(" ")
    return shown if len(data) <= limit else f"{shown} … ({len(data):,} bytes in all)"


def _raw_sender(ctx: Context, msh4: str) -> str:
    """A raw step's default certificate: MSH-4's facility if the world has it, else the first facility's."""
    if msh4 in ctx.world.by_code:
        return msh4
    if ctx.bindings.facilities:
        return next(iter(ctx.bindings.facilities.values())).code
    return "none"


@runs(MllpRaw)
def run_raw(ctx: Context, a: MllpRaw) -> Outcome:
    codec = "latin-1" if a.hex is not None else {"iso-2022-jp": "iso2022_jp"}.get(a.encoding, a.encoding)
    if a.hex is not None:
        data = bytes.fromhex("".join(a.hex.split()))
    else:
        try:
            data = ctx.text(a.text or "").encode(codec)
        except UnicodeEncodeError as exc:
            raise StepError(f"the raw text cannot be encoded as {a.encoding}: {exc}") from exc
    data += b"X" * a.pad
    payload = frame(data) if a.frame else data
    sender = ""
    try:
        header = parse_header(data)
        control_id = header.control_id
        sender = header.get("MSH", 4, comp=1)
    except HL7Error:
        control_id = ""
    conn = _connection(ctx, a.connection, _cert(ctx, a.cert, _raw_sender(ctx, sender)))
    started = time.perf_counter()
    conn.send(payload, eof=a.eof)
    reply, closed = conn.read(a.timeout_ms / 1000)
    elapsed = (time.perf_counter() - started) * 1000
    if a.eof:
        conn.close()  # half-closed: a later step on this name opens a new connection
    elif reply is not None:
        closed = conn.peer_closed()
    obs = _observe_reply(reply, closed, control_id, elapsed)
    note = _note(conn, reply, closed)
    exchange = Exchange(
        "mllp",
        "raw MLLP bytes",
        _shown(data[:8192].decode(codec, "replace")) + ("…" if len(data) > 8192 else ""),
        _shown(obs.text) if obs.text else None,
        elapsed,
        request_hex=_hex(payload),
        response_hex=_hex(reply) if reply is not None else None,
        note=note,
    )
    return obs, [exchange]
