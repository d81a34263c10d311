"""The worker's stats rollup pass: every ``every`` seconds, add the runs that ended meanwhile
to the stats rollups (``store.rollups.catch_up``), so that a ``bandmaster stats`` reader, which
catches up too before it reads, finds a small backlog. Off the write path: the pass runs in a
thread on a connection of its own, a bounded number of runs per pass, in short batches
between which the engine's commits go through."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

from bandmaster.engine._clock import SYSTEM_CLOCK, Clock
from bandmaster.store import catch_up

log = logging.getLogger("bandmaster.worker")

PASS_LIMIT = 20_000
"""Runs added per pass at most (about 1.5 s of work on a loaded 2-core machine); the rest waits
for the next pass or a reader."""
BATCH = 50
"""Runs per write transaction: about 2 ms of holding the journal's write lock for 10-step runs
(measured), which the engine's own commits wait out; a stats reader, which has no step latency
to protect, uses larger batches."""
LOCK_WAIT = 5.0
"""Seconds a batch waits for the write lock before the pass gives up until the next one."""


async def rollup_loop(
    path: Path, every: float, stopping: threading.Event, clock: Clock = SYSTEM_CLOCK
) -> None:
    """Catch the rollups up every ``every`` seconds until cancelled; ``stopping`` ends a pass
    between two batches (a worker shutting down)."""
    while not stopping.is_set():
        await clock.sleep(every)
        try:
            added = await asyncio.to_thread(_one_pass, path, stopping)
        except sqlite3.Error as exc:  # locked too long, disk full: the next pass retries
            log.warning("stats rollup pass on %s failed: %s", path, exc)
            continue
        if added:
            log.debug("stats rollup pass: %d ended runs added", added)


def _one_pass(path: Path, stopping: threading.Event) -> int:
    conn = sqlite3.connect(path, isolation_level=None, timeout=LOCK_WAIT)
    try:
        return catch_up(conn, limit=PASS_LIMIT, batch=BATCH, keep_going=lambda: not stopping.is_set())
    finally:
        conn.close()
