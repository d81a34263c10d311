"""Live token chunks of model streams, the side channel that lets observers (the server's SSE
stream, ``bandmaster runs watch``) see an answer as it is generated, from any process that
reads the journal.

Not the journal: the journal records a streamed call once, when it ends. Chunks are written in
batches (one row per batch, at most one write per ``BATCH_INTERVAL`` per stream, through the
store's group commit, never awaited), and rows older than ``RETENTION`` are pruned whenever a
stream ends, so the table stays small.

With ``Engine(live_steps=True)`` the same table carries step-start markers (``StepMarkers``):
rows whose ``step_kind`` is set, an empty ``text``, one per started step, deleted when their
run ends (the age-based pruning spares those of running runs: a long step stays visible).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass

from bandmaster.store._sqlite import SQLiteStore

BATCH_INTERVAL = 0.05
"""Seconds a chunk may wait before it is written (observers poll at about this rate too)."""
RETENTION = 30.0
"""Seconds a stream's rows are kept after they are written, so a slow reader sees the end."""


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: int
    seq: int
    name: str
    text: str
    restart: bool
    step_kind: str | None = None
    """Set on a step-start marker (the journal's step kind); None on a model stream's row."""


class ChunkPublisher:
    """Collects one stream's chunks and writes them in batches. Create it in the event loop."""

    __slots__ = ("_handle", "_loop", "_pending", "_restart", "_started", "_store", "name", "run_id", "seq")

    def __init__(self, store: SQLiteStore, run_id: str, seq: int, name: str) -> None:
        self._store = store
        self.run_id = run_id
        self.seq = seq
        self.name = name
        self._pending: list[str] = []
        self._restart = False
        self._handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._started = False
        # The start is written a batch interval later, like the chunks: the write stays off
        # the path to the first token (which a fast provider sends within milliseconds).
        self._handle = self._loop.call_later(BATCH_INTERVAL, self.flush)

    def add(self, text: str) -> None:
        self._pending.append(text)
        if self._handle is None:
            self._handle = self._loop.call_later(BATCH_INTERVAL, self.flush)

    def restart(self) -> None:
        """The text so far is void (a retry or a fallback answers again): tell the readers."""
        self.flush()
        self._restart = True
        self.flush()

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._started:
            self._started = True
            start = (self.run_id, self.seq)

            def begin(conn: sqlite3.Connection) -> None:
                # An earlier execution's rows go (a crash); an empty row says the stream started.
                conn.execute("DELETE FROM stream_chunks WHERE run_id = ? AND seq = ?", start)
                _insert(conn, (*start, self.name, "", 0, time.time()))

            self._store._enqueue(begin, wait=False)
        if not self._pending and not self._restart:
            return
        row = (self.run_id, self.seq, self.name, "".join(self._pending), int(self._restart), time.time())
        self._pending.clear()
        self._restart = False
        self._store._enqueue(lambda conn: _insert(conn, row), wait=False)

    def close(self) -> None:
        """The stream ended: write what is left and prune old rows of every stream."""
        self.flush()
        prune(self._store)


class StepMarkers:
    """Step starts of every run of an engine, written in batches like the chunks; a run's
    markers go when it ends (its journaled steps tell the rest). Used in the event loop."""

    __slots__ = ("_handle", "_pending", "_store")

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._pending: list[tuple[str, int, str, str, float]] = []
        self._handle: asyncio.TimerHandle | None = None

    def add(self, run_id: str, seq: int, name: str, kind: str, started: float) -> None:
        self._pending.append((run_id, seq, name, kind, started))
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(BATCH_INTERVAL, self.flush)

    def flush(self) -> None:
        self._handle = None
        rows, self._pending = self._pending, []

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO stream_chunks (run_id, seq, name, text, restart, step_kind, at) "
                "VALUES (?, ?, ?, '', 0, ?, ?)",
                rows,
            )

        if rows:
            self._store._enqueue(insert, wait=False)

    def run_ended(self, run_id: str) -> None:
        """Drop the run's markers: unwritten ones here, written ones by their index (cheap, unlike
        a scan by age at every run's end)."""
        if self._pending:
            self._pending = [row for row in self._pending if row[0] != run_id]

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM stream_chunks WHERE run_id = ? AND step_kind IS NOT NULL", (run_id,))

        self._store._enqueue(delete, wait=False)


def prune(store: SQLiteStore) -> None:
    """Delete rows older than ``RETENTION``, except the markers of runs still running (a long
    step stays visible to a watcher that comes late)."""
    horizon = time.time() - RETENTION

    def delete(conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM stream_chunks WHERE at < ? AND (step_kind IS NULL "
            "OR run_id NOT IN (SELECT id FROM runs WHERE status = 'running'))",
            (horizon,),
        )

    store._enqueue(delete, wait=False)


def _insert(conn: sqlite3.Connection, row: tuple[str, int, str, str, int, float]) -> None:
    conn.execute("INSERT INTO stream_chunks (run_id, seq, name, text, restart, at) VALUES (?,?,?,?,?,?)", row)


def chunks_after(store: SQLiteStore, run_id: str, after: int) -> list[ChunkRow]:
    """The run's chunk rows written after row ``after`` (0: all), oldest first."""
    rows = store._conn.execute(
        "SELECT id, seq, name, text, restart, step_kind FROM stream_chunks"
        " WHERE run_id = ? AND id > ? ORDER BY id",
        (run_id, after),
    ).fetchall()
    return [ChunkRow(id, seq, name, text, bool(restart), kind) for id, seq, name, text, restart, kind in rows]
