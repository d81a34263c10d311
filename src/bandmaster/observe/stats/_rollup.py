"""Statistics from the rollup tables beside the journal (``store/rollups.py``).

Counts, sums, failures, retries, tokens, cost and bytes are exact (the same numbers as reading
every row). Percentiles come from the latency histogram: the bucket holding the nearest-rank
value is found by counting, and the value reported is the bucket's geometric middle, clamped
to the lowest and highest latency seen in it. Buckets are 1 % wide, so a percentile is within
0.5 % of the exact one (within 1 % when archiving removed part of a bucket). ``max`` is exact
unless archiving removed the slowest row of a bucket that still holds others.

Rollups hold the steps of ended runs, keyed by the run's workflow and UTC creation day, once
they are caught up: :func:`catch_up_before_reading` adds the runs that ended since the last
catch-up (a worker's pass, or the previous reader) before the snapshot is read. Runs still
going (queued, running, waiting), ended runs the reader could not catch up (a read-only
journal, a write lock held too long), and for a ``--since`` window the runs of the partial day
before its first midnight, are read from their journal rows, grouped by the same SQL into the
same shape: correct either way, only slower. Step rows without a run row (never written by
bandmaster) are not counted, where the exact path counts them in the per-step table of an
unfiltered journal.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, get_args

from bandmaster._types import TERMINAL_STATUSES, RunStatus
from bandmaster.engine.stats_report import (
    BOOKKEEPING_KINDS,
    PERCENTILES,
    DayStats,
    ModelStats,
    StepStats,
    WorkflowStats,
    model_flags,
    step_stats,
)
from bandmaster.observe.stats._raw import RUN_BYTES, assemble_run_stats, model_stats
from bandmaster.store import (
    BUCKET_RATIO,
    MODEL_KEY,
    MODEL_SUMS,
    SCHEMA_VERSION,
    SMALLEST_BUCKET,
    STEP_KEY,
    STEP_SUMS,
    UNFINISHED,
    catch_up,
    model_rows_sql,
    step_rows_sql,
)
from bandmaster.store.reading import JournalRef, journal_path

log = logging.getLogger("bandmaster.stats")

LOCK_WAIT = 2.0
"""Seconds a reader waits for the journal's write lock to catch the rollups up; past it, the
runs not caught up are read from their rows."""
READER_BATCH = 1000
"""Runs per catch-up transaction of a reader: bigger than a worker's (it is waiting for the
answer), still short enough (~0.1 s) for the workers' commits to go through between batches."""

_DAY = 86400
_EPOCH = date(1970, 1, 1)
_ENDED = f"({', '.join(repr(s) for s in sorted(TERMINAL_STATUSES))})"
_LIVE = f"({', '.join(repr(s) for s in get_args(RunStatus) if s not in TERMINAL_STATUSES)})"


def has_rollups(conn: sqlite3.Connection) -> bool:
    """Whether the journal has the rollup tables (a journal last opened by an older bandmaster
    has not; any store open migrates and backfills it)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'step_rollup'").fetchone()
    return row is not None


def catch_up_before_reading(db: JournalRef) -> int | None:
    """Add the runs that ended since the last catch-up to the rollups; returns how many, or
    ``None`` when the journal cannot be written now (read-only file or directory, write lock
    held longer than :data:`LOCK_WAIT`, a schema this bandmaster does not know): the reader then
    reads them from their rows. Never migrates: a journal from before the rollups stays as it is."""
    uri = f"{journal_path(db).resolve().as_uri()}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=LOCK_WAIT)
    except sqlite3.OperationalError as exc:
        log.debug("stats: journal not writable (%s); reading the backlog from rows", exc)
        return None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if not has_rollups(conn) or version > SCHEMA_VERSION:
            return None
        return catch_up(conn, batch=READER_BATCH)
    except sqlite3.OperationalError as exc:  # read only, or locked: batches done so far stay
        log.debug("stats: rollups not caught up (%s); reading the backlog from rows", exc)
        return None
    finally:
        conn.close()


def compute_rollups(
    conn: sqlite3.Connection, workflow: str | None, cutoff: float | None
) -> tuple[list[StepStats], list[ModelStats], list[WorkflowStats], list[DayStats]]:
    """The statistics ``stats_raw.compute_raw`` gives, from the rollups (see the module doc)."""
    params: dict[str, object] = {"workflow": workflow, "cutoff": cutoff}
    rollup_where = "true"
    if workflow is not None:
        rollup_where += " AND workflow = :workflow"
    if cutoff is not None:
        params["first_day"] = first_day = math.ceil(cutoff / _DAY)
        params["edge"] = first_day * _DAY
        rollup_where += " AND day >= :first_day"
    run_rows = _run_rows(conn, workflow, cutoff, params)
    strays = sum(row[5] for row in run_rows)
    _collect_unrolled(conn, workflow, cutoff, params, strays=strays > 0)
    steps_src = _union("step_rollup", "part_steps", STEP_KEY + STEP_SUMS, rollup_where)
    models_src = _union("model_rollup", "part_models", MODEL_KEY + MODEL_SUMS, rollup_where)

    groups, cost_by_day = _model_groups(conn, models_src, params)
    step_stats = _step_stats(conn, steps_src, params, groups)
    workflows, days = _run_stats(conn, steps_src, params, run_rows, cost_by_day)
    return step_stats, model_stats(groups), workflows, days


def _union(table: str, partial: str, columns: tuple[str, ...], where: str) -> str:
    names = ", ".join(columns)
    return f"SELECT {names} FROM {table} WHERE {where} UNION ALL SELECT {names} FROM temp.{partial}"


def _collect_unrolled(
    conn: sqlite3.Connection,
    workflow: str | None,
    cutoff: float | None,
    params: dict[str, object],
    *,
    strays: bool,
) -> None:
    """Rollup rows, computed from their journal rows, of the selected runs the rollup tables
    do not hold, into two temporary tables: runs not ended yet (found by the status index),
    ended runs a bulk load left out (``strays``: only then is ``runs`` scanned for them), and
    for a window the runs created between its start and the next midnight."""
    live = f"r.status IN {_LIVE}"
    stray = f"r.status IN {_ENDED} AND r.rolled_up IS NULL"
    selections = [live, stray] if strays else [live]
    if cutoff is not None:
        edge = " AND r.created_at >= :edge"
        selections = ["r.created_at >= :cutoff AND r.created_at < :edge", *(f"{w}{edge}" for w in selections)]
    if workflow is not None:
        selections = [f"{where} AND r.workflow = :workflow" for where in selections]
    for table, key, sums, rows_sql in (
        ("part_steps", STEP_KEY, STEP_SUMS, step_rows_sql),
        ("part_models", MODEL_KEY, MODEL_SUMS, model_rows_sql),
    ):
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.execute(f"CREATE TEMP TABLE {table} ({', '.join(key + sums)})")
        for where in selections:  # CROSS JOIN: the few runs drive the join, not the steps
            source = f"runs r CROSS JOIN steps s ON s.run_id = r.id WHERE {where}"
            conn.execute(f"INSERT INTO temp.{table} {rows_sql(source)}", params)


def _model_groups(
    conn: sqlite3.Connection, models_src: str, params: dict[str, object]
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], float]]:
    """Model calls by step name and answering model/alias/version (the shape ``stats_raw``
    groups them in), and model cost by workflow and day."""
    rows = conn.execute(
        f"""
        SELECT workflow, day, name, model, alias, version, SUM(calls), SUM(failures), TOTAL(tokens_in),
               TOTAL(tokens_out), TOTAL(cost), SUM(fallbacks), SUM(cache_hits), SUM(cache_known)
        FROM ({models_src}) GROUP BY 1, 2, 3, 4, 5, 6
        """,
        params,
    ).fetchall()
    merged: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = {}
    cost_by_day: dict[tuple[str, int], float] = defaultdict(float)
    sums = (
        "calls",
        "failures",
        "input_tokens",
        "output_tokens",
        "cost",
        "fallback_calls",
        "cache_hits",
        "cache_known",
    )
    for wf, day, name, model, alias, version, *values in rows:
        cost_by_day[(wf, day)] += values[4]
        key = (name, model, alias or None, version or None)  # '' stands for "none" in the rollup
        group = merged.setdefault(
            key, dict.fromkeys(sums, 0) | dict(zip(("name", "model", "alias", "version"), key, strict=True))
        )
        for field, value in zip(sums, values, strict=True):
            group[field] += value
    groups = [g for g in merged.values() if g["calls"] > 0]
    return groups, cost_by_day


def _step_stats(
    conn: sqlite3.Connection, steps_src: str, params: dict[str, object], groups: list[dict[str, Any]]
) -> list[StepStats]:
    bookkeeping = ", ".join(repr(k) for k in BOOKKEEPING_KINDS)
    rows = conn.execute(
        f"""
        SELECT name, kind, bucket, SUM(n), SUM(failures), SUM(retries), TOTAL(latency), MIN(lo), MAX(hi)
        FROM ({steps_src}) WHERE n > 0 AND kind NOT IN ({bookkeeping})
        GROUP BY name, kind, bucket ORDER BY name, kind, bucket
        """,
        params,
    ).fetchall()
    by_step: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for name, kind, *rest in rows:
        by_step[(name, kind)].append(tuple(rest))
    flags = model_flags(groups)
    out = []
    for (name, kind), buckets in sorted(by_step.items()):
        histogram = [(b[0], b[1], b[5], b[6]) for b in buckets if b[0] != UNFINISHED]
        ended = sum(b[1] for b in histogram)
        p50, p95, p99 = (_percentile(histogram, ended, p) for p in PERCENTILES) if ended else (None,) * 3
        out.append(
            step_stats(
                name,
                kind,
                calls=sum(b[1] for b in buckets),
                failures=sum(b[2] for b in buckets),
                retries=sum(b[3] for b in buckets),
                percentiles=(p50, p95, p99),
                mean=sum(b[4] for b in buckets) / ended if ended else None,
                longest=max(b[3] for b in histogram) if ended else None,
                flags=flags,
            )
        )
    return out


def _percentile(histogram: list[tuple[int, int, float, float]], ended: int, p: int) -> float:
    """Nearest rank ``ceil(p * n / 100)`` located in the histogram of (bucket, count, lowest,
    highest), sorted by bucket."""
    rank = max(1, -(-p * ended // 100))
    seen = 0
    for bucket, count, lowest, highest in histogram:
        seen += count
        if seen >= rank:
            middle = 0.0 if bucket == 0 else SMALLEST_BUCKET * BUCKET_RATIO ** (bucket - 0.5)
            return min(max(middle, lowest), highest)
    return histogram[-1][3]


def _run_rows(
    conn: sqlite3.Connection, workflow: str | None, cutoff: float | None, params: dict[str, object]
) -> list[tuple[str, int, str, int, float, int]]:
    """Runs by workflow, UTC day and status: count, bytes, and how many ended without joining
    the rollups (from the runs table: a run's status changes after its steps are written)."""
    where = "true"
    if workflow is not None:
        where += " AND r.workflow = :workflow"
    if cutoff is not None:
        where += " AND r.created_at >= :cutoff"
    return conn.execute(
        f"""
        SELECT r.workflow, CAST(r.created_at / {_DAY} AS INTEGER), r.status, COUNT(*), TOTAL({RUN_BYTES}),
               SUM(r.rolled_up IS NULL AND r.status IN {_ENDED})
        FROM runs r WHERE {where} GROUP BY 1, 2, 3
        """,
        params,
    ).fetchall()


def _run_stats(
    conn: sqlite3.Connection,
    steps_src: str,
    params: dict[str, object],
    run_rows: list[tuple[str, int, str, int, float, int]],
    cost_by_day: dict[tuple[str, int], float],
) -> tuple[list[WorkflowStats], list[DayStats]]:
    """The runs joined with their steps' totals per workflow and day, in Python (a few hundred
    groups)."""
    step_totals = {
        (wf, day): (n, size, retries)
        for wf, day, n, size, retries in conn.execute(
            f"SELECT workflow, day, SUM(n), SUM(bytes), SUM(retries) FROM ({steps_src}) GROUP BY 1, 2", params
        )
    }

    def rows() -> Iterator[tuple[str, str, str, int, float, float, float, float]]:
        for wf, day, status, runs, run_bytes, _ in run_rows:
            # The day's steps and cost go with its first status row; only sums are read.
            n, size, retries = step_totals.pop((wf, day), (0, 0, 0))
            cost = cost_by_day.pop((wf, day), 0.0)
            yield (
                wf,
                (_EPOCH + timedelta(days=day)).isoformat(),
                status,
                runs,
                n,
                run_bytes + size,
                retries,
                cost,
            )

    return assemble_run_stats(rows())
