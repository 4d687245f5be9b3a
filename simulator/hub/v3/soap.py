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
from .xmlsafe import HL7, HostileXml, child, parse, text

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


_ENVELOPE: Final = _q(SOAP_ENV, "Envelope")
_ENVELOPE11: Final = _q(SOAP11_ENV, "Envelope")
_HEADER: Final = _q(SOAP_ENV, "Header")
_BODY: Final = _q(SOAP_ENV, "Body")
_MUST_UNDERSTAND: Final = _q(SOAP_ENV, "mustUnderstand")
_WSA_NS: Final = "{" + WSA + "}"
_ACTION: Final = _q(WSA, "Action")
_MESSAGE_ID: Final = _q(WSA, "MessageID")
_REPLY_TO: Final = _q(WSA, "ReplyTo")
_ADDRESS: Final = _q(WSA, "Address")
_HL7_NS: Final = "{" + HL7 + "}"


def read_envelope(content_type: str, data: bytes, actions: Collection[str]) -> SoapRequest:
    """The request in ``data`` if it is a SOAP 1.2 envelope for one of ``actions``; else :class:`SoapFault`.

    ``actions`` maps to body elements by name: ``urn:hl7-org:v3:X`` and ``urn:hl7-org:v3:X_Suffix`` both
    carry an ``X`` element (the QUQI continue/cancel actions share ``QUQI_IN000003UV01``).
    """
    root = _envelope_root(content_type, data)
    header = child(root, _HEADER)
    if header is None:
        raise SoapFault("Sender", "wsa:Action is required", subcode="MessageAddressingHeaderRequired")
    message_id = text(child(header, _MESSAGE_ID))
    _understood(header, message_id)
    action = text(child(header, _ACTION))
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
    reply_to = child(header, _REPLY_TO)
    if reply_to is not None and text(child(reply_to, _ADDRESS)) not in _ANONYMOUS:
        raise SoapFault(
            "Sender",
            "only the anonymous ReplyTo is supported (the answer comes on this connection)",
            subcode="OnlyAnonymousAddressSupported",
            relates_to=message_id,
        )
    return SoapRequest(action, message_id, _body_element(child(root, _BODY), action, message_id))


def _envelope_root(content_type: str, data: bytes) -> etree._Element:
    """The parsed document's root if the Content-Type is SOAP 1.2's and the root a SOAP 1.2 Envelope."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != SOAP_MEDIA:
        raise SoapFault(
            "Sender", f"Content-Type must be {SOAP_MEDIA} (SOAP 1.2), not {media or 'none'!r}", status=415
        )
    try:
        root = parse(data)
    except HostileXml as exc:
        raise SoapFault("Sender", f"the body was refused: {exc}") from None
    if root.tag == _ENVELOPE11:
        raise SoapFault("VersionMismatch", "SOAP 1.1 envelopes are not served: use SOAP 1.2", status=500)
    if root.tag != _ENVELOPE:
        raise SoapFault("Sender", "the document is not a SOAP 1.2 Envelope")
    return root


def _understood(header: etree._Element, message_id: str) -> None:
    """MustUnderstand for a header block marked ``mustUnderstand`` outside WS-Addressing."""
    for block in header:
        tag = block.tag
        if not isinstance(tag, str) or tag.startswith(_WSA_NS):
            continue
        if str(block.get(_MUST_UNDERSTAND, "")).strip().lower() in _TRUE:
            raise SoapFault(
                "MustUnderstand",
                f"header block {tag} is marked mustUnderstand and is not understood",
                status=500,
                relates_to=message_id,
            )


def _body_element(body: etree._Element | None, action: str, message_id: str) -> etree._Element:
    """The Body's one element, which must be the action's interaction in the HL7 namespace."""
    children = [c for c in (body if body is not None else ()) if isinstance(c.tag, str)]
    if len(children) != 1:
        raise SoapFault("Sender", "the SOAP Body must carry exactly one element", relates_to=message_id)
    element = children[0]
    expected = action.removeprefix("urn:hl7-org:v3:")
    tag = str(element.tag)
    local = tag.removeprefix(_HL7_NS)
    if local == tag or not (expected == local or expected.startswith(local + "_")):
        raise SoapFault(
            "Sender",
            f"the body element {element.tag} does not match the action {action!r}",
            relates_to=message_id,
        )
    return element


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
