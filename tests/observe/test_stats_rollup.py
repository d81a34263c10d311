"""Stats from the rollups equal stats from the journal rows (``compute(exact=True)``): counts and
sums exactly, percentiles within 0.5 %; through windows, archive, import, reopened runs, an
older journal that predates the rollups, and runs of a real engine. Ended runs join the rollups
when somebody catches up (a reader, a worker's pass, import), never in the write that ends them."""

from __future__ import annotations

import contextlib
import json
import math
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bandmaster as bm
from bandmaster.cli._app import app
from bandmaster.observe.stats import Stats, archive, compute, export_runs, import_runs
from bandmaster.observe.stats import _rollup as stats_rollup
from bandmaster.store import _rollups as rollups
from bandmaster.store._schema import MIGRATIONS
from bandmaster.store._sqlite import SQLiteStore

PERCENTILE_ERROR = 0.005  # half of a 1 % bucket
NOW = time.time()
HOUR = 3600.0


def assert_close(a: Any, b: Any, where: str = "stats") -> None:
    """Equal (floats to rounding), p50/p95/p99 within the stated error."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        tolerance = PERCENTILE_ERROR if where.rsplit(".", 1)[-1] in ("p50", "p95", "p99") else 1e-9
        assert a == pytest.approx(b, rel=tolerance, abs=1e-12), where
    else:
        assert a == b, where


def assert_same(rolled: Stats, exact: Stats, *, from_rows: bool = True) -> None:
    """Every field of ``rolled`` (from the rollups) close to ``exact``'s (from the rows, unless
    ``from_rows`` is false)."""
    assert not rolled.percentiles_exact
    assert exact.percentiles_exact == from_rows
    skip = {"seconds", "computed_at", "percentiles_exact", "since"}
    if not from_rows:  # another moment of the journal: the file has changed
        skip |= {"file_bytes", "free_bytes"}
    assert_close(rolled.model_dump(exclude=skip), exact.model_dump(exclude=skip))


def assert_all_views_same(db: Path) -> None:
    for kwargs in ({}, {"workflow": "triage"}, {"since": "30h"}, {"since": "50h", "workflow": "review"}):
        assert_same(compute(db, **kwargs), compute(db, exact=True, **kwargs))  # type: ignore[arg-type]


def _meta(rng: random.Random, alias: str) -> str:
    fallback = rng.random() < 0.1
    model = "backup" if fallback else rng.choice(["small", "large"])
    tokens_in, tokens_out = rng.randint(10, 900), rng.randint(1, 300)
    return json.dumps(
        {
            "request": {"input": [{"role": "user", "content": "x" * rng.randint(10, 400)}]},
            "alias": alias,
            "version": rng.choice(["production", "canary", None]),
            "model": model,
            "fallback": model if fallback else None,
            "cache_hit": rng.random() < 0.2,
            "tokens": {"input": tokens_in, "output": tokens_out},
            "cost": tokens_in * 1e-6 + tokens_out * 3e-6,
        }
    )


def random_journal(path: Path, runs: int = 400, seed: int = 7) -> None:
    """Runs of two workflows created over the last three days, each: a ``now`` row, two steps
    and a model call with lognormal latencies (many per bucket), random failures and retries;
    one in ten still running (their steps read from rows), the rest ended through a status
    update as the engine ends them (a backlog: not in the rollups until a catch-up)."""
    SQLiteStore(path).close()
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for r in range(runs):
        run_id = f"run{r:04}"
        created = NOW - 72 * HOUR * (r + 0.5) / runs
        conn.execute(
            "INSERT INTO runs (id, workflow, status, input, fmt, created_at, updated_at) "
            "VALUES (?, ?, 'running', '\"in\"', 'json1', ?, ?)",
            (run_id, "triage" if r % 3 else "review", created, created),
        )
        t = created
        rows: list[tuple[Any, ...]] = [("now", "now", "completed", 1, t, t, None)]
        for name, kind, median in [
            ("fetch", "step", 0.02),
            ("classify", "model", 0.4),
            ("notify", "step", 0.001),
        ]:
            latency = rng.lognormvariate(math.log(median), 0.7)
            status = "failed" if rng.random() < 0.05 else "completed"
            attempts = 1 + (rng.random() < 0.2) + (rng.random() < 0.05)
            meta = _meta(rng, name) if kind == "model" else None
            rows.append((name, kind, status, attempts, t, t + latency, meta))
            t += latency
        for seq, (name, kind, status, attempts, started, ended, meta) in enumerate(rows):
            conn.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 'json1')",
                (run_id, seq, name, kind, status, '"ok"', attempts, started, ended, meta),
            )
        if r % 10:
            final = "failed" if any(row[2] == "failed" for row in rows) else "completed"
            conn.execute(
                "UPDATE runs SET status = ?, output = '\"done\"', ended_at = ? WHERE id = ?",
                (final, t, run_id),
            )
    conn.execute("COMMIT")
    conn.close()


def counts(db: Path) -> tuple[int, int]:
    """(runs rolled up, step rows in the rollups)."""
    with sqlite3.connect(db) as conn:
        rolled = conn.execute("SELECT COUNT(*) FROM runs WHERE rolled_up = 1").fetchone()[0]
        rows = conn.execute("SELECT COALESCE(SUM(n), 0) FROM step_rollup").fetchone()[0]
    return rolled, rows


@contextlib.contextmanager
def write_locked(db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Another connection holds the journal's write lock (readers still read): ``compute``
    cannot catch up and reads the backlog from its rows, after a short wait."""
    monkeypatch.setattr(stats_rollup, "LOCK_WAIT", 0.05)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "random.db"
    random_journal(path)
    return path


def test_rollups_equal_rows_whole_windowed_and_per_workflow(journal: Path) -> None:
    assert counts(journal) == (0, 0)  # ending the runs wrote nothing to the rollups
    assert_all_views_same(journal)
    assert counts(journal) == (360, 360 * 4)  # the first read caught up the ended runs, 4 rows each
    stats = compute(journal)
    classify = next(s for s in stats.step_stats if s.name == "classify")
    assert classify.calls == 400
    assert classify.p50 is not None
    assert 0.3 < classify.p50 < 0.55
    assert (stats.runs, stats.steps) == (400, 1600)


def test_archive_then_import_keeps_rollups_equal_to_rows(journal: Path, tmp_path: Path) -> None:
    before = compute(journal)
    assert counts(journal) == (360, 360 * 4)
    with sqlite3.connect(journal) as conn:  # end the runs the archive takes, 40 h and older
        conn.execute("UPDATE runs SET ended_at = created_at WHERE ended_at IS NOT NULL")
    result = archive(journal, 40 * HOUR, tmp_path / "archive")
    assert result.runs > 100
    assert_all_views_same(journal)
    assert counts(journal) == (360 - result.runs, (360 - result.runs) * 4)
    with sqlite3.connect(journal) as conn:  # counters of archived days were swept, not left at 0
        assert conn.execute("SELECT COUNT(*) FROM step_rollup WHERE n = 0").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM model_rollup WHERE calls = 0").fetchone() == (0,)

    imported = import_runs(journal, [tmp_path / "archive" / f for f in result.files])
    assert imported.imported == result.runs
    assert_all_views_same(journal)
    assert counts(journal) == (360, 360 * 4)
    assert_same(compute(journal), before, from_rows=False)  # back where it started: none twice
    assert import_runs(journal, [tmp_path / "archive" / f for f in result.files]).imported == 0
    assert counts(journal) == (360, 360 * 4)


def test_import_into_a_fresh_journal_rolls_the_runs_up(journal: Path, tmp_path: Path) -> None:
    export_runs(journal, tmp_path / "all.jsonl")
    fresh = tmp_path / "fresh.db"
    import_runs(fresh, [tmp_path / "all.jsonl"])
    assert counts(fresh) == (360, 360 * 4)
    assert_same(compute(fresh), compute(fresh, exact=True))
    here, there = compute(fresh), compute(journal)  # live runs come back queued, not running
    assert_close(
        here.model_dump(include={"step_stats", "models", "days"}),
        there.model_dump(include={"step_stats", "models", "days"}),
    )


def test_a_run_set_back_to_live_leaves_the_rollups_and_rejoins_once(journal: Path) -> None:
    compute(journal)
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE runs SET status = 'queued' WHERE id = 'run0001'")
        assert conn.execute("SELECT rolled_up FROM runs WHERE id = 'run0001'").fetchone() == (None,)
    assert counts(journal) == (359, 359 * 4)
    assert_all_views_same(journal)
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'run0001'")
        conn.execute("UPDATE runs SET status = 'failed' WHERE id = 'run0001'")  # ended to ended
    assert counts(journal) == (359, 359 * 4)  # ended again: back in the backlog
    assert_all_views_same(journal)
    assert counts(journal) == (360, 360 * 4)


def test_a_journal_from_before_the_rollups_reads_rows_then_is_backfilled(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    before_rollups = MIGRATIONS.index(rollups.MIGRATION)
    for migration in MIGRATIONS[:before_rollups]:  # the schema as the release before them left it
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {before_rollups}")
    conn.close()
    random_journal(tmp_path / "same.db")  # the same rows, copied in with the old columns
    with sqlite3.connect(old) as conn:
        conn.execute(f"ATTACH '{tmp_path / 'same.db'}' AS src")
        columns = [c[1] for c in conn.execute("PRAGMA main.table_info(runs)")]
        conn.execute(f"INSERT INTO runs SELECT {', '.join(columns)} FROM src.runs")
        conn.execute("INSERT INTO steps SELECT * FROM src.steps")
    conn.close()

    unmigrated = compute(old)  # read-only: no migration, the rows are read
    assert unmigrated.percentiles_exact
    assert unmigrated.model_dump(exclude={"seconds", "computed_at"}) == compute(old, exact=True).model_dump(
        exclude={"seconds", "computed_at"}
    )
    SQLiteStore(old).close()  # any store open migrates, and backfills the ended runs
    assert counts(old) == (360, 360 * 4)
    assert_all_views_same(old)


def test_a_model_call_with_broken_meta_never_fails_the_write(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO runs (id, workflow, status, fmt, created_at, updated_at) "
            "VALUES ('r', 'wf', 'running', 'json1', 1, 1)"
        )
        conn.execute(
            "INSERT INTO steps VALUES "
            "('r', 0, 'ask', 'model', 'completed', '1', NULL, 1, 1, 2, '{oops', 'json1')"
        )
        conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'r'")
    [model] = compute(db).models
    assert (model.model, model.calls, model.cost, model.alias) == ("ask", 1, 0.0, None)


@bm.step
async def pause(seconds: float) -> float:
    return seconds


@bm.workflow(name="rolled")
async def rolled(n: int) -> int:
    for i in range(n):
        await pause(i / 1000)
    await bm.sleep(0.01)
    bm.now()
    return n


async def test_runs_of_the_engine_join_the_rollups_at_the_next_read(tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    async with bm.Engine(db, workflows=[rolled], poll_interval=0.02, rollup_every=None) as engine:
        handles = [await engine.start(rolled, n) for n in range(1, 6)]
        for handle in handles:
            await handle.result()
    assert counts(db) == (0, 0)
    stats = compute(db)
    rolled_runs, rows = counts(db)
    assert rolled_runs == 5
    with sqlite3.connect(db) as conn:
        assert rows == conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    assert_same(stats, compute(db, exact=True))
    pause_stats = next(s for s in stats.step_stats if s.name == "pause")
    assert pause_stats.calls == 15  # 1 + 2 + ... + 5, each once


def test_cli_exact_flag(journal: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    default = runner.invoke(app, ["stats", "--db", str(journal), "--json"])
    exact = runner.invoke(app, ["stats", "--db", str(journal), "--json", "--exact"])
    assert default.exit_code == exact.exit_code == 0, default.output + exact.output
    assert json.loads(default.output)["percentiles_exact"] is False
    assert json.loads(exact.output)["percentiles_exact"] is True
    table = runner.invoke(app, ["stats", "--db", str(journal)])
    assert "percentiles within 0.5%" in table.output


def test_ended_runs_not_caught_up_are_read_from_their_rows(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute(journal)
    with sqlite3.connect(journal) as conn:  # inserted already ended, as a bulk load does
        conn.execute(
            "INSERT INTO runs (id, workflow, status, fmt, created_at, updated_at, ended_at) "
            "VALUES ('loaded', 'triage', 'completed', 'json1', ?, ?, ?)",
            (NOW - HOUR, NOW - HOUR, NOW - HOUR + 3),
        )
        conn.execute(
            "INSERT INTO steps VALUES "
            "('loaded', 0, 'fetch', 'step', 'completed', '1', NULL, 1, ?, ?, NULL, 'json1')",
            (NOW - HOUR, NOW - HOUR + 2.5),
        )
        conn.execute("UPDATE runs SET status = 'queued' WHERE id = 'run0001'")  # and one reopened
        conn.execute("UPDATE runs SET status = 'failed' WHERE id = 'run0001'")  # and ended again
    with write_locked(journal, monkeypatch):  # a reader that cannot catch up reads their rows
        assert counts(journal) == (359, 359 * 4)
        assert_all_views_same(journal)
        fetch = next(s for s in compute(journal).step_stats if s.name == "fetch")
        assert counts(journal) == (359, 359 * 4)
    assert fetch.calls == 401
    assert fetch.max == pytest.approx(2.5)
    assert_all_views_same(journal)  # the next reader that can write catches them up
    assert counts(journal) == (361, 360 * 4 + 1)
