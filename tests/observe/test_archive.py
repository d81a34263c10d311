"""Retention: ``archive`` moves old finished runs into compressed JSONL and deletes them; an
archive SIGKILLed at any point and rerun loses and duplicates nothing; a worker with
``--retention`` keeps the journal bounded under continuous load."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.store._sqlite import SQLiteStore
from bandmaster.store.archive import _claim, _write_atomically, archive
from bandmaster.store.export import import_runs, read_records
from bandmaster.store.reading import connect

HERE = Path(__file__).resolve().parent
OLD = time.time() - 10 * 86400


def _journal(path: Path, old: int, recent: int = 5, unfinished: int = 5, payload: int = 200) -> set[str]:
    """``old`` finished runs (ended 10 days ago, 3 steps and a signal each), ``recent`` finished
    runs and ``unfinished`` waiting runs from 10 days ago. Returns the old runs' ids."""
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    text = '"' + "x" * payload + '"'
    old_ids = set()
    rows = [(f"old{i:05}", ("completed", "failed", "cancelled")[i % 3], OLD + i) for i in range(old)]
    rows += [(f"new{i:05}", "completed", time.time()) for i in range(recent)]
    rows += [(f"wait{i:05}", "waiting", None) for i in range(unfinished)]
    for run_id, status, ended in rows:
        if run_id.startswith("old"):
            old_ids.add(run_id)
        created = ended - 1 if ended else OLD
        conn.execute(
            "INSERT INTO runs (id, workflow, status, input, output, fmt, created_at, updated_at, ended_at) "
            "VALUES (?, 'wf', ?, ?, ?, 'json1', ?, ?, ?)",
            (run_id, status, text, text, created, created, ended),
        )
        conn.executemany(
            "INSERT INTO steps VALUES (?, ?, 'step', 'step', 'completed', ?, NULL, 1, ?, ?, '{}', 'json1')",
            [(run_id, seq, text, created, created + 0.1) for seq in range(3)],
        )
        conn.execute(
            "INSERT INTO signals (run_id, name, payload, fmt, created_at, consumed_seq) "
            "VALUES (?, 'go', '1', 'json1', ?, 2)",
            (run_id, created),
        )
    conn.commit()
    conn.close()
    return old_ids


def _store_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM runs")]
    finally:
        conn.close()


def _archived_ids(directory: Path) -> list[str]:
    """Run ids in every complete archive file (temporary files of a killed archive excluded)."""
    return [r.run.id for f in sorted(directory.glob("runs-*.jsonl.gz")) for r in read_records(f)]


def _pending_batch_ids(path: Path) -> set[str]:
    """Run ids of the batches an archive claimed and has not finished (``archive_batches``)."""
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT j.value FROM archive_batches b, json_each(b.run_ids) j")}
    finally:
        conn.close()


def _counts(db: Path, directory: Path) -> Counter[str]:
    return Counter(_store_ids(db)) + Counter(_archived_ids(directory))


def test_archive_moves_old_finished_runs_only(tmp_path: Path) -> None:
    db, out = tmp_path / "bm.db", tmp_path / "archive"
    old = _journal(db, old=95)
    before = set(_store_ids(db))
    result = archive(db, "7d", out, batch_size=30)
    assert result.runs == 95
    assert len(result.files) == 4  # 30 + 30 + 30 + 5, one file per batch
    assert set(_store_ids(db)) == before - old  # recent and unfinished runs stay
    assert Counter(_archived_ids(out)) == Counter(old)  # each old run in exactly one file
    conn = sqlite3.connect(db)
    orphans = conn.execute(
        "SELECT (SELECT COUNT(*) FROM steps WHERE run_id LIKE 'old%'), "
        "(SELECT COUNT(*) FROM signals WHERE run_id LIKE 'old%'), (SELECT COUNT(*) FROM archive_batches)"
    ).fetchone()
    conn.close()
    assert orphans == (0, 0, 0)
    # rerunnable: nothing left to do, nothing written twice
    again = archive(db, "7d", out, batch_size=30)
    assert (again.runs, again.files) == (0, [])
    assert len(list(out.iterdir())) == 4
    # the archive brings them back, journal included
    restored = tmp_path / "restored.db"
    SQLiteStore(restored).close()
    assert import_runs(restored, sorted(out.iterdir())).imported == 95
    conn = sqlite3.connect(restored)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM steps").fetchone() == (285, 95)
    assert conn.execute("SELECT COUNT(*) FROM signals").fetchone() == (95,)
    conn.close()


def test_delete_only_and_vacuum_shrinks_the_file(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    _journal(db, old=2000, payload=2000)
    size = db.stat().st_size
    result = archive(db, "7d", None, vacuum=True)
    assert (result.runs, result.files) == (2000, [])
    assert len(_store_ids(db)) == 10
    assert db.stat().st_size < size / 5
    assert result.freed_bytes > 0


def test_bad_arguments(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    _journal(db, old=1)
    with pytest.raises(bm.InvalidInput, match="not a duration"):
        archive(db, "a week", tmp_path / "a")
    with pytest.raises(ValueError, match="batch_size"):
        archive(db, "7d", tmp_path / "a", batch_size=0)
    assert len(_store_ids(db)) == 11  # nothing touched


@pytest.mark.parametrize("file_written", [False, True])
def test_rerun_finishes_a_batch_interrupted_between_steps(tmp_path: Path, file_written: bool) -> None:
    """Stopped after the claim (and, maybe, after the file): the rerun completes that batch
    under the same file name, so no run is archived twice."""
    db, out = tmp_path / "bm.db", tmp_path / "archive"
    old = _journal(db, old=50)
    out.mkdir()
    conn = connect(db, write=True)
    claimed = _claim(conn, time.time() - 7 * 86400, 20, out)
    assert claimed is not None
    file, run_ids = claimed
    if file_written:
        conn.execute("BEGIN")
        _write_atomically(Path(file), conn, run_ids)
        conn.execute("COMMIT")
    conn.close()
    result = archive(db, "7d", out, batch_size=20)
    assert result.recovered_batches == 1
    assert result.files[0] == file
    assert result.runs == 50
    assert Counter(_archived_ids(out)) == Counter(old)


def _archive_proc(db: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bandmaster.cli", "archive", "--db", str(db), "--older-than", "7d",
         "--to", str(out), "--batch-size", "25"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # reaps it and closes its pipes


def test_sigkill_mid_archive_then_rerun_loses_and_duplicates_nothing(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    db, out = tmp_path / "bm.db", tmp_path / "archive"
    old = _journal(db, old=2000)
    everything = set(_store_ids(db))
    rng = random.Random(7)
    kills = 0
    for _ in range(4):  # kill it at random points, several times over
        proc = _archive_proc(db, out)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while not list(out.glob("runs-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert set(_counts(db, out)) == everything, "a run was lost"
        archived = Counter(_archived_ids(out))
        assert max(archived.values(), default=1) == 1, "a run was archived twice"
        # Killed between a batch's file and its delete: those runs are in both until the rerun
        # finishes the batch, and only runs of a batch still pending may be.
        both = set(archived) & set(_store_ids(db))
        assert both <= _pending_batch_ids(db), "a run is in the journal and a finished batch's file"
    assert kills >= 1, "the archive finished before it could be killed; make the journal bigger"
    final = _archive_proc(db, out)
    procs.append(final)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()
    counts = _counts(db, out)
    assert set(counts) == everything
    assert max(counts.values()) == 1
    assert set(_archived_ids(out)) == old
    assert set(_store_ids(db)) == everything - old
    assert [f.name for f in out.iterdir() if not f.name.startswith("runs-")] == []  # no stale temp files
    # and the whole archive imports cleanly into a fresh journal
    restored = tmp_path / "restored.db"
    SQLiteStore(restored).close()
    files = sorted(out.glob("runs-*.jsonl.gz"))
    assert import_runs(restored, files).imported == 2000
    assert import_runs(restored, files).skipped == 2000


def _count_rows(db: Path) -> tuple[int, int, int]:
    """Runs, finished runs, steps in the journal."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(  # type: ignore[no-any-return]
            "SELECT (SELECT COUNT(*) FROM runs), "
            "(SELECT COUNT(*) FROM runs WHERE status IN ('completed', 'failed', 'cancelled')), "
            "(SELECT COUNT(*) FROM steps)"
        ).fetchone()
    finally:
        conn.close()


async def _produce(db: Path, seconds: float) -> tuple[list[str], int, int]:
    """Start ~100 runs/s (a pace one worker keeps up with on a busy machine); sample the journal.
    Returns the run ids and the peak counts of finished runs and of step rows."""
    sys.path.insert(0, str(HERE))
    try:
        from wf_retention import retained  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(HERE))
    started: list[str] = []
    peak_finished = peak_steps = 0
    async with bm.Engine(db, worker=False) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(10):
                started.append((await client.start(retained, f"ticket {len(started)}")).id)
            _, finished, steps = _count_rows(db)
            peak_finished, peak_steps = max(peak_finished, finished), max(peak_steps, steps)
            await asyncio.sleep(0.1)
    return started, peak_finished, peak_steps


def test_worker_retention_keeps_the_journal_bounded(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    db, out = tmp_path / "bm.db", tmp_path / "archive"
    SQLiteStore(db).close()
    worker = subprocess.Popen(
        [sys.executable, "-m", "bandmaster.cli", "worker", str(HERE / "wf_retention.py"), "--db", str(db),
         "--retention", "0.5s", "--archive-dir", str(out), "--poll", "0.02"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    procs.append(worker)
    started, peak_finished, peak_steps = asyncio.run(_produce(db, 6.0))
    deadline = time.monotonic() + 30  # let the last runs finish and age out
    while _count_rows(db)[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr.decode()
    total = len(started)
    assert total >= 300, f"only {total} runs started; the machine is too slow for this test"
    # finished runs stay ~ (retention 0.5 s + one 0.2 s interval + a round) x the rate
    assert peak_finished < total / 2, (peak_finished, total)
    assert peak_steps < 3 * total / 2, (peak_steps, total)  # 3 rows per run
    assert _count_rows(db) == (0, 0, 0)
    archived = Counter(_archived_ids(out))
    assert set(archived) == set(started)
    assert max(archived.values()) == 1
    assert os.path.getsize(db) < 10 * 1024 * 1024


def test_cli_archive_and_worker_option_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bandmaster.cli._app import app

    db, out = tmp_path / "bm.db", tmp_path / "archive"
    _journal(db, old=40)
    runner = CliRunner()
    done = runner.invoke(app, ["archive", "--db", str(db), "--older-than", "7d", "--to", str(out)])
    assert done.exit_code == 0, done.output
    assert "archived 40 runs into 1 files" in done.output
    bad = runner.invoke(app, ["archive", "--db", str(db), "--older-than", "soon", "--to", str(out)])
    assert bad.exit_code == 2
    assert "not a duration" in bad.output
    missing = runner.invoke(
        app, ["archive", "--db", str(tmp_path / "no.db"), "--older-than", "7d", "--to", "x"]
    )
    assert missing.exit_code == 2
    assert "no journal at" in missing.output
    worker = runner.invoke(
        app, ["worker", str(HERE / "wf_retention.py"), "--db", str(db), "--retention", "1 week"]
    )
    assert worker.exit_code == 2
    assert "--retention '1 week' is not a duration" in worker.output
