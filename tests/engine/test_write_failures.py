"""A run whose journal write fails (a real SQLITE_FULL from ``max_page_count``) is retried with
backoff, then handed back instead of held: once space returns it completes, with every step
journaled exactly once. (tests/e2e/test_journal_lock.py does it across worker processes.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

import pytest

import bandmaster as bm

GATE: dict[str, asyncio.Event] = {}
FAST = bm.Retry(attempts=3, initial=0.01, multiplier=2.0, max_delay=0.05, retry_on=(bm.StoreError,))


@bm.step
async def chunk(i: int) -> str:
    if i == 3:
        await GATE["third"].wait()
    return f"{i}:" + "x" * 8_000  # every step needs new journal pages


@bm.workflow
async def chunks(n: int) -> int:
    total = 0
    for i in range(1, n + 1):
        total += len(await chunk(i))
    return total


def set_page_limit(engine: bm.Engine, pages: int | None) -> None:
    conn = engine.store._conn
    if pages is None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]  # full from the next new page on
    conn.execute(f"PRAGMA max_page_count = {pages}")


async def until(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_run_whose_write_hits_a_full_disk_is_handed_back_and_completes_later(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bandmaster")
    GATE["third"] = asyncio.Event()
    async with bm.Engine(
        db_path, workflows=[chunks], lease=1.0, poll_interval=0.02, journal_retry=FAST
    ) as engine:
        handle = await engine.start(chunks, 5)
        await until(lambda: len(engine.store.load_steps(handle.id)) == 2, "two steps journaled")
        set_page_limit(engine, None)  # the disk is full
        GATE["third"].set()
        await until(lambda: "handed back" in caplog.text, "the run to be handed back")
        # Not stuck: the worker stopped renewing the lease of the run it gave up. The same
        # worker takes it again (the disk is still full, so it is handed back again) ...
        await until(lambda: caplog.text.count("handed back") >= 2, "the run to be retried")
        assert (await handle.describe()).status in ("queued", "running")
        set_page_limit(engine, 1_073_741_823)  # space freed
        assert await handle.result(timeout=20) == sum(len(f"{i}:") + 8_000 for i in range(1, 6))
        steps = (await handle.describe()).steps
    assert [s.seq for s in steps] == [1, 2, 3, 4, 5]  # none lost, none twice
    assert all(s.status == "completed" for s in steps)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    given_up = [m for m in warnings if "handed back" in m]
    assert "database or disk is full" in given_up[0]
    assert str(db_path) in given_up[0]
    assert any("retrying in" in m for m in warnings), "the write was retried with backoff first"
    assert not any("rollback" in m for m in warnings)
    assert "lease lost" not in caplog.text  # it was not lost: it was given up, and said why


@bm.step
async def small(i: int) -> int:
    return i


@bm.workflow
async def stamped() -> int:
    await small(1)  # seq 1
    await GATE["locked"].wait()  # (not journaled) the test holds the write lock now
    bm.now()  # seq 2: journaled without waiting; that write fails for good under the lock
    await GATE["unlocked"].wait()  # the test released the lock
    return await small(3)  # seq 3: must not be journaled over the gap at seq 2


async def test_a_lost_fire_and_forget_write_is_never_journaled_over(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """If a write made without waiting (bm.now()) fails for good, the next write of the run
    must not land after the gap: a replay would record another time at seq 2 than the one
    the code used. The run is handed back instead, and replayed whole."""
    caplog.set_level(logging.WARNING, logger="bandmaster")
    GATE["locked"], GATE["unlocked"] = asyncio.Event(), asyncio.Event()
    async with bm.Engine(
        db_path, workflows=[stamped], lease=5.0, poll_interval=0.02, journal_retry=FAST, busy_timeout=0.05
    ) as engine:
        handle = await engine.start(stamped)
        await until(lambda: 1 in engine.store.load_steps(handle.id), "step 1 journaled")
        with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            GATE["locked"].set()
            await until(lambda: "gave up after" in caplog.text, "the bm.now() write to be given up")
            other.execute("ROLLBACK")
            GATE["unlocked"].set()
        assert await handle.result(timeout=20) == 3
        steps = (await handle.describe()).steps
    assert [(s.seq, s.kind) for s in steps] == [(1, "step"), (2, "now"), (3, "step")]


@bm.workflow
async def idle() -> int:
    return await small(1)


async def test_a_cancel_that_cannot_be_recorded_hands_the_run_back_until_it_can(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A claimed run whose cancel was requested is marked cancelled at once; when that write
    fails, the run is handed back (not left running under a dead task) and cancelled later."""
    caplog.set_level(logging.WARNING, logger="bandmaster")
    async with bm.Engine(db_path, workflows=[idle], worker=False) as client:
        handle = await client.start(idle)
        assert await client.cancel(handle.id) == "cancelled"
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        # As if it was cancelled while a now-dead worker ran it: claimable, cancel requested.
        conn.execute(
            "UPDATE runs SET status = 'running', lease_owner = 'gone/1/x', lease_expires = 0, "
            "cancel_requested = 1, ended_at = NULL WHERE id = ?",
            (handle.id,),
        )
        conn.execute(  # the cancel write fails (a real SQLite error, from a trigger)
            "CREATE TRIGGER refuse_cancel BEFORE UPDATE OF status ON runs "
            "WHEN NEW.status = 'cancelled' BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
        )
        async with bm.Engine(
            db_path, workflows=[idle], lease=1.0, poll_interval=0.02, journal_retry=FAST
        ) as engine:
            await until(lambda: "handed back" in caplog.text, "the run to be handed back")
            conn.execute("DROP TRIGGER refuse_cancel")
            with pytest.raises(bm.RunCancelled):
                await engine.result(handle.id, timeout=20)
    assert "simulated write failure" in caplog.text
    assert "Task exception was never retrieved" not in caplog.text
