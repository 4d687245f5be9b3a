"""Group-committed audit (:class:`AuditBatcher`): every caller waits for its own commit, the chain holds.

Real SQLite files in tmp_path; failures are real ones where possible (an entry that cannot be stored), and a
stand-in only for what cannot be provoked on demand (a COMMIT failing, a slow disk).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.hub.audit import AuditEntry, AuditLog, AuditRecord
from simulator.hub.auditbatch import AuditBatcher
from simulator.hub.auditchain import canonical_details, fields_json
from synthetic.clock import JST

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=JST)


def entry(n: int, patient: str = "", **details: Any) -> AuditEntry:
    return AuditEntry(
        time=T0 + dt.timedelta(seconds=n),
        actor_facility="1710000001",
        actor_user=f"u{n}",
        action="query",
        outcome="AA",
        patient=patient,
        target=f"JP1710000001|{n:06d}",
        details={"n": n, **details},
    )


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(20):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(tmp_path / "audit.sqlite") as opened:
        yield opened


def committed(path: Path) -> list[tuple[int, str]]:
    """(seq, actor_user) as another connection sees them: only what is committed."""
    with closing(sqlite3.connect(path)) as other:
        return [(int(s), str(u)) for s, u in other.execute("SELECT seq, actor_user FROM audit ORDER BY seq")]


def test_concurrent_callers_are_grouped_and_the_chain_verifies(log: AuditLog) -> None:
    async def scenario() -> list[AuditRecord]:
        batcher = AuditBatcher(log)

        async def caller(k: int) -> list[AuditRecord]:
            got = []
            for i in range(25):
                got.append(await batcher.record(entry(k * 100 + i, patient=f"R{k:09d}")))
            return got

        results = await asyncio.gather(*(caller(k) for k in range(8)))
        commits = batcher.commits
        await batcher.close()
        assert commits < 200  # grouped: 8 callers at a time share commits
        return [r for rs in results for r in rs]

    records = run(scenario())
    assert len(records) == 200
    assert sorted(r.seq for r in records) == list(range(1, 201))
    assert log.verify() == []
    stored = {r.seq: r for r in log.records()}
    assert all(stored[r.seq] == r for r in records)  # what each caller got is what was committed
    assert [r.actor_user for r in log.records(patient="R000000003")] == [f"u{300 + i}" for i in range(25)]


def test_a_lone_caller_waits_for_company_at_most_once_after_callers_met(log: AuditLog) -> None:
    """Two records that meet raise the group size the writer waits for (up to GROUP_WAIT) to 2. A lone
    client then sending record after record must not wait GROUP_WAIT for each: the first wait that runs out
    short lowers the expectation. (It stayed up for a second: 0.25 → 1.3 ms per record.)"""

    async def scenario() -> tuple[int, list[int]]:
        batcher = AuditBatcher(log)
        waits: list[int] = []
        gather = batcher._gather

        async def counted(loop: asyncio.AbstractEventLoop) -> None:
            before = batcher._expected
            await gather(loop)
            waits.append(before)

        batcher._gather = counted  # type: ignore[method-assign]
        await asyncio.gather(*(batcher.record(entry(n)) for n in range(2)))
        raised = batcher._expected
        for n in range(2, 40):
            await batcher.record(entry(n))
        await batcher.close()
        return raised, waits

    raised, waits = run(scenario())
    assert raised == 2
    lone = waits[1:]  # the groups the lone caller's records formed
    assert len(lone) == 38
    assert sum(1 for expected in lone if expected > 1) == 1  # one wait ran out short, then none
    assert log.verify() == []


def test_a_group_is_in_call_order_and_one_transaction(log: AuditLog) -> None:
    async def scenario() -> list[AuditRecord]:
        batcher = AuditBatcher(log)
        await batcher.record(entry(0))  # the writer is now idle: the next burst is one group
        before = batcher.commits
        tasks = [asyncio.create_task(batcher.record(entry(n))) for n in (5, 3, 9, 1, 7)]
        records = await asyncio.gather(*tasks)
        assert batcher.commits == before + 1
        await batcher.close()
        return records

    records = run(scenario())
    assert [r.actor_user for r in records] == ["u5", "u3", "u9", "u1", "u7"]
    assert [r.seq for r in records] == [2, 3, 4, 5, 6]
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert log.verify() == []


def test_record_many_is_consecutive(log: AuditLog) -> None:
    async def scenario() -> list[AuditRecord]:
        batcher = AuditBatcher(log)
        other = asyncio.create_task(batcher.record(entry(1)))
        await asyncio.sleep(0)  # ``other`` has submitted
        many = await batcher.record_many([entry(2), entry(3), entry(4)])
        assert (await other).seq == 1
        await batcher.close()
        return many

    many = run(scenario())
    assert [r.seq for r in many] == [2, 3, 4]
    assert log.verify() == []


def test_callers_that_came_together_are_waited_for(log: AuditLog) -> None:
    """The next records of callers that shared a group arrive spread out; they still share one commit."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = AuditBatcher(log)
        batcher.GROUP_WAIT = 0.5  # generous: the test must not depend on this machine's speed
        started = loop.time()
        await batcher.record(entry(0))  # a lone caller (groups of one so far) does not wait
        assert loop.time() - started < 0.4
        await asyncio.gather(*(batcher.record(entry(n)) for n in (1, 2, 3, 4)))  # came together
        before = batcher.commits

        async def later(n: int) -> AuditRecord:
            await asyncio.sleep(0.02 * n)  # their next records arrive 20 ms apart
            return await batcher.record(entry(10 + n))

        again = await asyncio.gather(*(later(n) for n in range(4)))
        assert batcher.commits == before + 1
        assert [r.actor_user for r in again] == ["u10", "u11", "u12", "u13"]
        await batcher.close()

    run(scenario())
    assert log.verify() == []


def test_close_commits_what_is_queued_and_then_refuses(log: AuditLog, tmp_path: Path) -> None:
    async def scenario() -> None:
        batcher = AuditBatcher(log)
        pending = [asyncio.create_task(batcher.record(entry(n))) for n in range(30)]
        await asyncio.sleep(0)  # every task has submitted; none has been answered yet
        await batcher.close()
        assert all(t.done() for t in pending)
        assert [t.result().seq for t in pending] == list(range(1, 31))
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.record(entry(99))

    run(scenario())
    assert len(committed(tmp_path / "audit.sqlite")) == 30


def test_an_entry_that_cannot_be_stored_fails_its_whole_group_only(log: AuditLog) -> None:
    async def scenario() -> None:
        batcher = AuditBatcher(log)
        await batcher.record(entry(0))
        group = [
            asyncio.create_task(batcher.record(entry(1))),
            asyncio.create_task(batcher.record(entry(2, bad=object()))),  # not JSON: the group fails
            asyncio.create_task(batcher.record(entry(3))),
        ]
        outcomes = await asyncio.gather(*group, return_exceptions=True)
        assert all(isinstance(o, TypeError) for o in outcomes), outcomes
        after = await batcher.record(entry(4))  # the log is unlocked and the chain goes on
        assert after.seq == 2
        await batcher.close()

    run(scenario())
    assert [r.actor_user for r in log.records()] == ["u0", "u4"]
    assert log.verify() == []


def test_a_failed_commit_reaches_every_caller_and_unlocks(
    log: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_finish = log._finish
    failures = iter([sqlite3.OperationalError("disk I/O error")])

    def flaky_finish() -> None:
        failure = next(failures, None)
        if failure is None:
            real_finish()
            return
        log._db.execute("ROLLBACK")  # what SQLite does when the WAL cannot be written
        log._lock.release()
        raise failure

    monkeypatch.setattr(log, "_finish", flaky_finish)

    async def scenario() -> None:
        batcher = AuditBatcher(log)
        group = [asyncio.create_task(batcher.record(entry(n))) for n in range(4)]
        outcomes = await asyncio.gather(*group, return_exceptions=True)
        assert [type(o) for o in outcomes] == [sqlite3.OperationalError] * 4
        assert (await batcher.record(entry(9))).seq == 1  # nothing of the failed group was kept
        await batcher.close()

    run(scenario())
    assert committed(tmp_path / "audit.sqlite") == [(1, "u9")]
    assert log.verify() == []


def test_a_slow_disk_moves_commits_off_the_loop_and_answers_follow_them(
    log: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick COMMITs run on the loop; after a slow one (a busy disk) they wait on the thread, so the loop
    keeps serving, until one is quick again. Either way a caller hears only once its record is durable."""
    real_finish = log._finish
    delay = 0.0
    where: list[int] = []

    def finish() -> None:
        where.append(threading.get_ident())
        threading.Event().wait(delay)
        real_finish()

    monkeypatch.setattr(log, "_finish", finish)

    async def scenario() -> None:
        nonlocal delay
        loop = asyncio.get_running_loop()
        batcher = AuditBatcher(log)
        batcher.INLINE_COMMIT_LIMIT = 0.2  # any real fsync here is "quick"; the injected 0.3 s is "slow"
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        await batcher.record(entry(1))  # quick: on the loop
        delay = 0.3
        await batcher.record(entry(2))  # slow, still on the loop (nothing told it the disk was busy)
        ticks, started = 0, loop.time()
        record = await batcher.record(entry(3))  # on the thread now
        assert loop.time() - started >= 0.3
        assert ticks >= 10  # the loop kept running while the commit waited
        assert (record.seq, record.actor_user) in committed(tmp_path / "audit.sqlite")
        delay = 0.0
        await batcher.record(entry(4))  # quick again, seen on the thread
        await batcher.record(entry(5))  # so back on the loop
        ticking.cancel()
        await batcher.close()

    loop_thread = threading.get_ident()
    run(scenario())
    assert [ident == loop_thread for ident in where] == [True, True, False, False, True]
    assert log.verify() == []


def test_a_cancelled_caller_does_not_lose_its_record(log: AuditLog) -> None:
    async def scenario() -> None:
        batcher = AuditBatcher(log)
        doomed = asyncio.create_task(batcher.record(entry(1)))
        kept = asyncio.create_task(batcher.record(entry(2)))
        await asyncio.sleep(0)
        doomed.cancel()
        assert (await kept).seq == 2
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await batcher.close()

    run(scenario())
    assert [r.actor_user for r in log.records()] == ["u1", "u2"]  # the action happened; it stays audited


def test_the_batcher_belongs_to_one_loop(log: AuditLog) -> None:
    batcher = AuditBatcher(log)

    async def first() -> None:
        await batcher.record(entry(1))

    async def second() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            await batcher.record(entry(2))

    run(first())
    run(second())
    assert len(log.records()) == 1


_scalars = st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False))


@given(
    fields=st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=14),
    details=st.dictionaries(st.text(), _scalars | st.lists(st.text(), max_size=3), max_size=6),
)
def test_the_written_json_is_exactly_the_encoders(fields: list[object], details: dict[str, Any]) -> None:
    """The MAC'd text and the stored details must not depend on which path wrote the JSON: old records
    verify."""
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert fields_json(*fields) == expected
    assert canonical_details(details) == json.dumps(
        details, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
