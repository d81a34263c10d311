"""The journal when its file misbehaves: a full disk (SQLite's ``max_page_count``, a real
SQLITE_FULL), a read-only file, a damaged file, a path that is not a journal. Errors name the
real cause and the path; a write failing for a passing reason is retried with backoff."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.errors import JournalCorrupt, JournalError, JournalReadOnly, NotAJournal
from bandmaster.store import RunRow, SQLiteStore, StepRow
from bandmaster.store._journal_file import check_readable

OWNER = "host/1/aaaa"
BIG = '"' + "x" * 20_000 + '"'  # a step output that needs new pages


def run_row(run_id: str, *, owner: str | None = None) -> RunRow:
    now = time.time()
    status = "running" if owner else "queued"
    expires = now + 60 if owner else None
    return RunRow(
        run_id, "wf", None, status, "[]", None, None, now, now, None, None, owner, expires, False, 0
    )


async def owned_run(store: SQLiteStore, run_id: str = "r1") -> None:
    assert await store.insert_run(run_row(run_id, owner=OWNER))


def big_step(run_id: str, seq: int) -> StepRow:
    now = time.time()
    return StepRow(run_id, seq, f"s{seq}", "step", "completed", BIG, None, 1, now, now, None)


def fill_disk(store: SQLiteStore) -> None:
    """From now on the journal cannot grow: the next write needing a page gets SQLITE_FULL."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")


def free_disk(store: SQLiteStore) -> None:
    store._conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    yield s
    free_disk(s)
    s.close()


# --- disk full ---------------------------------------------------------------------------------


async def test_a_full_disk_is_reported_as_such_with_the_path(store: SQLiteStore, db_path: Path) -> None:
    await owned_run(store)
    fill_disk(store)
    # Tables with indexes: SQLite rolls the whole transaction back itself on SQLITE_FULL, and a
    # ROLLBACK then fails with "cannot rollback - no transaction is active".
    big_run = run_row("r2")
    big_run.input = BIG
    failures: list[BaseException] = []
    with pytest.raises(bm.StoreError) as immediate:
        store.kv_put("big", "x" * 20_000)
    failures.append(immediate.value)
    for batched in (store.insert_run(big_run), store.record_step(big_step("r1", 1), OWNER)):
        with pytest.raises(bm.StoreError) as info:
            await batched
        failures.append(info.value)
    for error in failures:
        message = str(error)
        assert "database or disk is full" in message
        assert str(db_path) in message
        assert "rollback" not in message  # not the ROLLBACK's own error
        assert isinstance(error, JournalError)
        assert error.path == str(db_path)
    free_disk(store)
    assert await store.record_step(big_step("r1", 1), OWNER)  # the connection is usable again
    assert await store.insert_run(big_run)


async def test_a_failed_batch_is_retried_with_backoff_and_commits_once_space_returns(db_path: Path) -> None:
    attempts: list[tuple[int, float]] = []

    def retry(attempt: int, error: BaseException, waited: float) -> float | None:
        assert "database or disk is full" in str(error)
        attempts.append((attempt, waited))
        if attempt == 2:
            free_disk(store)  # the operator freed space while we waited
        return 0.01 * attempt

    store = SQLiteStore(db_path, write_retry=retry)
    try:
        await owned_run(store)
        fill_disk(store)
        first = store.record_step(big_step("r1", 1), OWNER)
        assert await first
        later = await store.record_step(big_step("r1", 2), OWNER)  # after recovery: normal again
        assert later
        assert attempts == [(1, 0.0), (2, 0.01)]
        assert sorted(store.load_steps("r1")) == [1, 2]
    finally:
        store.close()


async def test_writes_enqueued_during_backoff_commit_with_the_failed_ones_or_fail_with_them(
    db_path: Path,
) -> None:
    """Order is kept: a later write is never journaled while an earlier one is lost."""
    store = SQLiteStore(db_path, write_retry=lambda attempt, error, waited: 0.01 if attempt < 3 else None)
    try:
        await owned_run(store)
        fill_disk(store)
        earlier = store.record_step(big_step("r1", 1), OWNER, wait=False)
        await _until(lambda: store._failed_flushes > 0)  # the first attempt failed: backing off
        later = store.record_step(big_step("r1", 2), OWNER)  # joins the batch being retried
        with pytest.raises(JournalError, match="database or disk is full"):
            await later
        assert isinstance(earlier.exception(), JournalError)
        free_disk(store)
        assert store.load_steps("r1") == {}
    finally:
        store.close()


async def _until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def test_a_rejected_migration_keeps_its_real_error(db_path: Path) -> None:
    """The ROLLBACK after a failed migration must not replace the error that caused it."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(bm.StoreError, match="newer than this bandmaster"):
        SQLiteStore(db_path)


# --- read-only ---------------------------------------------------------------------------------


async def test_a_read_only_store_reads_and_refuses_writes_in_one_line(db_path: Path) -> None:
    writer = SQLiteStore(db_path)
    await owned_run(writer)
    writer.close()
    reader = SQLiteStore(db_path, read_only=True)
    try:
        assert reader.read_only
        assert [r.id for r in reader.list_runs()] == ["r1"]
        with pytest.raises(JournalReadOnly) as info:
            reader.request_cancel("r1")
        assert str(db_path) in str(info.value)
        assert "\n" not in str(info.value)
        with pytest.raises(JournalReadOnly):
            await reader.insert_run(run_row("r2"))
    finally:
        reader.close()


# --- not a journal, damaged ------------------------------------------------------------------


async def test_a_directory_is_not_a_journal(tmp_path: Path) -> None:
    with pytest.raises(NotAJournal, match="is a directory"):
        SQLiteStore(tmp_path)
    with pytest.raises(NotAJournal, match="is a directory"):
        SQLiteStore(tmp_path, read_only=True)


async def test_a_text_file_is_not_a_journal_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(NotAJournal, match="not a bandmaster journal"):
        SQLiteStore(path)
    assert path.read_text().startswith("hello")


async def test_another_applications_database_is_refused_and_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAJournal, match="another application's SQLite database"):
        SQLiteStore(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert tables == {"customers"}


def damage(path: Path, page: int = 3) -> None:
    """Overwrite one page in the middle of the file with garbage (a bad sector)."""
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as f:
        f.seek(size * (page - 1))
        f.write(b"\xa5" * size)


async def make_journal(path: Path, runs: int = 40) -> None:
    store = SQLiteStore(path)
    for i in range(runs):
        await owned_run(store, f"r{i}")
        await store.record_step(big_step(f"r{i}", 1), OWNER)
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


async def test_a_damaged_journal_fails_the_quick_check_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await make_journal(path)
    check_readable(path)  # sound
    damage(path)
    with pytest.raises(JournalCorrupt) as info:
        check_readable(path)
    message = str(info.value)
    assert str(path) in message
    assert "bandmaster doctor" in message
    assert "\n" not in message
    with pytest.raises(JournalCorrupt):  # a worker refuses to start on it
        await bm.Engine(path).open()
