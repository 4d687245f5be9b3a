"""The hub's wire layer: MLLP server/clients on real sockets, and the HL7 v2 parser, charsets and ACK builder.

Servers listen on 127.0.0.1 port 0; each test starts and stops its own. A message without any MSH closes the
connection (nothing could correlate a reply); an MSH that is not first gets AR with ERR 100.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.hub.hl7v2 import (
    ISO2022_JP,
    JST,
    UTF8,
    ControlIds,
    Delimiters,
    ErrorCode,
    ErrorDetail,
    ErrorLocation,
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
    decode,
    encode,
    escape,
    parse,
    parse_header,
    unescape,
)
from simulator.hub.mllp import (
    END_BLOCK,
    START_BLOCK,
    ConnectionClosedError,
    EchoHandler,
    HL7Handler,
    MLLPClient,
    MLLPServer,
    SyncMLLPClient,
    serve_echo,
)

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


def good(control_id: str) -> bytes:
    return hl7(control_id).encode("ascii")


def reply_of(payload: bytes) -> Message:
    return decode(payload)[0]


def run(coro: Coroutine[Any, Any, Any], timeout: float = 15.0) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@contextmanager
def server_thread(handler: Any, **options: Any) -> Iterator[MLLPServer]:
    """A server on its own event loop thread, for blocking clients and raw sockets; fails on loop errors."""
    loop = asyncio.new_event_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = MLLPServer(handler, clock=lambda: NOW, **options)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert not loop_errors


def raw_connection(server: MLLPServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def assert_closed(sock: socket.socket, within: float = 3.0) -> None:
    """The server closed this connection without sending a reply."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    assert received == b""


def assert_answers(server: MLLPServer, control_id: str = "FRESH") -> None:
    with SyncMLLPClient(server.host, server.port, timeout=5) as client:
        reply = reply_of(client.send(good(control_id)))
    assert reply.get("MSA", 1) == "AA"
    assert reply.get("MSA", 2) == control_id


class NameEcho(HL7Handler):
    """Puts the request's PID-5 names (family^given per repetition) into the reply's PID-5."""

    async def handle(self, message: Message) -> Message | None:
        reply = self.ack(message, "AA")
        pid = message.segments("PID")[0]
        names = [[pid.get(5, i, comp=1), pid.get(5, i, comp=2)] for i in range(len(pid.repetitions(5)))]
        reply.add("PID", {5: Repeated(*names)})
        return reply


class Boom(HL7Handler):
    async def handle(self, message: Message) -> Message | None:
        if message.control_id == "BOOM":
            raise RuntimeError("application bug")
        return await super().handle(message)


# ------------------------------------------------------------------------------------------- server


def test_many_messages_on_one_connection_are_answered_in_order() -> None:
    async def scenario() -> None:
        server = await serve_echo(clock=lambda: NOW)
        try:
            async with MLLPClient(server.host, server.port, timeout=5) as client:
                for i in range(50):
                    assert reply_of(await client.send(good(f"S{i}"))).get("MSA", 2) == f"S{i}"
                for i in range(200):  # pipelined: all written before any reply is read
                    await client.write(good(f"P{i}"))
                for i in range(200):
                    reply = reply_of(await client.read())
                    assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AA", f"P{i}")
            assert server.stats.connections == 1
            assert server.stats.replies == 250
        finally:
            await server.stop()

    run(scenario())


def test_fifty_concurrent_connections() -> None:
    async def one(port: int, n: int) -> list[str]:
        async with MLLPClient("127.0.0.1", port, timeout=10) as client:
            return [reply_of(await client.send(good(f"C{n}-{i}"))).get("MSA", 2) for i in range(10)]

    async def scenario() -> None:
        async with MLLPServer(EchoHandler(), clock=lambda: NOW) as server:
            results = await asyncio.gather(*(one(server.port, n) for n in range(50)))
            assert results == [[f"C{n}-{i}" for i in range(10)] for n in range(50)]
            assert server.stats.connections == 50

    run(scenario())


@pytest.mark.parametrize(
    ("charset", "codec", "names"),
    [("~ISO IR87", ISO2022_JP, JIS_NAMES), ("UNICODE UTF-8", UTF8, UTF8_NAMES)],
)
def test_japanese_names_round_trip_in_the_request_charset(charset: str, codec: str, names: str) -> None:
    body = f"EVN|A01|20250401093000\rPID|1||P123^^^FAC_A&1.2.392.100&ISO||{names}||19700101|F\r"
    request = hl7("JP1", charset=charset, version="2.3.1", body=body).encode(codec)
    if codec == ISO2022_JP:
        kanji = names.encode(codec)
        assert all(d in kanji for d in b"|^~\\&")  # a byte splitter would cut these names apart
    with server_thread(NameEcho()) as server, SyncMLLPClient(server.host, server.port) as client:
        payload = client.send(request)
    assert charset_of(payload) == codec
    reply, used = decode(payload)
    assert used == codec
    assert reply.charset_field == charset
    assert reply.get("MSA", 2) == "JP1"
    assert reply.segment("PID") is not None
    assert reply.segments("PID")[0].field(5) == names
    assert reply.get("PID", 5, rep=1, comp=1) == names.split("~")[1].split("^")[0]


def test_unknown_charset_gets_ar_and_the_connection_keeps_working() -> None:
    with server_thread(HL7Handler()) as server, SyncMLLPClient(server.host, server.port) as client:
        reply = reply_of(client.send(hl7("CS1", charset="8859/1").encode("latin-1")))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "CS1")
        assert reply.get("ERR", 2) == "MSH^1^18"
        assert reply.get("ERR", 3, comp=1) == "103"
        assert reply.charset_field == ""  # answered in ASCII, declared as such
        assert reply_of(client.send(good("CS2"))).get("MSA", 2) == "CS2"


def test_unusable_encoding_characters_get_ar() -> None:
    request = hl7("ENC").replace("^~\\&", "^^^^", 1).encode("ascii")
    with server_thread(HL7Handler()) as server, SyncMLLPClient(server.host, server.port) as client:
        reply = reply_of(client.send(request))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "ENC")
        assert (reply.get("ERR", 2), reply.get("ERR", 3, comp=1)) == ("MSH^1^2", "102")


@pytest.mark.parametrize(
    ("charset", "bad"),
    [("~ISO IR87", b"\x1b$B\x7f\x7f\x1b(B"), ("UNICODE UTF-8", b"\xff\xfe"), ("", "山田".encode())],
)
def test_undecodable_bytes_get_ar_and_the_connection_keeps_working(charset: str, bad: bytes) -> None:
    request = hl7("BAD", charset=charset).encode("ascii") + b"PID|1||P1||" + bad + b"\r"
    with server_thread(HL7Handler()) as server, SyncMLLPClient(server.host, server.port) as client:
        reply = reply_of(client.send(request))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "BAD")
        assert reply.get("ERR", 2) == "PID^1"
        assert reply.get("ERR", 3) == "102^Data type error^HL70357"
        assert reply.charset_field == charset
        assert reply_of(client.send(good("NEXT"))).get("MSA", 2) == "NEXT"


def test_garbage_without_start_byte_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator.hub.mllp")
    with server_thread(EchoHandler()) as server:
        with SyncMLLPClient(server.host, server.port) as other:
            with raw_connection(server) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + frame_of(good("X")))
                assert_closed(sock)
            assert reply_of(other.send(good("OTHER"))).get("MSA", 2) == "OTHER"
        assert_answers(server)
        assert server.stats.framing_errors == 1
    assert any("start byte" in r.getMessage() for r in caplog.records)


def frame_of(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


def test_truncated_frame_then_close() -> None:
    with server_thread(EchoHandler()) as server:
        with raw_connection(server) as sock:
            sock.sendall(START_BLOCK + good("T")[:30])
            sock.shutdown(socket.SHUT_WR)
            assert_closed(sock)
        assert server.stats.truncated == 1
        assert server.stats.messages == 0
        assert_answers(server)


def test_start_byte_inside_a_block_closes() -> None:
    with server_thread(EchoHandler()) as server:
        with raw_connection(server) as sock:
            sock.sendall(START_BLOCK + good("A")[:30] + frame_of(good("B")))
            assert_closed(sock)
        assert server.stats.framing_errors == 1
        assert_answers(server)


def test_oversize_frame_closes_and_the_limit_is_inclusive() -> None:
    limit = 1024
    base = good("BIG")
    exact = base + b"ZZZ|" + b"x" * (limit - len(base) - 5) + b"\r"
    assert len(exact) == limit
    with server_thread(EchoHandler(), max_message_bytes=limit) as server:
        with SyncMLLPClient(server.host, server.port) as client:
            assert reply_of(client.send(exact)).get("MSA", 2) == "BIG"
        with raw_connection(server) as sock:
            sock.sendall(frame_of(exact.replace(b"ZZZ|", b"ZZZ|y")))
            assert_closed(sock)
        with raw_connection(server) as sock:  # no end in sight: the server must not buffer forever
            sock.sendall(START_BLOCK + b"x" * (20 * limit))
            assert_closed(sock)
        assert server.stats.oversize == 2
        assert_answers(server)


def test_message_without_msh_closes_and_msh_not_first_gets_ar() -> None:
    with server_thread(HL7Handler()) as server:
        with raw_connection(server) as sock:
            sock.sendall(frame_of(b"PID|1||P1||YAMADA^TARO\r"))
            assert_closed(sock)
        with SyncMLLPClient(server.host, server.port) as client:
            reply = reply_of(client.send(b"EVN|A01\r" + good("NF")))
            assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "NF")
            assert reply.get("ERR", 2) == "EVN^1"
            assert reply.get("ERR", 3, comp=1) == "100"


def test_failed_basic_checks_get_ar_with_every_problem() -> None:
    request = hl7("", version="").replace("QBP^Q23^QBP_Q21", "QBP").encode("ascii")
    with server_thread(HL7Handler()) as server, SyncMLLPClient(server.host, server.port) as client:
        reply = reply_of(client.send(request))
        assert reply.get("MSA", 1) == "AR"
        errs = [(e.get(2), e.get(3, comp=1)) for e in reply.segments("ERR")]
        assert errs == [("MSH^1^9^1^2", "101"), ("MSH^1^10", "101"), ("MSH^1^12", "101")]


def test_handler_exception_gets_ae_207_and_the_next_message_is_answered() -> None:
    with server_thread(Boom()) as server, SyncMLLPClient(server.host, server.port) as client:
        reply = reply_of(client.send(good("BOOM")))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AE", "BOOM")
        assert reply.get("ERR", 3) == "207^Application internal error^HL70357"
        assert reply.get("ERR", 4) == "E"
        assert reply_of(client.send(good("AFTER"))).get("MSA", 2) == "AFTER"
        assert server.stats.handler_errors == 1


def test_raw_handler_exception_without_msh_closes() -> None:
    async def broken(raw: bytes) -> bytes | None:
        raise ValueError("nope")

    with server_thread(broken) as server:
        with raw_connection(server) as sock:
            sock.sendall(frame_of(b"not hl7 at all"))
            assert_closed(sock)
        with raw_connection(server) as sock:
            sock.sendall(frame_of(good("RAW")))
            sock.settimeout(3)
            assert reply_of(sock.recv(65536)[1:-2]).get("MSA", 1) == "AE"


def test_idle_timeout_closes_idle_and_unfinished_connections() -> None:
    with server_thread(EchoHandler(), idle_timeout=0.3) as server:
        started = time.monotonic()
        with raw_connection(server) as sock:
            assert_closed(sock)
        with raw_connection(server) as sock:
            sock.sendall(START_BLOCK + b"MSH|^~\\&|")
            assert_closed(sock)
        assert time.monotonic() - started < 2.5
        assert (server.stats.idle_closed, server.stats.truncated) == (1, 1)
        with SyncMLLPClient(server.host, server.port) as client:  # activity keeps a connection open
            for i in range(3):
                time.sleep(0.15)
                assert reply_of(client.send(good(f"K{i}"))).get("MSA", 2) == f"K{i}"


def test_stop_delivers_the_reply_in_flight() -> None:
    class Slow(HL7Handler):
        async def handle(self, message: Message) -> Message | None:
            await asyncio.sleep(0.3)
            return self.ack(message, "AA")

    async def scenario() -> None:
        server = MLLPServer(Slow())
        await server.start()
        idle = MLLPClient(server.host, server.port, timeout=5)
        await idle.connect()
        async with MLLPClient(server.host, server.port, timeout=5) as client:
            pending = asyncio.create_task(client.send(good("LAST")))
            await asyncio.sleep(0.1)
            await server.stop()
            assert reply_of(await pending).get("MSA", 2) == "LAST"
        with pytest.raises(ConnectionClosedError):
            await idle.read()
        await idle.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(server.host, server.port)

    run(scenario())


def test_sync_client_reads_fragmented_replies() -> None:
    reply = ack(parse(hl7("FRAG")), "AA", control_id="R1", now=NOW).encode("ascii")
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def dribble() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                for i in range(0, len(reply) + 3, 7):
                    conn.sendall(frame_of(reply)[i : i + 7])
                    time.sleep(0.001)

        thread = threading.Thread(target=dribble)
        thread.start()
        with SyncMLLPClient("127.0.0.1", listener.getsockname()[1], timeout=5) as client:
            assert client.send(good("FRAG")) == reply
        thread.join(5)


_garbage = st.one_of(
    st.binary(max_size=3000),
    st.binary(max_size=500).map(lambda b: START_BLOCK + b + END_BLOCK),
    st.binary(max_size=500).map(lambda b: START_BLOCK + b"MSH|^~\\&|" + b + END_BLOCK),
    st.lists(
        st.sampled_from([START_BLOCK, END_BLOCK, b"MSH|^~\\&|", b"|", b"\r", b"\x1b$B", b"~ISO IR87"])
    ).map(b"".join),
)


def test_arbitrary_bytes_never_break_the_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with server_thread(HL7Handler(), max_message_bytes=4096, idle_timeout=5) as server:

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=_garbage)
        def check(data: bytes) -> None:
            with raw_connection(server) as sock, suppress(OSError):  # the server may have closed on us
                sock.sendall(data)
            assert_answers(server, "AFTER")

        check()
    assert not [r for r in caplog.records if "unexpected" in r.getMessage()]


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
