"""SOAP 1.2 envelopes with WS-Addressing 1.0, as IHE ITI TF-2 Appendix V asks of PIXv3/PDQv3 actors.

The split between a fault and an HL7 acknowledgement (issue 15): whatever is not a SOAP envelope the hub can
act on is a **SOAP fault** — not XML, hostile XML (:mod:`.xmlsafe`), a SOAP 1.1 envelope
(``VersionMismatch``), a header block marked ``mustUnderstand`` that is not WS-Addressing
(``MustUnderstand``), a missing ``wsa:Action`` or ``wsa:MessageID``
(``wsa:MessageAddressingHeaderRequired``), an action the endpoint does not serve
(``wsa:ActionNotSupported``), a non-anonymous ``wsa:ReplyTo`` (``wsa:OnlyAnonymousAddressSupported``: the
hub answers on the same connection only), a body whose element is not the action's interaction, or a
Content-Type other than ``application/soap+xml`` (HTTP 415). Everything else is answered with the HL7
acknowledgement the transaction defines, even when that acknowledgement refuses it.

HTTP status per SOAP 1.2 Part 2 §7.5.1.2: Sender faults 400, ``MustUnderstand`` and ``VersionMismatch`` 500,
Receiver 500; a Content-Type the hub does not read 415 (with the fault in SOAP 1.2). Replies carry
``wsa:Action`` (the response interaction, ``urn:hl7-org:v3:<interaction>``), a fresh ``wsa:MessageID``
(``urn:uuid:``) and ``wsa:RelatesTo`` = the request's MessageID; faults carry ``wsa:Action``
``http://www.w3.org/2005/08/addressing/soap/fault`` and RelatesTo when the request's MessageID was readable.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from lxml import etree

from .writer import esc
from .xmlsafe import HL7, HostileXml, parse, text

__all__ = [
    "FAULT_ACTION",
    "SOAP_ENV",
    "SOAP_MEDIA",
    "WSA",
    "SoapFault",
    "SoapRequest",
    "fault_envelope",
    "read_envelope",
    "reply_envelope",
]

SOAP_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
WSA: Final = "http://www.w3.org/2005/08/addressing"
SOAP_MEDIA: Final = "application/soap+xml"
FAULT_ACTION: Final = "http://www.w3.org/2005/08/addressing/soap/fault"
_ANONYMOUS: Final = frozenset({f"{WSA}/anonymous", ""})
_TRUE: Final = frozenset({"true", "1"})


class SoapFault(Exception):  # noqa: N818 - an answer, not a bug
    """A SOAP 1.2 fault to answer: ``code`` (Sender, Receiver, MustUnderstand, VersionMismatch), an optional
    WS-Addressing ``subcode`` (local name in the wsa namespace), the reason text and the HTTP status."""

    def __init__(
        self, code: str, reason: str, *, subcode: str = "", status: int = 400, relates_to: str = ""
    ) -> None:
        super().__init__(reason)
        self.code, self.reason, self.subcode, self.status = code, reason, subcode, status
        self.relates_to = relates_to


@dataclass(frozen=True)
class SoapRequest:
    """What the hub acts on: the action, the request's MessageID and the body's one element."""

    action: str
    message_id: str
    body: etree._Element

    @property
    def interaction(self) -> str:
        """The body element's local name (e.g. ``PRPA_IN201309UV02``)."""
        return etree.QName(self.body).localname


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def read_envelope(content_type: str, data: bytes, actions: Collection[str]) -> SoapRequest:
    """The request in ``data`` if it is a SOAP 1.2 envelope for one of ``actions``; else :class:`SoapFault`.

    ``actions`` maps to body elements by name: ``urn:hl7-org:v3:X`` and ``urn:hl7-org:v3:X_Suffix`` both
    carry an ``X`` element (the QUQI continue/cancel actions share ``QUQI_IN000003UV01``).
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media != SOAP_MEDIA:
        raise SoapFault(
            "Sender", f"Content-Type must be {SOAP_MEDIA} (SOAP 1.2), not {media or 'none'!r}", status=415
        )
    try:
        root = parse(data)
    except HostileXml as exc:
        raise SoapFault("Sender", f"the body was refused: {exc}") from None
    if root.tag == _q(SOAP11_ENV, "Envelope"):
        raise SoapFault("VersionMismatch", "SOAP 1.1 envelopes are not served: use SOAP 1.2", status=500)
    if root.tag != _q(SOAP_ENV, "Envelope"):
        raise SoapFault("Sender", "the document is not a SOAP 1.2 Envelope")
    header = root.find(_q(SOAP_ENV, "Header"))
    body = root.find(_q(SOAP_ENV, "Body"))
    message_id = text(header.find(_q(WSA, "MessageID"))) if header is not None else ""
    if header is not None:
        for block in header:
            if not isinstance(block.tag, str):
                continue
            must = str(block.get(_q(SOAP_ENV, "mustUnderstand"), "")).strip().lower()
            if must in _TRUE and etree.QName(block).namespace != WSA:
                raise SoapFault(
                    "MustUnderstand",
                    f"header block {block.tag} is marked mustUnderstand and is not understood",
                    status=500,
                    relates_to=message_id,
                )
    action = text(header.find(_q(WSA, "Action"))) if header is not None else ""
    if not action:
        raise SoapFault(
            "Sender",
            "wsa:Action is required",
            subcode="MessageAddressingHeaderRequired",
            relates_to=message_id,
        )
    if not message_id:
        raise SoapFault("Sender", "wsa:MessageID is required", subcode="MessageAddressingHeaderRequired")
    if action not in actions:
        raise SoapFault(
            "Sender",
            f"action {action!r} is not served at this endpoint",
            subcode="ActionNotSupported",
            relates_to=message_id,
        )
    assert header is not None
    reply_to = header.find(_q(WSA, "ReplyTo"))
    if reply_to is not None and text(reply_to.find(_q(WSA, "Address"))) not in _ANONYMOUS:
        raise SoapFault(
            "Sender",
            "only the anonymous ReplyTo is supported (the answer comes on this connection)",
            subcode="OnlyAnonymousAddressSupported",
            relates_to=message_id,
        )
    children = [c for c in (body if body is not None else ()) if isinstance(c.tag, str)]
    if len(children) != 1:
        raise SoapFault("Sender", "the SOAP Body must carry exactly one element", relates_to=message_id)
    element = children[0]
    expected = action.removeprefix("urn:hl7-org:v3:")
    name = etree.QName(element)
    if name.namespace != HL7 or not (expected == name.localname or expected.startswith(name.localname + "_")):
        raise SoapFault(
            "Sender",
            f"the body element {element.tag} does not match the action {action!r}",
            relates_to=message_id,
        )
    return SoapRequest(action, message_id, element)


_OPEN: Final = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:wsa="{WSA}"><soap:Header><wsa:Action>'
)
_CLOSE: Final = "</soap:Body></soap:Envelope>"


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    """The envelope as text (:mod:`.writer`'s escaping): Action, a fresh MessageID, RelatesTo if known."""
    relates = f"<wsa:RelatesTo>{esc(relates_to)}</wsa:RelatesTo>" if relates_to else ""
    return (
        f"{_OPEN}{esc(action)}</wsa:Action><wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>{relates}"
        f"</soap:Header><soap:Body>{body}{_CLOSE}"
    ).encode()


def reply_envelope(interaction: str, payload: str, relates_to: str) -> bytes:
    """The SOAP 1.2 reply carrying ``payload`` (XML text, :func:`.writer.payload`) with ``wsa:Action``
    ``urn:hl7-org:v3:<interaction>``."""
    return _envelope(f"urn:hl7-org:v3:{interaction}", relates_to, payload)


def fault_envelope(fault: SoapFault) -> bytes:
    """A SOAP 1.2 fault envelope for ``fault``."""
    subcode = ""
    if fault.subcode:
        subcode = f"<soap:Subcode><soap:Value>wsa:{esc(fault.subcode)}</soap:Value></soap:Subcode>"
    body = (
        f"<soap:Fault><soap:Code><soap:Value>soap:{esc(fault.code)}</soap:Value>{subcode}</soap:Code>"
        f'<soap:Reason><soap:Text xml:lang="en">{esc(fault.reason)}</soap:Text></soap:Reason></soap:Fault>'
    )
    return _envelope(FAULT_ACTION, fault.relates_to, body)
