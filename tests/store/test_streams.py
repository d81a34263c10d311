"""The ``stream_chunks`` side channel: chunks written in batches, a restart row, a resumed
call's start clearing its dead stream's rows, and old rows pruned when a stream ends."""

from __future__ import annotations

import time
from pathlib import Path

from bandmaster.store.sqlite import SQLiteStore
from bandmaster.store.streams import RETENTION, ChunkPublisher, chunks_after


def rows(store: SQLiteStore, run_id: str) -> list[tuple[int, str, bool]]:
    return [(row.seq, row.text, row.restart) for row in chunks_after(store, run_id, 0)]


async def test_chunks_are_written_in_batches_with_a_start_row_and_restarts(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    publisher = ChunkPublisher(store, "run-1", 3, "chat")
    for piece in ("a", "b", "c"):
        publisher.add(piece)
    store.flush()
    assert rows(store, "run-1") == [], "nothing is written before the batch interval"
    publisher.restart()
    publisher.add("d")
    publisher.close()
    store.flush()
    assert rows(store, "run-1") == [(3, "", False), (3, "abc", False), (3, "", True), (3, "d", False)]
    assert {row.name for row in chunks_after(store, "run-1", 0)} == {"chat"}
    last = chunks_after(store, "run-1", 0)[1].id
    assert [row.text for row in chunks_after(store, "run-1", last)] == ["", "d"], "read after an id"
    store.close()


async def test_a_resumed_call_clears_its_dead_streams_rows_and_old_rows_are_pruned(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    dead = ChunkPublisher(store, "run-1", 1, "chat")
    dead.add("from the crashed worker")
    dead.flush()
    store.flush()
    old = time.time() - RETENTION - 1
    store._conn.execute(
        "INSERT INTO stream_chunks (run_id, seq, name, text, restart, at) "
        "VALUES ('gone', 1, 'x', 'old', 0, ?)",
        (old,),
    )
    resumed = ChunkPublisher(store, "run-1", 1, "chat")
    resumed.add("again")
    resumed.close()
    store.flush()
    assert rows(store, "run-1") == [(1, "", False), (1, "again", False)]
    assert rows(store, "gone") == [], "rows older than the retention are pruned when a stream ends"
    store.close()
