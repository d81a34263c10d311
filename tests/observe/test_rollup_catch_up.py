"""``store.rollups.catch_up``: ended runs join the stats rollups off the write path, once each;
the migration that drops the write-path triggers; the worker's periodic pass."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from tests.observe.test_stats_rollup import assert_all_views_same, counts, random_journal, rolled

import bandmaster as bm
from bandmaster.errors import UsageError
from bandmaster.observe.stats import compute
from bandmaster.store import _rollups as rollups
from bandmaster.store._schema import MIGRATIONS
from bandmaster.store._sqlite import SQLiteStore

ENDED = 360  # of random_journal's 400 runs; 4 step rows each


def _triggers(db: Path) -> set[str]:
    with closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "backlog.db"
    random_journal(path)
    return path


def test_catch_up_adds_each_ended_run_once_in_batches(journal: Path) -> None:
    with closing(sqlite3.connect(journal, isolation_level=None)) as conn:
        assert len(rollups.backlog(conn)) == ENDED
        assert rollups.catch_up(conn, limit=50, batch=7) == 50
        assert counts(journal) == (50, 50 * 4)
        assert rollups.catch_up(conn, batch=1000) == ENDED - 50
        assert rollups.catch_up(conn) == 0  # idempotent: nothing left, nothing added twice
        assert rollups.backlog(conn) == []
    assert counts(journal) == (ENDED, ENDED * 4)
    assert_all_views_same(journal)


def test_catch_up_refuses_a_connection_inside_a_transaction(journal: Path) -> None:
    implicit = sqlite3.connect(journal)  # the default: implicit transactions
    with closing(implicit), pytest.raises(UsageError, match="isolation_level=None"):
        rollups.catch_up(implicit)
    with closing(sqlite3.connect(journal, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        with pytest.raises(UsageError, match="no BEGIN pending"):
            rollups.catch_up(conn)
        conn.execute("ROLLBACK")
        with pytest.raises(UsageError, match="batch must be >= 1"):
            rollups.catch_up(conn, batch=0)
    assert counts(journal) == (0, 0)


def test_deleting_a_rolled_up_run_by_hand_takes_it_out(journal: Path) -> None:
    compute(journal)
    with closing(sqlite3.connect(journal, isolation_level=None)) as conn:
        conn.execute("DELETE FROM steps WHERE run_id = 'run0001'")  # the delete triggers remain
        conn.execute("DELETE FROM runs WHERE id = 'run0001'")
    assert counts(journal) == (ENDED - 1, (ENDED - 1) * 4)
    assert_all_views_same(journal)


def test_the_migration_drops_the_write_path_triggers_of_a_rolled_up_journal(tmp_path: Path) -> None:
    db = tmp_path / "v8.db"
    conn = sqlite3.connect(db, isolation_level=None)
    through_rollups = MIGRATIONS.index(rollups.MIGRATION) + 1
    for migration in MIGRATIONS[:through_rollups]:  # as the release with the triggers left it
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {through_rollups}")
    conn.execute(
        "INSERT INTO runs (id, workflow, status, fmt, created_at, updated_at) "
        "VALUES ('r', 'wf', 'running', 'json1', 1, 1)"
    )
    conn.execute(
        "INSERT INTO steps VALUES ('r', 0, 'a', 'step', 'completed', '1', NULL, 1, 1, 2, NULL, 'json1')"
    )
    conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'r'")  # its trigger rolls it up
    conn.close()
    assert {"runs_rollup_end", "steps_rollup_update"} <= _triggers(db)
    assert counts(db) == (1, 1)

    SQLiteStore(db).close()  # migrates
    assert _triggers(db) == {"runs_rollup_reopen", "runs_rollup_delete", "steps_rollup_delete"}
    assert counts(db) == (1, 1)  # what was rolled up stays
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("UPDATE runs SET status = 'queued' WHERE id = 'r'")  # reopen: still leaves them
        assert counts(db) == (0, 0)
        conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'r'")  # ending writes nothing
        assert counts(db) == (0, 0)
        assert rollups.catch_up(conn) == 1
    assert counts(db) == (1, 1)
    assert_all_views_same(db)


@pytest.mark.parametrize("every", [0, -1.0, float("nan")])
def test_engine_rejects_a_rollup_interval_that_is_not_positive(every: float) -> None:
    with pytest.raises(UsageError, match="rollup_every"):
        bm.Engine("unused.db", rollup_every=every)


async def test_the_workers_pass_rolls_up_ended_runs_without_a_reader(tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    async with bm.Engine(db, workflows=[rolled], poll_interval=0.02, rollup_every=0.2) as engine:
        handles = [await engine.start(rolled, n) for n in range(1, 6)]
        for handle in handles:
            await handle.result()
        ended_at = time.monotonic()
        while counts(db)[0] < 5:  # no stats call: only the worker's pass adds them
            assert time.monotonic() - ended_at < 20, "the worker's rollup pass never ran"
            await asyncio.sleep(0.05)
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        assert rollups.backlog(conn) == []
    assert counts(db) == (5, rows)
    stats = compute(db)
    assert next(s for s in stats.step_stats if s.name == "pause").calls == 15
