"""The ``stream_chunks`` side channel: chunks written in batches, a restart row, a resumed
call's start clearing its dead stream's rows, old rows pruned when a stream ends, and step
markers deleted with their run."""

from __future__ import annotations

import time
from pathlib import Path

from bandmaster.store._sqlite import SQLiteStore
from bandmaster.store._streams import RETENTION, ChunkPublisher, StepMarkers, chunks_after


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


def markers(store: SQLiteStore, run_id: str) -> list[tuple[int, str, str | None]]:
    return [(row.seq, row.name, row.step_kind) for row in chunks_after(store, run_id, 0)]


async def test_step_markers_go_with_their_run_and_outlive_the_age_pruning_while_it_runs(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    old = time.time() - RETENTION - 1
    for run_id, status in (("long", "running"), ("over", "completed")):
        store._conn.execute(
            "INSERT INTO runs (id, workflow, status, fmt, created_at, updated_at) "
            "VALUES (?, 'w', ?, 'json1', ?, ?)",
            (run_id, status, old, old),
        )
    live = StepMarkers(store)
    live.add("long", 1, "crunch", "step", old)
    live.add("over", 1, "crunch", "step", old)
    live.add("gone", 2, "ask", "model", time.time())
    live.flush()
    live.add("gone", 3, "unwritten", "step", time.time())
    live.run_ended("gone")
    live.flush()
    store.flush()
    assert markers(store, "long") == [(1, "crunch", "step")]
    assert markers(store, "gone") == [], "a run's markers, written or not, go when it ends"
    stream = ChunkPublisher(store, "talk", 1, "chat")
    stream.close()  # prunes by age
    store.flush()
    assert markers(store, "long") == [(1, "crunch", "step")], "its step still runs: a late watcher sees it"
    assert markers(store, "over") == []
    assert markers(store, "talk") == [(1, "chat", None)], "a stream's row is no marker"
    store.close()
