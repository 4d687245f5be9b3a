"""hl7wire's HL7 v2 layer without sockets: parsing, escapes, charsets (MSH-18), building, ACK/ERR, framing.

The MLLP server is tested in test_mllp.py, the blocking client in test_hl7wire_client.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hl7wire import (
    ASCII,
    END_BLOCK,
    ISO2022_JP,
    MSH18,
    START_BLOCK,
    UTF8,
    ControlIds,
    Deframer,
    Delimiters,
    ErrorCode,
    ErrorDetail,
    ErrorLocation,
    FramingError,
    Message,
    ParseError,
    Raw,
    Repeated,
    UndecodableError,
    UnencodableError,
    UnknownCharsetError,
    ack,
    basic_checks,
    charset_of,
    codec_for,
    components,
    decode,
    encode,
    escape,
    frame,
    parse,
    parse_header,
    segment,
    unescape,
)
from synthetic.clock import JST

NOW = datetime(2025, 4, 1, 9, 30, 0, tzinfo=JST)
# Each of these kanji has a JIS byte equal to an HL7 delimiter: 五 ^, 京 ~, 日 |, 本 \, 愛 &.
JIS_NAMES = "五十嵐^京子~日本^愛"
UTF8_NAMES = "髙橋^𠮷子~ﾔﾏﾀﾞ^ﾀﾛｳ"  # not in JIS X 0208: only UTF-8 can carry them


def hl7(control_id: str, *, charset: str = "", version: str = "2.5", body: str = "") -> str:
    msh = (
        f"MSH|^~\\&|SENDER|FAC_A|RHIN_HUB|RHIN|20250401093000+0900||QBP^Q23^QBP_Q21|{control_id}|P|{version}"
        f"||||||{charset}\r"
    )
    return msh + (body or f"QPD|IHE PIX Query|Q{control_id}|P123^^^FAC_A&1.2.392.100&ISO\rRCP|I\r")


# ------------------------------------------------------------------------------------------- parser

SAMPLE = (
    "MSH|^~\\&|NIST_SENDER^^|NIST|RHIN_HUB|RHIN|20250401||QBP^Q23^QBP_Q21|CTL-1|D|2.5\r"
    "QPD|IHE PIX Query|QRY_1|P123^^^FAC_A&1.2.392.100&ISO|^^^FAC_B~^^^FAC_C\r"
    "RCP|I||||||\r"
    "OBX|1|ST|X||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X0D0A\\g\\.br\\h\r"
    "OBX|2|ST|Y||second\r\n"
)


def test_accessors_follow_hl7_numbering() -> None:
    msg = parse(SAMPLE)
    assert (msg.get("MSH", 1), msg.get("MSH", 2)) == ("|", "^~\\&")
    assert (msg.get("MSH", 10), msg.get("MSH", 11)) == ("CTL-1", "D")
    assert msg.message_type == ("QBP", "Q23", "QBP_Q21")
    assert msg.version == "2.5"
    assert msg.get("QPD", 3) == "P123^^^FAC_A&1.2.392.100&ISO"  # a composite comes back encoded
    assert msg.get("QPD", 3, rep=0, comp=1) == "P123"
    assert msg.get("QPD", 3, comp=4) == "FAC_A&1.2.392.100&ISO"
    assert msg.get("QPD", 3, comp=4, sub=2) == "1.2.392.100"
    assert msg.get("QPD", 4, rep=1, comp=4) == "FAC_C"
    assert msg.segments("QPD")[0].repetitions(4) == ["^^^FAC_B", "^^^FAC_C"]
    assert msg.get("QPD", 4, rep=5, comp=4) == msg.get("QPD", 99) == msg.get("ZZZ", 1) == ""
    assert msg.get("QPD", 3, comp=9) == msg.get("QPD", 3, comp=4, sub=9) == ""
    assert len(msg.segments("OBX")) == 2
    assert msg.get("OBX", 5, index=1) == "second"
    assert msg.get("OBX", 5) == "a|b^c&d~e\\f\r\ng\\.br\\h"
    assert [s.name for s in msg] == ["MSH", "QPD", "RCP", "OBX", "OBX"]
    with pytest.raises(ValueError, match="numbered from 1"):
        msg.get("QPD", 3, comp=0)


def test_other_delimiters_and_line_endings() -> None:
    msg = parse("MSH*%$!@*APP*FAC*HUB*HUB*2025**ADT%A01*C9*P*2.3.1\nPID*1**ID%%%NS@1.2@ISO$ID2**A!S!B\n")
    assert msg.delimiters == Delimiters("*", "%", "$", "!", "@")
    assert msg.get("PID", 3, comp=4, sub=2) == "1.2"
    assert msg.get("PID", 3, rep=1) == "ID2"
    assert msg.get("PID", 5) == "A%B"
    assert msg.to_er7().startswith("MSH*%$!@*APP*")


@pytest.mark.parametrize("text", ["", "PID|1\r", "MSH", "MSH|^~\r", "MSH|^^^^|A\r"])
def test_unparseable_text(text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)


def test_each_codec_has_the_msh18_that_reads_back_to_it() -> None:
    assert {codec_for(declared): codec for codec, declared in MSH18.items()} == {
        ASCII: ASCII,
        UTF8: UTF8,
        ISO2022_JP: ISO2022_JP,
    }


@given(st.text())
def test_escape_round_trip(value: str) -> None:
    escaped = escape(value)
    assert not any(c in escaped for c in "|^~&\r\n")
    assert unescape(escaped) == value


_leaf = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
_component = st.one_of(_leaf, st.lists(_leaf, min_size=1, max_size=3))
_value = st.one_of(_leaf, st.lists(_component, min_size=1, max_size=4))


def _leaf_of(value: Any, comp: int, sub: int) -> str:
    if isinstance(value, str):
        return value if comp == sub == 1 else ""
    if comp > len(value):
        return ""
    component = value[comp - 1]
    if isinstance(component, str):
        return component if sub == 1 else ""
    return component[sub - 1] if sub <= len(component) else ""


@given(st.lists(st.lists(_value, min_size=1, max_size=3), min_size=1, max_size=5))
def test_built_messages_parse_back(fields: list[list[Any]]) -> None:
    msg = Message()
    msg.add("MSH", {3: "APP", 9: ["ADT", "A01"], 10: "1", 12: "2.5"})
    for reps in fields:
        msg.add("ZZZ", [Repeated(*reps)])
    back = parse(msg.to_er7())
    assert back.to_er7() == msg.to_er7()
    for index, reps in enumerate(fields):
        for rep, value in enumerate(reps):
            for comp in range(1, 5):
                for sub in range(1, 4):
                    assert back.get("ZZZ", 1, rep, comp, sub, index=index) == _leaf_of(value, comp, sub)


_jis_text = st.text(
    st.sampled_from(list("山田太郎五十嵐京子日本愛髪鴎〓ー・、。アイウヱヰャ|^~\\&ABC xyz01")), max_size=20
)


@given(_jis_text, st.sampled_from([("~ISO IR87", ISO2022_JP), ("UNICODE UTF-8", UTF8)]))
def test_names_survive_encode_and_decode(name: str, charset: tuple[str, str]) -> None:
    msg = Message()
    msg.add("MSH", {3: "APP", 9: ["ADT", "A01"], 10: "1", 12: "2.5", 18: Raw(charset[0])})
    msg.add("PID", {5: [name, name[::-1]]})
    back, codec = decode(msg.encode(charset[1]))
    assert codec == charset[1]
    assert (back.get("PID", 5, comp=1), back.get("PID", 5, comp=2)) == (name, name[::-1])


@pytest.mark.parametrize(
    ("msh18", "codec"),
    [
        ("~ISO IR87", ISO2022_JP),
        ("ISO IR87", ISO2022_JP),
        ("~ISOIR87", ISO2022_JP),
        ("ISO IR6~ISO IR87", ISO2022_JP),
        ("UNICODE UTF-8", UTF8),
        ("", "ascii"),
        ("ISO IR6", "ascii"),
    ],
)
def test_charset_names(msh18: str, codec: str) -> None:
    assert codec_for(msh18) == codec
    assert charset_of(hl7("C", charset=msh18).encode("ascii")) == codec


@pytest.mark.parametrize("msh18", ["UTF-8", "8859/1", "ISO IR87~UNICODE UTF-8", "SJIS"])
def test_unknown_charsets(msh18: str) -> None:
    with pytest.raises(UnknownCharsetError) as caught:
        charset_of(hl7("C", charset=msh18).encode("ascii"))
    assert caught.value.detail.code == ErrorCode.TABLE_VALUE_NOT_FOUND
    assert str(caught.value.detail.location) == "MSH^1^18"


def test_decode_errors_name_the_segment_and_encode_errors_are_typed() -> None:
    raw = hl7("D", charset="UNICODE UTF-8").encode() + b"PID|1\rPID|2||\xc3\r"
    with pytest.raises(UndecodableError) as caught:
        decode(raw)
    assert str(caught.value.detail.location) == "PID^2"
    with pytest.raises(UnencodableError):
        encode("髙橋", ISO2022_JP)
    assert encode("髙橋", ISO2022_JP, "replace") == "?橋".encode(ISO2022_JP)


def test_header_is_read_without_splitting_kanji() -> None:
    raw = "MSH|^~\\&|本日|愛京|HUB|HUB|2025||ADT^A01|C1|P|2.5||||||~ISO IR87\rPID|1\r".encode(ISO2022_JP)
    assert charset_of(raw) == ISO2022_JP
    header = parse_header(raw)
    assert (header.get("MSH", 3), header.get("MSH", 4), header.get("MSH", 10)) == ("本日", "愛京", "C1")
    assert len(header) == 1


# ------------------------------------------------------------------------------------------- ACK / ERR


def test_ack_swaps_sender_and_receiver_and_correlates() -> None:
    request = parse(hl7("REQ-7", charset="~ISO IR87", version="2.5"))
    reply = ack(request, "AA", control_id="ACK-1", now=NOW)
    msh = reply.segments("MSH")[0]
    assert [msh.field(n) for n in (3, 4, 5, 6)] == ["RHIN_HUB", "RHIN", "SENDER", "FAC_A"]
    assert msh.field(7) == "20250401093000+0900"
    assert msh.field(9) == "ACK^Q23^ACK"
    assert (msh.field(10), msh.field(11), msh.field(12), msh.field(18)) == ("ACK-1", "P", "2.5", "~ISO IR87")
    assert reply.segments("MSA")[0].to_er7() == "MSA|AA|REQ-7"
    assert reply.to_er7().endswith("\r")
    assert basic_checks(reply) == []
    with pytest.raises(ValueError, match="MSA-1"):
        ack(request, "OK", control_id="X", now=NOW)


@pytest.mark.parametrize(
    ("location", "text"),
    [
        (ErrorLocation("QPD", field=3, component=1), "QPD^1^3^1^1"),
        (ErrorLocation("QPD", field=3, component=4), "QPD^1^3^1^4"),
        (ErrorLocation("QPD", field=3, component=4, subcomponent=2), "QPD^1^3^1^4^2"),
        (ErrorLocation("QPD", field=4, repetition=2), "QPD^1^4^2"),
        (ErrorLocation("QPD", field=8, repetition=1), "QPD^1^8^1"),
        (ErrorLocation("MSH", field=18), "MSH^1^18"),
        (ErrorLocation("PID", 2), "PID^2"),
    ],
)
def test_error_location_format(location: ErrorLocation, text: str) -> None:
    assert str(location) == text
    assert str(ErrorLocation.parse(text)) == text


def test_err_segments_in_v25_form() -> None:
    request = parse(hl7("Q1"))
    errors = [
        ErrorDetail(ErrorCode.UNKNOWN_KEY_IDENTIFIER, ErrorLocation("QPD", field=3, component=1)),
        ErrorDetail(
            ErrorCode.UNKNOWN_KEY_IDENTIFIER,
            (ErrorLocation("QPD", field=4, repetition=2), ErrorLocation("QPD", field=4, repetition=3)),
            severity="W",
            diagnostic="unknown domain FAC_Z",
        ),
    ]
    reply = ack(request, "AE", errors=errors, control_id="A", now=NOW, text="not found")
    assert reply.get("MSA", 3) == "not found"
    first, second = (e.to_er7() for e in reply.segments("ERR"))
    assert first == "ERR||QPD^1^3^1^1|204^Unknown key identifier^HL70357|E"
    assert second == "ERR||QPD^1^4^2~QPD^1^4^3|204^Unknown key identifier^HL70357|W|||unknown domain FAC_Z"
    assert [c.text for c in (ErrorCode(100), ErrorCode(203), ErrorCode(207))] == [
        "Segment sequence error",
        "Unsupported version id",
        "Application internal error",
    ]


def test_err_for_v231_also_fills_err1() -> None:
    request = parse(hl7("F1", version="2.3.1"))
    detail = ErrorDetail(ErrorCode.UNKNOWN_KEY_IDENTIFIER, ErrorLocation("PID", field=3, component=4))
    reply = ack(request, "AE", errors=[detail], control_id="A", now=NOW)
    assert reply.segments("ERR")[0].to_er7() == (
        "ERR|PID^1^3^204&Unknown key identifier&HL70357|PID^1^3^1^4|204^Unknown key identifier^HL70357|E"
    )


def test_response_built_on_ack() -> None:
    request = parse(SAMPLE)
    reply = ack(request, "AA", message_type="RSP", event="K23", structure="RSP_K23", control_id="R", now=NOW)
    reply.add("QAK", ["QRY_1", "OK"])
    reply.append(request.segments("QPD")[0])
    ids = Repeated(["L1", "", "", ["FAC_B", "1.2.3", "ISO"]])
    reply.add("PID", {3: ids, 5: Repeated("", [""] * 6 + ["S"])})
    assert reply.to_er7().split("\r")[1:] == [
        "MSA|AA|CTL-1",
        "QAK|QRY_1|OK",
        "QPD|IHE PIX Query|QRY_1|P123^^^FAC_A&1.2.392.100&ISO|^^^FAC_B~^^^FAC_C",
        "PID|||L1^^^FAC_B&1.2.3&ISO||~^^^^^^S",
        "",
    ]
    assert reply.get("MSH", 9) == "RSP^K23^RSP_K23"
    assert reply.get("MSH", 11) == "D"
    with pytest.raises(ValueError, match="delimiters"):
        reply.append(parse("MSH*%$!@*A\r").segments()[0])


def test_control_ids_are_unique() -> None:
    ids, other = ControlIds(), ControlIds()
    values = [ids.next() for _ in range(100)] + [other.next() for _ in range(100)]
    assert len(set(values)) == 200
    assert ControlIds("HUB").next() == "HUB1"


def test_basic_checks() -> None:
    assert basic_checks(parse(hl7("OK"))) == []
    assert basic_checks(parse(hl7("OK", version="2.4")), versions={"2.3.1", "2.5"}) == [
        ErrorDetail(
            ErrorCode.UNSUPPORTED_VERSION_ID,
            ErrorLocation("MSH", field=12),
            diagnostic="version '2.4' is not supported",
        )
    ]
    problems = basic_checks(parse("EVN|A01\r" + hl7("").replace("QBP^Q23^QBP_Q21", "")))
    assert [(str(p.location), p.code) for p in problems] == [
        ("EVN^1", ErrorCode.SEGMENT_SEQUENCE_ERROR),
        ("MSH^1^9^1^1", ErrorCode.REQUIRED_FIELD_MISSING),
        ("MSH^1^9^1^2", ErrorCode.REQUIRED_FIELD_MISSING),
        ("MSH^1^10", ErrorCode.REQUIRED_FIELD_MISSING),
    ]


# ------------------------------------------------------------------------------------------- building


def test_segment_and_components_join_encoded_text_and_drop_trailing_empties() -> None:
    assert components("A", "", None, "") == "A"
    assert components("", "", "", "", "920", "JPN", "H", "") == "^^^^920^JPN^H"
    assert components() == ""
    assert segment("PID", "1", "", "X\\S\\Y^^^NS", "", None) == "PID|1||X\\S\\Y^^^NS"
    assert segment("PV1") == segment("PV1", "", None) == "PV1"
    assert segment("MSH", "^~\\&", "APP", "", "") == "MSH|^~\\&|APP"  # its first field is MSH-2


@given(st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=8))
def test_segment_text_and_message_add_are_one_builder(values: list[str | None]) -> None:
    """``segment`` (encoded text in) and ``Message.add`` (data in) give the same ER7 for the same data."""
    msg = Message()
    msg.add("ZZZ", values)
    escaped = [None if v is None else escape(v) for v in values]
    assert msg.to_er7() == segment("ZZZ", *escaped) + "\r"


def test_msh_from_add_always_carries_the_messages_delimiters() -> None:
    msg = Message(Delimiters("*", "%", "$", "!", "@"))
    msg.add("MSH", {1: "ignored", 2: "ignored", 3: "A%B", 9: ["ADT", "A04"]})
    assert msg.to_er7() == "MSH*%$!@*A!S!B******ADT%A04\r"
    assert parse(msg.to_er7()).get("MSH", 3) == "A%B"


# ------------------------------------------------------------------------------------------- framing


def test_frame_and_deframe() -> None:
    assert frame(b"MSH|x") == START_BLOCK + b"MSH|x" + END_BLOCK
    frames = Deframer(100)
    frames.feed(frame(b"one") + frame(b"two")[:-1])
    assert frames.next_block() == b"one"
    assert frames.next_block() is None  # 0x1C arrived, 0x0D not yet
    frames.feed(b"\r")
    assert frames.next_block() == b"two"
    assert frames.next_block() is None
    assert len(frames) == 0


@given(
    st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\x1c", b"")), min_size=1, max_size=6),
    st.lists(st.integers(1, 50), min_size=1, max_size=40),
)
def test_deframer_gives_the_same_payloads_however_the_bytes_are_cut(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(p) for p in payloads)
    frames, got, i, k = Deframer(1000), [], 0, 0
    while i < len(stream):
        size = cuts[k % len(cuts)]
        frames.feed(stream[i : i + size])
        i, k = i + size, k + 1
        while (block := frames.next_block()) is not None:
            got.append(block)
    assert got == payloads


def test_deframer_bounds_a_block_before_it_ends_and_keeps_a_block_without_start_byte() -> None:
    frames = Deframer(10)
    frames.feed(START_BLOCK + b"x" * 10 + b"\x1c")
    assert frames.next_block() is None  # exactly the bound so far: still acceptable
    frames.feed(b"y")
    with pytest.raises(FramingError, match="larger than 10 bytes") as over:
        frames.next_block()
    assert over.value.block is None
    frames = Deframer(10)
    frames.feed(START_BLOCK + b"x" * 11 + END_BLOCK)
    with pytest.raises(FramingError, match="larger than 10 bytes"):
        frames.next_block()
    frames = Deframer(10)
    frames.feed(b"MSH|1" + END_BLOCK + frame(b"next"))
    with pytest.raises(FramingError, match="does not start with 0x0B") as missing:
        frames.next_block()
    assert missing.value.block == b"MSH|1"
    assert frames.next_block() == b"next"


def test_the_bootstrap_a04_names_its_charset_in_msh_18_and_its_iso_2022_scheme_in_msh_20() -> None:
    """MSH-19 is the message's language; the ISO 2022 handling scheme belongs in MSH-20 (HL7 v2.5 §2.14.9)."""
    import datetime as dt

    from hl7wire import ISO2022_JP, decode
    from simulator.bootstrap import _Registration, a04

    reg = _Registration(
        1, "P1", "F1", "L1", "山田", "太郎", "ヤマダ", "タロウ", "M", "1950-01-02", "9200001", "金沢市"
    )
    raw = a04(reg, "F1_NS", "C1", dt.datetime(2026, 4, 1, 9, 0))
    message, codec = decode(raw)
    assert codec == ISO2022_JP
    msh = message.segment("MSH")
    assert msh is not None
    assert (msh.field(18), msh.field(19), msh.field(20)) == ("~ISO IR87", "", "ISO 2022-1994")
