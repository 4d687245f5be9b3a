"""The hub's per-message timing trace (:mod:`simulator.hub.msgtrace`) and the split of a load run's MLLP
requests it allows (:mod:`harness.load.msgsplit`)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest

from harness.load.msgsplit import (
    Split,
    TraceLine,
    bands,
    main,
    match,
    match_client,
    read_client_trace,
    read_trace,
    render,
    render_client,
)
from harness.load.stats import RawRow
from hl7wire import MLLPClient
from loadtests.mllp import MllpSession, client_trace, close_client_trace
from simulator.hub.mllp import serve_echo
from simulator.hub.msgtrace import CLIENT_ENV, ENV, MessageTrace, message_kind, schedstat
from tests.test_hl7wire import NOW, hl7
from tests.test_mllp import run


def test_message_kind_is_read_from_the_blocks_bytes() -> None:
    assert message_kind(hl7("C1").encode("ascii")) == "QBP^Q23"
    adt = b"MSH|^~\\&|S|F|R|R|20250401||ADT^A04^ADT_A01|1|P|2.5\rPID|||1\r"
    assert message_kind(adt) == "ADT^A04"
    assert message_kind(b"MSH#^~\\&#S#F#R#R#2025##ADT^A08#1#P#2.5\r") == "ADT^A08"  # its own separator
    # the sender's bytes: a comma or a non-ASCII byte would break the trace's lines
    assert message_kind(b"MSH|^~\\&|S|F|R|R|2025||AD,T^A\xe904|1\r") == "AD?T^A?04"
    # the MSH line ends at LF as well as CR (as the handler reads it): MSH-9 is what precedes the LF
    assert message_kind(b"MSH|^~\\&|S|F|R|R|2025||AD\nT^A04|1\r") == "AD"
    # a kanji MSH-4 in ISO-2022-JP whose bytes hold 0x7C and 0x5E (滯 is ESC $ B ^ | ESC ( B) is decoded
    # whole, not split at them
    kanji = "滯".encode("iso-2022-jp")
    assert b"|" in kanji
    assert b"^" in kanji
    assert message_kind(b"MSH|^~\\&|S|" + kanji + b"|R|R|2025||ADT^A04|1|P|2.5||||||~ISO IR87\r") == "ADT^A04"
    assert message_kind(b"MSH|^~\\&|S|F|R|R|2025||" + b"A" * 5000 + b"^A04|1\r") == "A" * 16 + "^A04"
    for bad in (b"", b"PID|1", b"MSH|^~\\&|S|F\r", b"MSH"):
        assert message_kind(bad) == "?"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux's")
def test_schedstat_reads_this_threads_cpu() -> None:
    cpu0, wait0 = schedstat()
    sum(i * i for i in range(300_000))
    cpu1, wait1 = schedstat()
    assert cpu0 >= 0
    assert wait0 >= 0
    assert cpu1 - cpu0 > 1_000_000  # the loop above costs well over a millisecond
    assert wait1 >= wait0


def test_the_server_traces_each_message_when_the_environment_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "trace.csv"
    monkeypatch.setenv(ENV, str(path))
    trace = MessageTrace.from_env()
    assert trace is not None
    monkeypatch.delenv(ENV)
    assert MessageTrace.from_env() is None

    async def scenario() -> None:
        server = await serve_echo(clock=lambda: NOW, trace=trace)
        try:
            async with MLLPClient(server.host, server.port, timeout=5) as client:
                for i in range(5):
                    await client.send(hl7(f"T{i}").encode("ascii"))
        finally:
            await server.stop()
            trace.close()

    run(scenario())
    lines = read_trace(path)
    assert [x.kind for x in lines] == ["QBP^Q23"] * 5
    for x in lines:
        assert 0 <= x.end - x.start < 5
        if sys.platform.startswith("linux"):
            assert x.cpu_s is not None
            assert x.cpu_s > 0
            assert x.runq_s is not None
            assert x.runq_s >= 0


def _row(end: float, ms: float, name: str = "pix") -> RawRow:
    return RawRow(end, name, ms, True, "", "F", 1, 0)


def test_requests_are_matched_to_the_one_message_inside_them() -> None:
    trace = [
        TraceLine(10.001, 10.003, "QBP^Q23", 0.0015, 0.0002),
        TraceLine(20.000, 20.001, "QBP^Q23", 0.0005, 0.0),
        TraceLine(20.0002, 20.0012, "QBP^Q23", 0.0005, 0.0),  # overlaps the one above: ambiguous
        TraceLine(30.001, 30.002, "ADT^A04", None, None),  # another kind, and no schedstat
    ]
    rows = [_row(10.004, 4.0), _row(20.002, 3.0), _row(40.0, 1.0), _row(30.003, 3.0, "feed_join")]
    asked, splits = match(rows, trace, "pix", "QBP^Q23")
    assert asked == 3
    assert len(splits) == 1
    s = splits[0]
    assert (s.total, s.before, s.handling, s.after) == pytest.approx((0.004, 0.001, 0.002, 0.001))
    assert s.asleep == pytest.approx(0.002 - 0.0015 - 0.0002)
    asked, feeds = match(rows, trace, "feed_join", "ADT^")
    assert asked == 1
    assert feeds[0].asleep is None
    assert "pix (QBP^Q23): 1 of 3 requests matched" in render(rows, trace)


def test_bands_are_means_of_each_part_by_total_latency() -> None:
    splits = [Split(t / 1000, 0.0, t / 1000, 0.0, t / 2000, 0.0) for t in range(1, 101)]  # 1..100 ms
    table = dict(bands(splits))
    low, top = table[(0.0, 0.5)], table[(0.95, 1.0)]
    assert [m["n"] for m in table.values()] == [50, 40, 5, 5]
    assert low["total"] == pytest.approx(25.5)
    assert low["cpu"] == pytest.approx(12.75)
    assert top["total"] == pytest.approx(98.0)
    assert top["asleep"] == pytest.approx(49.0)


def test_a_bad_trace_line_is_named_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("1.0,1.1,ADT^A04,100,0\n1.2,oops\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"trace\.csv:2: not a message trace line"):
        read_trace(path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "raw.csv").write_text("t,name,ms,ok,reason,facility,worker,size\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "run"), str(path)])
    assert "trace.csv:2" in capsys.readouterr().err


def test_a_trace_that_cannot_write_stops_and_the_messages_are_still_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk under the trace must not turn a handled message into an error reply."""
    trace = MessageTrace(tmp_path / "trace.csv")
    trace.FLUSH_LINES = 1  # every message writes

    def full(lines: object) -> None:
        raise OSError(28, "No space left on device")

    assert trace._file is not None
    trace._file.writelines = full  # type: ignore[method-assign]

    async def scenario() -> list[str]:
        server = await serve_echo(clock=lambda: NOW, trace=trace)
        try:
            async with MLLPClient(server.host, server.port, timeout=5) as client:
                return [(await client.send(hl7(f"D{i}").encode("ascii"))).decode() for i in range(3)]
        finally:
            await server.stop()
            trace.close()

    replies = run(scenario())
    assert all("MSA|AA|D" in r for r in replies)
    assert "tracing stopped" in caplog.text
    assert trace._file is None


def test_the_load_generators_trace_joins_the_hubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust's half (:func:`loadtests.mllp.client_trace`), written by the real client against a traced
    echo server, matches every exchange to its hub line and splits it in order: send, to the hub, the
    hub's handling, back."""
    hub_path, prefix = tmp_path / "hub.csv", tmp_path / "cli"
    monkeypatch.setenv(CLIENT_ENV, str(prefix))
    hub_trace = MessageTrace(hub_path)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(serve_echo(clock=lambda: NOW, trace=hub_trace), loop).result(10)
    session = MllpSession(server.host, server.port, tls=None, timeout=5)
    try:
        for i in range(6):
            assert session.exchange("pix", hl7(f"L{i}"), "ascii").code == "AA"
        assert client_trace() is not None
        close_client_trace()
        assert client_trace() is not None  # opened again on use: a new buffer for the same file
        close_client_trace()
    finally:
        session.close()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        hub_trace.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    files = list(tmp_path.glob("cli.*"))
    assert [f.name for f in files] == [f"cli.{os.getpid()}"]
    client = read_client_trace(files)
    assert [c.name for c in client] == ["pix"] * 6
    asked, splits = match_client(client, read_trace(hub_path), "pix", "QBP^Q23")
    assert (asked, len(splits)) == (6, 6)
    for c, s in zip(client, splits, strict=True):
        assert c.start <= c.sent <= c.end
        assert s.send is not None
        assert 0 <= s.send <= s.total  # not <= before: the hub may take the block before write() returns
        assert s.before >= 0
        assert s.before + s.handling + s.after == pytest.approx(s.total)
        assert min(s.handling, s.after) >= 0
        if sys.platform.startswith("linux"):
            assert s.client_cpu is not None
            assert s.client_cpu >= 0
    table = render_client(client, read_trace(hub_path))
    assert "pix (QBP^Q23): 6 of 6 exchanges matched" in table
    monkeypatch.delenv(CLIENT_ENV)
    assert client_trace() is None


def test_a_bad_client_trace_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cli.1"
    path.write_text("1.0,1.1,1.2,pix,5,0\n1.0,1.1,pix,5,0\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"cli\.1:2: not a client trace line"):
        read_client_trace([path])
