"""The hub's MLLP server on real sockets, with hl7wire's clients (the parser and clients: test_hl7wire*.py).

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
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hl7wire import (
    END_BLOCK,
    ISO2022_JP,
    START_BLOCK,
    UTF8,
    BlockingClient,
    ConnectionClosedError,
    Message,
    MLLPClient,
    Repeated,
    charset_of,
    decode,
)
from simulator.hub.mllp import EchoHandler, HL7Handler, MLLPServer, serve_echo
from tests.test_hl7wire import JIS_NAMES, NOW, UTF8_NAMES, hl7


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
    with BlockingClient(server.host, server.port, timeout=5) as client:
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
    with server_thread(NameEcho()) as server, BlockingClient(server.host, server.port) as client:
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
    with server_thread(HL7Handler()) as server, BlockingClient(server.host, server.port) as client:
        reply = reply_of(client.send(hl7("CS1", charset="8859/1").encode("latin-1")))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "CS1")
        assert reply.get("ERR", 2) == "MSH^1^18"
        assert reply.get("ERR", 3, comp=1) == "103"
        assert reply.charset_field == ""  # answered in ASCII, declared as such
        assert reply_of(client.send(good("CS2"))).get("MSA", 2) == "CS2"


def test_unusable_encoding_characters_get_ar() -> None:
    request = hl7("ENC").replace("^~\\&", "^^^^", 1).encode("ascii")
    with server_thread(HL7Handler()) as server, BlockingClient(server.host, server.port) as client:
        reply = reply_of(client.send(request))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "ENC")
        assert (reply.get("ERR", 2), reply.get("ERR", 3, comp=1)) == ("MSH^1^2", "102")


@pytest.mark.parametrize(
    ("charset", "bad"),
    [("~ISO IR87", b"\x1b$B\x7f\x7f\x1b(B"), ("UNICODE UTF-8", b"\xff\xfe"), ("", "山田".encode())],
)
def test_undecodable_bytes_get_ar_and_the_connection_keeps_working(charset: str, bad: bytes) -> None:
    request = hl7("BAD", charset=charset).encode("ascii") + b"PID|1||P1||" + bad + b"\r"
    with server_thread(HL7Handler()) as server, BlockingClient(server.host, server.port) as client:
        reply = reply_of(client.send(request))
        assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "BAD")
        assert reply.get("ERR", 2) == "PID^1"
        assert reply.get("ERR", 3) == "102^Data type error^HL70357"
        assert reply.charset_field == charset
        assert reply_of(client.send(good("NEXT"))).get("MSA", 2) == "NEXT"


def test_garbage_without_start_byte_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator.hub.mllp")
    with server_thread(EchoHandler()) as server:
        with BlockingClient(server.host, server.port) as other:
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
        with BlockingClient(server.host, server.port) as client:
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
        with BlockingClient(server.host, server.port) as client:
            reply = reply_of(client.send(b"EVN|A01\r" + good("NF")))
            assert (reply.get("MSA", 1), reply.get("MSA", 2)) == ("AR", "NF")
            assert reply.get("ERR", 2) == "EVN^1"
            assert reply.get("ERR", 3, comp=1) == "100"


def test_failed_basic_checks_get_ar_with_every_problem() -> None:
    request = hl7("", version="").replace("QBP^Q23^QBP_Q21", "QBP").encode("ascii")
    with server_thread(HL7Handler()) as server, BlockingClient(server.host, server.port) as client:
        reply = reply_of(client.send(request))
        assert reply.get("MSA", 1) == "AR"
        errs = [(e.get(2), e.get(3, comp=1)) for e in reply.segments("ERR")]
        assert errs == [("MSH^1^9^1^2", "101"), ("MSH^1^10", "101"), ("MSH^1^12", "101")]


def test_handler_exception_gets_ae_207_and_the_next_message_is_answered() -> None:
    with server_thread(Boom()) as server, BlockingClient(server.host, server.port) as client:
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
        with BlockingClient(server.host, server.port) as client:  # activity keeps a connection open
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
