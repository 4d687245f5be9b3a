"""hl7wire's blocking MLLP client against scripted servers on 127.0.0.1: fragmented and large replies,
charsets by MSH-18, closes and resets mid-reply, the size bound, the reply deadline, TLS.

Each scripted server is a thread on a real socket that reads one request block and answers it as the test
says (in pieces, slowly, not at all), so the client meets what networks and broken peers really do.
"""

from __future__ import annotations

import ast
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

import hl7wire
from hl7wire import (
    ISO2022_JP,
    UTF8,
    BlockingClient,
    ConnectionClosedError,
    Deframer,
    FramingError,
    Message,
    Raw,
    ack,
    decode,
    frame,
    parse,
)
from simulator.pki import ensure_pki
from tests.test_hl7wire import JIS_NAMES, NOW, hl7


class Peer:
    """The server's end of one connection: a socket and the requests read from it so far."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = Deframer(1 << 20)

    def read_block(self) -> bytes:
        while (block := self.frames.next_block()) is None:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client went away")
            self.frames.feed(chunk)
        return block

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)


Respond = Callable[[Peer, bytes], None]
"""What a scripted server does with a connection once it has read the request's payload."""


@contextmanager
def scripted(respond: Respond, tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, int]]:
    """A one-connection server: read a request, ``respond``; errors in the thread fail the test."""
    errors: list[BaseException] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            if tls is not None:
                try:
                    conn = tls.wrap_socket(conn, server_side=True)
                    peer = Peer(conn)
                    request = peer.read_block()
                except OSError:  # ssl.SSLError is one
                    conn.close()  # a refused handshake: what the test looks at is the client's side
                    return
            else:
                peer = Peer(conn)
                request = peer.read_block()
            with conn:
                respond(peer, request)
        except BaseException as exc:  # (reported by the test thread)
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", listener.getsockname()[1]
    finally:
        thread.join(10)
        listener.close()
    assert not errors, errors


def _in_pieces(data: bytes, seed: int, largest: int = 3000) -> Iterator[bytes]:
    rnd = random.Random(seed)
    i = 0
    while i < len(data):
        size = rnd.randint(1, largest)
        yield data[i : i + size]
        i += size


def _rsp(request: bytes, patients: int, codec: str, msh18: str) -> bytes:
    """An RSP^K22 answering ``request`` with ``patients`` PID segments of kanji names."""
    query = parse(request.decode(codec))
    kind = {"message_type": "RSP", "event": "K22", "structure": "RSP_K21"}
    reply = ack(query, "AA", control_id="R1", now=NOW, charset=msh18, **kind)
    reply.add("QAK", [query.get("QPD", 2), "OK"])
    for n in range(patients):
        reply.add("PID", {1: str(n + 1), 3: [f"ID{n:06d}", "", "", "FAC_A"], 5: [JIS_NAMES, "花子"]})
    return reply.encode(codec)


def test_a_pdq_answer_over_64_kb_arrives_whole_however_it_is_written() -> None:
    payload: list[bytes] = []

    def respond(conn: Peer, request: bytes) -> None:
        payload.append(_rsp(request, 1500, UTF8, "UNICODE UTF-8"))
        for piece in _in_pieces(frame(payload[0]), seed=7):
            conn.sendall(piece)
            time.sleep(0.0002 if len(piece) % 5 == 0 else 0)

    query = hl7("PDQ1", charset="UNICODE UTF-8")
    with scripted(respond) as (host, port), BlockingClient(host, port, timeout=10) as client:
        reply, codec = client.send_message(query)
    assert len(payload[0]) > 64 * 1024
    assert codec == UTF8
    assert reply.to_er7().encode(UTF8) == payload[0]
    pids = reply.segments("PID")
    assert len(pids) == 1500
    assert pids[-1].get(3, comp=1) == "ID001499"
    assert pids[0].get(5, comp=1) == JIS_NAMES  # sent escaped (五十嵐\\S\\京子…), read back whole


@pytest.mark.parametrize(("msh18", "codec"), [("~ISO IR87", ISO2022_JP), ("UNICODE UTF-8", UTF8)])
def test_replies_are_decoded_by_their_own_msh18(msh18: str, codec: str) -> None:
    """The request goes in the charset its MSH-18 names; the reply is read in the one *its* MSH-18 names."""
    seen: list[str] = []

    def respond(conn: Peer, request: bytes) -> None:
        seen.append(request.decode(codec))
        conn.sendall(frame(_rsp(request, 3, codec, msh18)))

    request = Message()
    request.add(
        "MSH", {3: "APP", 4: "FAC_A", 9: ["QBP", "Q22", "QBP_Q21"], 10: "C1", 12: "2.5", 18: Raw(msh18)}
    )
    request.add("QPD", ["IHE PDQ Query", "Q1", [["@PID.5.1"], JIS_NAMES]])
    with scripted(respond) as (host, port), BlockingClient(host, port) as client:
        reply, got = client.send_message(request)
    assert got == codec
    assert parse(seen[0]).get("QPD", 3, comp=2) == JIS_NAMES  # JIS bytes equal to | ^ ~ did not split it
    assert reply.get("MSA", 2) == "C1"
    assert [p.get(5, comp=2) for p in reply.segments("PID")] == ["花子"] * 3
    assert reply.get("PID", 5, comp=1, index=2) == JIS_NAMES


def test_a_server_closing_mid_reply_is_a_clear_error() -> None:
    def respond(conn: Peer, request: bytes) -> None:
        conn.sendall(frame(_rsp(request, 50, UTF8, "UNICODE UTF-8"))[:1000])

    with (
        scripted(respond) as (host, port),
        BlockingClient(host, port, timeout=5) as client,
        pytest.raises(ConnectionClosedError, match="closed after 1000 bytes of a reply"),
    ):
        client.send(hl7("CUT").encode())


def test_a_reset_mid_reply_is_a_connection_closed_error_with_its_cause() -> None:
    def respond(conn: Peer, request: bytes) -> None:
        conn.sendall(frame(_rsp(request, 50, UTF8, "UNICODE UTF-8"))[:500])
        time.sleep(0.05)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

    with (
        scripted(respond) as (host, port),
        BlockingClient(host, port, timeout=5) as client,
        pytest.raises(ConnectionClosedError) as closed,
    ):
        client.send(hl7("RST").encode())
    assert isinstance(closed.value.__cause__, ConnectionResetError)
    assert "connection lost after" in str(closed.value)


def test_a_reply_over_the_bound_is_refused_before_it_ends() -> None:
    """The server sends 2 MB and never the end block; the client stops at its 64 KB bound, not at EOF."""
    stop = threading.Event()

    def respond(conn: Peer, request: bytes) -> None:
        with suppress(OSError):  # the client closes on us: what it should do
            conn.sendall(b"\x0bMSH|^~\\&|" + b"X" * 2_000_000)
        stop.wait(5)

    started = time.monotonic()
    with scripted(respond) as (host, port), BlockingClient(host, port, max_message_bytes=65536) as client:
        with pytest.raises(FramingError, match="larger than 65536 bytes"):
            client.send(hl7("BIG").encode())
        stop.set()
    assert time.monotonic() - started < 4


def test_the_timeout_bounds_the_whole_reply_not_each_recv() -> None:
    """A peer dribbling a byte every 50 ms never lets a per-recv timeout of 0.4 s pass; the deadline does."""
    stop = threading.Event()

    def respond(conn: Peer, request: bytes) -> None:
        conn.sendall(b"\x0bMSH|")
        while not stop.wait(0.05):
            try:
                conn.sendall(b"x")
            except OSError:
                return

    with scripted(respond) as (host, port), BlockingClient(host, port, timeout=0.4) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no whole reply within 0\.4 s"):
            client.send(hl7("SLOW").encode())
        took = time.monotonic() - started
        stop.set()
    assert 0.35 < took < 1.5


def test_pipelined_replies_and_a_reply_without_start_byte() -> None:
    def respond(conn: Peer, request: bytes) -> None:
        conn.read_block()  # the second request
        conn.sendall(frame(b"MSH|^~\\&|ONE") + frame(b"MSH|^~\\&|TWO") + b"MSH|^~\\&|BARE\x1c\r")

    with scripted(respond) as (host, port), BlockingClient(host, port) as client:
        client.write(b"MSH|^~\\&|Q1")
        client.write(b"MSH|^~\\&|Q2")
        assert client.read() == b"MSH|^~\\&|ONE"
        assert client.read() == b"MSH|^~\\&|TWO"
        with pytest.raises(FramingError) as bare:
            client.read()
        assert bare.value.block == b"MSH|^~\\&|BARE"
        time.sleep(0.2)
        assert client.peer_closed()


def test_peer_closed_does_not_block_and_keeps_early_bytes() -> None:
    go = threading.Event()

    def respond(conn: Peer, request: bytes) -> None:
        conn.sendall(frame(b"MSH|^~\\&|A"))
        go.wait(5)
        conn.sendall(frame(b"MSH|^~\\&|B"))

    with scripted(respond) as (host, port), BlockingClient(host, port, timeout=5) as client:
        assert client.send(b"MSH|^~\\&|Q") == b"MSH|^~\\&|A"
        started = time.monotonic()
        assert not client.peer_closed()
        assert time.monotonic() - started < 0.5
        go.set()
        time.sleep(0.2)
        assert not client.peer_closed()  # B came meanwhile: it is kept, not lost
        assert client.read() == b"MSH|^~\\&|B"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    """(server context requiring a client certificate, a facility's client context, one without a cert)."""
    made = ensure_pki(tmp_path_factory.mktemp("pki"), ["FAC_A"])
    return made.server_context(), made.client_tls().context("FAC_A"), made.client_tls().context(None)


def test_mllp_over_tls(pki: tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client_tls, _ = pki

    def respond(conn: Peer, request: bytes) -> None:
        for piece in _in_pieces(frame(_rsp(request, 400, ISO2022_JP, "~ISO IR87")), seed=3, largest=900):
            conn.sendall(piece)

    query = hl7("TLS1", charset="~ISO IR87")
    with scripted(respond, server) as (host, port), BlockingClient(host, port, tls=client_tls) as client:
        reply, codec = client.send_message(query)
    assert codec == ISO2022_JP
    assert len(reply.segments("PID")) == 400
    assert reply.get("MSA", 2) == "TLS1"


@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_a_half_close_keeps_what_came_before_readable(
    pki: tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext], transport: str
) -> None:
    """A truncated block and a half-close (a scenario's ``eof``): what the server sent before is still read
    as a reply, on TLS too, and then its close. On TLS the half-close is TCP's, under the TLS layer:
    ``SSLSocket.shutdown`` drops that layer, and the encrypted records (a TLS 1.3 server's session tickets,
    a reply) were then read raw — now and then framed by chance, a reply where none was (a flaky scenario)."""
    server, client_tls, _ = pki
    answered = threading.Event()

    def respond(conn: Peer, request: bytes) -> None:
        conn.sendall(frame(b"MSH|^~\\&|BEFORE-EOF"))
        answered.set()
        while conn.sock.recv(65536):
            pass  # the truncated block, up to the client's EOF; then the server closes

    tls = (server, client_tls) if transport == "tls" else (None, None)
    with (
        scripted(respond, tls[0]) as (host, port),
        BlockingClient(host, port, timeout=5, tls=tls[1]) as client,
    ):
        client.write_raw(frame(b"MSH|^~\\&|REQUEST"))
        assert answered.wait(5)
        time.sleep(0.1)  # the reply's records are in the client's socket buffer, unread
        client.write_raw(b"\x0bMSH|^~\\&|CUT")
        client.shutdown_write()
        assert client.read() == b"MSH|^~\\&|BEFORE-EOF"
        with pytest.raises(ConnectionClosedError):
            client.read()


@pytest.mark.parametrize("who", ["no certificate", "plain MLLP"])
def test_a_refused_tls_connection_is_a_connection_closed_error(
    pki: tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext], who: str
) -> None:
    """TLS 1.2 refuses in the handshake (HandshakeError), TLS 1.3 after it (at the read): both are closes."""
    server, _, no_cert = pki

    def respond(conn: Peer, request: bytes) -> None:
        raise AssertionError("a refused client must not be answered")

    tls = no_cert if who == "no certificate" else None

    def attempt(host: str, port: int) -> None:
        with BlockingClient(host, port, timeout=5, tls=tls) as client:
            client.send(hl7("NOPE").encode())

    with scripted(respond, server) as (host, port), pytest.raises(ConnectionClosedError):
        attempt(host, port)


def test_the_blocking_client_needs_no_event_loop() -> None:
    """gevent-friendly: the client and everything it imports use plain sockets, never asyncio."""
    package = Path(hl7wire.__file__).parent
    seen, todo = set(), ["client"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "asyncio" for a in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "asyncio", name
                if node.level == 1 and node.module:
                    todo.append(node.module)
    assert {"client", "framing", "parse", "model", "charset"} <= seen
    assert "aio" not in seen


def test_decode_of_what_the_client_returns_is_the_message_level_call() -> None:
    """``send_message`` is ``decode(send(encode(...)))``: same answer as doing it by hand."""

    def respond(conn: Peer, request: bytes) -> None:
        conn.sendall(frame(_rsp(request, 2, UTF8, "UNICODE UTF-8")))
        conn.sendall(frame(_rsp(conn.read_block(), 2, UTF8, "UNICODE UTF-8")))

    query = hl7("SAME", charset="UNICODE UTF-8")
    with scripted(respond) as (host, port), BlockingClient(host, port) as client:
        by_hand = decode(client.send(query.encode(UTF8)))
        message_level = client.send_message(query)
    assert by_hand[1] == message_level[1] == UTF8
    assert by_hand[0].to_er7() == message_level[0].to_er7()
