"""Retention: move finished runs older than a cutoff out of the journal into compressed JSONL.

A batch goes through three steps, each safe to interrupt (even by SIGKILL):

1. *claim*: in one transaction, pick up to ``batch_size`` finished runs older than the cutoff
   that no other batch holds, and record the batch (its file name and run ids) in
   ``archive_batches``;
2. *write*: write the batch's file under a temporary name, fsync it, rename it to its final,
   deterministic name and fsync the directory;
3. *delete*: in one transaction, delete the batch's runs, steps and signals and its
   ``archive_batches`` row.

A rerun first finishes every batch left in ``archive_batches`` (rewriting its file from the
journal, which still holds the runs, under the same name), so each run ends up in exactly one
file or still in the journal: never lost, never in two files.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from bandmaster._types import TERMINAL_STATUSES
from bandmaster.store._rollups import SWEEP, remove_runs_sql
from bandmaster.store.export import RELATED_TABLES, dump_runs, write_lines
from bandmaster.store.reading import JournalRef, connect, parse_duration

log = logging.getLogger("bandmaster.retention")
_TERMINAL = f"({', '.join(repr(s) for s in sorted(TERMINAL_STATUSES))})"
_IDS = "SELECT value FROM json_each(?)"
_DELETE = "delete:"  # key prefix of batches that are deleted without a file


class ArchiveResult(BaseModel):
    runs: int
    """Runs moved out of the journal (into files, or deleted when there is no directory)."""
    files: list[str]
    recovered_batches: int
    """Batches an interrupted earlier archive left half done, finished now."""
    freed_bytes: int
    """How much the journal file shrank."""


def archive(
    db: JournalRef,
    older_than: str | float,
    to: str | os.PathLike[str] | None,
    *,
    batch_size: int = 1000,
    vacuum: bool = False,
) -> ArchiveResult:
    """Archive completed/failed/cancelled runs that ended more than ``older_than`` ago
    (``"7d"``, seconds) into ``to`` (a directory, created if needed), then delete them.

    ``to=None`` deletes without writing anything (pure retention). ``vacuum=True`` rewrites
    the file afterwards and switches it to incremental auto-vacuum, so later archives give
    space back to the file system at once; otherwise freed pages are reused before it grows.
    """
    cutoff = time.time() - parse_duration(older_than, what="older_than")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    directory = Path(to) if to is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_temp_files(directory)
    conn = connect(db, write=True)
    try:
        size_before = _file_size(conn)
        files: list[str] = []
        moved = 0
        pending = conn.execute("SELECT file, run_ids FROM archive_batches ORDER BY created_at").fetchall()
        for key, run_ids in pending:
            moved += _finish(conn, key, json.loads(run_ids))
            files.append(key)
        while (batch := _claim(conn, cutoff, batch_size, directory)) is not None:
            key, run_ids = batch
            moved += _finish(conn, key, run_ids)
            files.append(key)
        if moved:
            _sweep_rollups(conn)
        _reclaim_space(conn, vacuum=vacuum)
        freed = max(0, size_before - _file_size(conn))
    finally:
        conn.close()
    return ArchiveResult(
        runs=moved,
        files=[key for key in files if not key.startswith(_DELETE)],
        recovered_batches=len(pending),
        freed_bytes=freed,
    )


def _claim(
    conn: sqlite3.Connection, cutoff: float, batch_size: int, directory: Path | None
) -> tuple[str, list[str]] | None:
    """Record the next batch; returns its key (the file it goes to, or ``delete:<digest>``
    when nothing is kept) and its run ids."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            f"SELECT id, ended_at FROM runs WHERE status IN {_TERMINAL} AND ended_at < ? "
            "AND id NOT IN (SELECT j.value FROM archive_batches b, json_each(b.run_ids) j) "
            "ORDER BY ended_at, id LIMIT ?",
            (cutoff, batch_size),
        ).fetchall()
        if not rows:
            conn.execute("COMMIT")
            return None
        run_ids = [r[0] for r in rows]
        if directory is not None:
            key = str(_batch_file(directory, rows[0][1], run_ids))
        else:
            key = f"{_DELETE}{_digest(run_ids)}"
        conn.execute(
            "INSERT INTO archive_batches (file, run_ids, created_at) VALUES (?, ?, ?)",
            (key, json.dumps(run_ids), time.time()),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return key, run_ids


def _batch_file(directory: Path, first_ended: float, run_ids: list[str]) -> Path:
    """Named by the batch's content: the same runs always go to the same file."""
    stamp = datetime.fromtimestamp(first_ended, UTC).strftime("%Y%m%dT%H%M%S")
    return directory.resolve() / f"runs-{stamp}-{_digest(run_ids)}.jsonl.gz"


def _digest(run_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(run_ids).encode()).hexdigest()[:16]


def _finish(conn: sqlite3.Connection, key: str, run_ids: list[str]) -> int:
    """Write the batch's file (unless there is none, or it is already complete: files appear
    under their final name only once fsynced), then delete its runs. Returns how many runs
    left the journal."""
    if not key.startswith(_DELETE) and not Path(key).is_file():
        conn.execute("BEGIN")  # a snapshot: the batch row and its runs, both or neither
        try:
            still_pending = conn.execute("SELECT 1 FROM archive_batches WHERE file = ?", (key,)).fetchone()
            if still_pending:
                _write_atomically(Path(key), conn, run_ids)
        finally:
            conn.execute("COMMIT")
        if not still_pending:
            return 0  # another archiver finished it meanwhile
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("DELETE FROM archive_batches WHERE file = ?", (key,)).rowcount != 1:
            conn.execute("COMMIT")
            return 0
        for statement in remove_runs_sql(_IDS):  # stats rollups, in bulk (store/rollups.py)
            conn.execute(statement, (json.dumps(run_ids),))
        conn.execute(f"DELETE FROM steps WHERE run_id IN ({_IDS})", (json.dumps(run_ids),))
        conn.execute(f"DELETE FROM signals WHERE run_id IN ({_IDS})", (json.dumps(run_ids),))
        for table in RELATED_TABLES:  # archived with the run (stats_export.dump_runs)
            conn.execute(f"DELETE FROM {table} WHERE run_id IN ({_IDS})", (json.dumps(run_ids),))
        deleted = conn.execute(f"DELETE FROM runs WHERE id IN ({_IDS})", (json.dumps(run_ids),)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(deleted)


def _write_atomically(path: Path, conn: sqlite3.Connection, run_ids: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_lines(tmp, dump_runs(conn, run_ids), compress=True)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    # The rename itself must be durable before the runs are deleted.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_orphaned_temp_files(directory: Path) -> None:
    """Temporary files of archive processes that died mid-write (their batch is rewritten)."""
    for tmp in directory.glob(".runs-*.tmp"):
        pid = tmp.suffixes[-2].lstrip(".") if len(tmp.suffixes) >= 2 else ""
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_rollups(conn: sqlite3.Connection) -> None:
    """Drop the stats counters that the deleted runs brought to zero (one short transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SWEEP:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _reclaim_space(conn: sqlite3.Connection, *, vacuum: bool) -> None:
    if vacuum:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect with the VACUUM
        conn.execute("VACUUM")
    elif conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # incremental
        conn.execute("PRAGMA incremental_vacuum")
    # Copy the WAL back into the file. PASSIVE never waits and never blocks the workers'
    # writes (TRUNCATE would hold new writers while readers finish); after a VACUUM, which the
    # caller asked for, truncating the WAL is what makes the file small.
    conn.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if vacuum else 'PASSIVE'})").fetchall()


def _file_size(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])


async def retention_loop(
    db: JournalRef,
    older_than: str | float,
    to: str | os.PathLike[str] | None,
    *,
    interval: float | None = None,
) -> None:
    """Archive (or delete, with ``to=None``) old finished runs every ``interval`` seconds
    (default: a quarter of the retention, between 0.2 s and 5 min) until cancelled. Runs in a
    thread with its own connection, so the worker's event loop never waits on it."""
    retention = parse_duration(older_than, what="retention")
    every = interval if interval is not None else min(max(retention / 4, 0.2), 300.0)
    while True:
        try:
            result = await asyncio.to_thread(archive, db, retention, to)
            if result.runs:
                log.info("retention: %d runs archived to %s", result.runs, to or "nowhere (deleted)")
        except Exception as exc:  # a failed round is retried next time; the worker keeps working
            log.warning("retention round failed: %s", exc)
        await asyncio.sleep(every)
