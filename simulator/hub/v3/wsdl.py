"""A WSDL 1.1 (SOAP 1.2 binding, WS-Addressing actions) per v3 actor endpoint, served at ``?wsdl``.

Names follow the IHE WSDLs (``PIXManager_Service``, ``PRPA_IN201301UV02_Message``…); the message parts point
at the HL7 v3 elements without importing the HL7 schemas (the hub does not ship them; a client that generates
stubs supplies its own copy of the normative edition's XSDs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lxml import etree

from .transactions import RESPONSES

__all__ = ["ACTORS", "wsdl"]

_WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
_SOAP12: Final = "http://schemas.xmlsoap.org/wsdl/soap12/"
_WSAW: Final = "http://www.w3.org/2006/05/addressing/wsdl"
_TNS: Final = "urn:ihe:iti:rhin:v3"
_HL7: Final = "urn:hl7-org:v3"

ACTORS: Final = {
    "pix-feed": ("PIXManager_Feed", ("PRPA_IN201301UV02", "PRPA_IN201302UV02", "PRPA_IN201304UV02")),
    "pix-query": ("PIXManager_Query", ("PRPA_IN201309UV02",)),
    "pdq": ("PDQSupplier", ("PRPA_IN201305UV02", "QUQI_IN000003UV01_Continue", "QUQI_IN000003UV01_Cancel")),
}
"""Endpoint key → (service name, request interactions)."""


def _el(parent: etree._Element, ns: str, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)


def wsdl(actor: str, address: str) -> bytes:
    """The WSDL of ``actor`` (a key of :data:`ACTORS`) with its service at ``address``."""
    service, operations = ACTORS[actor]
    root = etree.Element(
        f"{{{_WSDL}}}definitions",
        {"name": service, "targetNamespace": _TNS},
        nsmap={"wsdl": _WSDL, "soap12": _SOAP12, "wsaw": _WSAW, "tns": _TNS, "hl7": _HL7},
    )
    elements = sorted(
        {op.split("_Continue")[0].split("_Cancel")[0] for op in operations}
        | {RESPONSES[op] for op in operations}
    )
    for element in elements:
        message = _el(root, _WSDL, "message", name=f"{element}_Message")
        _el(message, _WSDL, "part", name="Body", element=f"hl7:{element}")
    port_type = _el(root, _WSDL, "portType", name=f"{service}_PortType")
    binding = _el(root, _WSDL, "binding", name=f"{service}_Binding_Soap12", type=f"tns:{service}_PortType")
    _el(binding, _SOAP12, "binding", style="document", transport="http://schemas.xmlsoap.org/soap/http")
    for op in operations:
        request = op.split("_Continue")[0].split("_Cancel")[0]
        _operation(port_type, binding, op, request, RESPONSES[op])
    svc = _el(root, _WSDL, "service", name=f"{service}_Service")
    port = _el(svc, _WSDL, "port", name=f"{service}_Port_Soap12", binding=f"tns:{service}_Binding_Soap12")
    _el(port, _SOAP12, "address", location=address)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _operation(
    port_type: etree._Element, binding: etree._Element, op: str, request: str, response: str
) -> None:
    operation = _el(port_type, _WSDL, "operation", name=op)
    for tag, element, action in (("input", request, op), ("output", response, response)):
        io = _el(operation, _WSDL, tag, message=f"tns:{element}_Message")
        io.set(f"{{{_WSAW}}}Action", f"urn:hl7-org:v3:{action}")
    bound = _el(binding, _WSDL, "operation", name=op)
    _el(bound, _SOAP12, "operation", soapAction=f"urn:hl7-org:v3:{op}")
    for tag in ("input", "output"):
        _el(_el(bound, _WSDL, tag), _SOAP12, "body", use="literal")


def interactions(actor: str) -> Sequence[str]:
    """The request interactions an actor's endpoint serves."""
    return ACTORS[actor][1]
