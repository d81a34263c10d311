"""A worker whose journal write fails (another process holds the write lock past the busy
timeout) retries with backoff, then hands the run back instead of keeping it: once the lock is
released, a worker completes the run with no step lost and none journaled twice."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from types import ModuleType

import pytest

import bandmaster as bm

from .harness import Journal, Workers, effect_counts, read_effects, wait_until

pytestmark = pytest.mark.e2e


async def test_a_write_lock_held_past_the_busy_timeout_hands_the_run_back_and_nothing_is_lost(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    steps, delay = 30, 0.05  # 1.5 s of steps: the lock is surely taken mid-run
    options = ("--busy-timeout", "0.2")
    a = workers.start(lease=1.0, poll=0.05, extra=options)
    b = workers.start(lease=1.0, poll=0.05, extra=options)
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start(wf.chain, "locked", steps, delay)
        await wait_until(
            lambda: len(journal.step_keys()) >= 3, timeout=30, what="three steps journaled", watch=(a, b)
        )
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process takes the write lock and keeps it
            locked = time.monotonic()
            gave_up = await wait_until(
                lambda: next((w for w in (a, b) if "handed back" in w.output()), None),
                timeout=60,
                what="the executing worker to give the run up",
                watch=(a, b),
            )
            held = time.monotonic() - locked
            other.execute("ROLLBACK")
        assert await handle.result(timeout=60) == {"tag": "locked", "total": wf.chain_total(steps)}

    print(f"\n[journal lock] run handed back after {held:.2f}s under the lock")
    journal.assert_consistent([handle.id], steps)  # every seq once, all completed
    output = gave_up.output()
    assert "retrying in" in output, "the failed write was retried with backoff first"
    warning = next(line for line in output.splitlines() if "handed back" in line)
    assert "database is locked" in warning
    assert str(db) in warning
    assert "rollback" not in output
    assert "Traceback" not in a.output() + b.output()
    counts = effect_counts(read_effects(side_log))
    assert set(counts) == {(handle.id, seq) for seq in range(1, steps + 1)}, "a step never ran"
    a.check_alive()
    b.check_alive()
