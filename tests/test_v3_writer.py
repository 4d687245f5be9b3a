"""The text writer of v3 replies (simulator/hub/v3/writer.py) against the tree writer it replaced.

The exact bytes of a sequence of replies (tests/v3_replies.py) were recorded from the earlier lxml-tree
writer; the escaping is checked against lxml's own serialisation for any string hypothesis finds, including
the characters XML cannot carry (refused by both).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from simulator.hub.v3.writer import attr_esc, echo, esc
from tests.v3_replies import replies

REPLIES = Path(__file__).parent / "golden" / "v3" / "replies"


def test_replies_are_byte_for_byte_the_tree_writers(tmp_path: Path) -> None:
    got = replies(tmp_path)
    recorded = {p.stem: p.read_bytes() for p in REPLIES.glob("*.xml")}
    assert sorted(got) == sorted(recorded)
    for name, data in got.items():
        assert data == recorded[name], name


def _lxml_text(value: str) -> str:
    element = etree.Element("a")
    element.text = value
    return etree.tostring(element, encoding="unicode").removeprefix("<a>").removesuffix("</a>")


def _lxml_attr(value: str) -> str:
    written = etree.tostring(etree.Element("a", b=value), encoding="unicode")
    return written.removeprefix('<a b="').removesuffix('"/>')


_MARKUP = st.sampled_from("&<>\"'\t\n\r \x7f\x85\u2028漢カ")
_ANY = st.characters(codec="utf-8")  # no lone surrogates: Python could not even encode those
_NOT_XML = st.sampled_from("\x00\x01\x08\x0b\x0c\x0e\x1f\ufffe\uffff")


@given(st.text(alphabet=st.one_of(_MARKUP, _ANY), max_size=40))
def test_escaping_is_lxmls_and_refuses_what_lxml_refuses(value: str) -> None:
    for ours, theirs in ((esc, _lxml_text), (attr_esc, _lxml_attr)):
        try:
            expected = theirs(value)
        except ValueError:
            with pytest.raises(ValueError, match=r"XML 1\.0"):
                ours(value)
        else:
            assert ours(value) == expected


@given(st.text(alphabet=_MARKUP, max_size=20), _NOT_XML, st.text(alphabet=_MARKUP, max_size=20))
def test_markup_is_escaped_as_lxml_does_and_control_characters_refused(
    before: str, bad: str, after: str
) -> None:
    value = before + after
    assert (esc(value), attr_esc(value)) == (_lxml_text(value), _lxml_attr(value))
    for ours, theirs in ((esc, _lxml_text), (attr_esc, _lxml_attr)):
        with pytest.raises(ValueError, match="XML compatible"):
            theirs(before + bad + after)
        with pytest.raises(ValueError, match=r"XML 1\.0"):
            ours(before + bad + after)


def test_echo_writes_a_request_part_as_a_reply_carries_it() -> None:
    request = etree.fromstring(
        b'<h:r xmlns:h="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b'<h:q><h:id xsi:type="II" extension="a&amp;b"/></h:q>\n  </h:r>'
    )
    assert echo(request[0]) == (
        '<q xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<id xsi:type="II" extension="a&amp;b"/></q>\n  '
    )
    assert len(request) == 1  # copied, not moved out of the request
