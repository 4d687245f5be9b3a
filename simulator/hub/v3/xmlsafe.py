"""Hardened XML parsing for the hub's SOAP endpoints (lxml), and the few helpers HL7 v3 code shares.

What a SOAP body may not do to the hub, and how each is refused (:class:`HostileXml`, answered as a SOAP
Sender fault by :mod:`.soap`):

* **External entities / XXE, network access**: ``resolve_entities=False``, ``no_network=True``,
  ``load_dtd=False``; nothing outside the body is ever read.
* **Entity expansion (billion laughs)** and any other DTD trick: a document with a DOCTYPE is refused outright
  (SOAP 1.2 forbids a DTD in an envelope: Part 1 §5), so no entity is ever declared, let alone expanded.
* **Deep nesting**: more than :data:`MAX_DEPTH` levels is refused (libxml2 itself stops at 256) before the
  tree is used by anything else. HL7 v3 interactions are ~15 levels deep inside a SOAP envelope.
* **Huge documents**: ``huge_tree=False`` (libxml2's own text-node and depth limits stay on), at most
  :data:`MAX_ELEMENTS` elements, and the HTTP body itself is bounded before it is read (the app's
  :class:`~simulator.hub.api.BodyLimit`), so a 50 MB body never reaches the parser.
* Processing instructions and comments are dropped; text is UTF-8 (or what the XML declaration says).
"""

from __future__ import annotations

import threading
from typing import Final

from lxml import etree

__all__ = ["HL7", "MAX_DEPTH", "MAX_ELEMENTS", "HostileXml", "attr", "child", "parse", "q", "text"]

HL7: Final = "urn:hl7-org:v3"
"""The HL7 v3 namespace."""
MAX_DEPTH: Final = 64
MAX_ELEMENTS: Final = 20_000


class HostileXml(ValueError):  # noqa: N818 - a refusal, named for what it refuses
    """The body is not XML the hub will read: malformed, a DTD, too deep or too many elements."""


_LOCAL = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's hardened parser (one per thread: the harness parses replies from several)."""
    parser: etree.XMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
    return parser


def parse(data: bytes) -> etree._Element:
    """The root element of ``data``, or :class:`HostileXml` saying why it was refused (module docstring).

    One libxml2 parse with the hardened parser (entities never resolved, no DTD loaded, no network, libxml2's
    own depth limit of 256 without ``huge_tree``), then the DTD, depth and element-count checks on the tree,
    each a compiled XPath evaluated in C (a Python walk over the tree cost more than the parse); the body is
    bounded before it gets here, so the parse itself is bounded too. A document both too deep and too large
    is refused as too deep.
    """
    if not data.strip():
        raise HostileXml("empty body")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise HostileXml(f"not well-formed XML: {exc}") from None
    if _has_dtd(root):
        raise HostileXml("a document type declaration (DTD) is not allowed")
    if _too_deep(root):
        raise HostileXml(f"nested deeper than {MAX_DEPTH} elements")
    if _count(root) > MAX_ELEMENTS:
        raise HostileXml(f"more than {MAX_ELEMENTS} elements")
    return root


_DEEPER: Final = etree.XPath("boolean(/" + "*/" * MAX_DEPTH + "*)")
_COUNT: Final = etree.XPath("count(//*)")


def _too_deep(root: etree._Element) -> bool:
    """Is there an element at depth MAX_DEPTH + 1 (the root is depth 1)?"""
    return _DEEPER(root) is True


def _count(root: etree._Element) -> int:
    """The number of elements in the document."""
    found = _COUNT(root)
    assert isinstance(found, float)
    return int(found)


def _has_dtd(element: etree._Element) -> bool:
    info = element.getroottree().docinfo
    return bool(getattr(info, "doctype", "")) or info.internalDTD is not None


def q(local: str, ns: str = HL7) -> str:
    """``{ns}local``: lxml's qualified name."""
    return f"{{{ns}}}{local}"


def text(element: etree._Element | None) -> str:
    """The element's text content, stripped ("" for None)."""
    if element is None:
        return ""
    if not len(element):  # no children (comments and PIs are never kept): the text is all of it
        return (element.text or "").strip()
    return "".join(str(t) for t in element.itertext()).strip()


def child(element: etree._Element | None, *tags: str) -> etree._Element | None:
    """``element.find("{ns}a/{ns}b/…")`` for ``tags`` (a, b, …): the first match in document order, or None.

    The same answer as ``find`` (which also looks under a later ``a`` when the first has no ``b``), without
    lxml's ElementPath (~1 µs a call): the SOAP endpoints' hot paths make a dozen such look-ups a request.
    """
    if element is None or not tags:
        return element
    if len(tags) == 1:
        return next(element.iterchildren(tags[0]), None)
    for candidate in element.iterchildren(tags[0]):
        found = child(candidate, *tags[1:])
        if found is not None:
            return found
    return None


def attr(element: etree._Element | None, name: str) -> str:
    """An attribute's value, stripped ("" for None or absent)."""
    if element is None:
        return ""
    return str(element.get(name, "")).strip()
