"""Statistics rollups of the journal, caught up off the write path.

``bandmaster stats`` over a million step rows cannot sort every latency and parse every model
call's meta each time it is asked. So the steps of ended runs (completed, failed, cancelled)
are summed into two small tables by :func:`catch_up`, which adds the ended runs not yet there
(``runs.rolled_up IS NULL``) in bulk and marks them, batch by batch, each batch in one write
transaction: a crash never leaves the rollups out of step with the marks, and a run is added
exactly once, however many processes catch up at the same time (the add and the mark select
the same unmarked runs under the write lock). A run has no more step writes once it ended
(they are fenced by its lease), so nothing is counted twice. Nothing runs when a run ends: the
engine's write path pays nothing. ``observe.stats.compute`` catches up before it reads (so
stats are exact up to the moment asked), workers catch up every half minute (so the backlog a
reader pays stays small), ``import`` adds its runs in its own transaction.

- ``step_rollup``: per workflow, UTC day of the run's creation, step name, kind and latency
  bucket: rows, failures, retries, summed latency, lowest and highest latency seen, bytes.
- ``model_rollup``: per workflow, day, step name and answering model/alias/version: calls,
  failures, tokens, cost, fallbacks, cache hits (from the step's meta JSON).
- ``latency_buckets``: bucket lower bounds, 1 % apart from 1 µs to two weeks; bucket 0 holds
  anything faster than 1 µs (zero included), bucket -1 the rows without an end time.

Runs still going, and ended runs not caught up yet (a read-only reader cannot catch up), are
read from their rows by ``observe.stats_rollup``. Triggers remain only where the normal write
path does not go: deleting a rolled-up run or its steps subtracts them (archive subtracts in
bulk first), and a rolled-up run set back to a live status leaves the rollups (stats describe
what is in the journal now; the trigger's first test, ``rolled_up = 1``, ends it for every
normal status change, since only ended runs are rolled up). Counters that reach zero stay as
zero rows until ``archive`` sweeps them (:data:`SWEEP`).

The SQL that turns journal rows into rollup rows is defined once here, for the catch-up, the
backfill of an older journal, the remaining triggers and the reader.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

from bandmaster._types import TERMINAL_STATUSES
from bandmaster.errors import UsageError

BUCKET_RATIO = 1.01
"""Each latency bucket's bounds are this factor apart."""
SMALLEST_BUCKET = 1e-6
"""Lower bound (seconds) of bucket 1; bucket 0 holds everything faster, zero included."""
BUCKETS = 2800
"""Buckets 1..2800 reach 1 µs * 1.01**2800 ≈ 1.2 million seconds (two weeks)."""
UNFINISHED = -1
"""The bucket of rows without an end time (a timer or signal wait still waiting)."""

STEP_KEY = ("workflow", "day", "name", "kind", "bucket")
STEP_SUMS = ("n", "failures", "retries", "latency", "lo", "hi", "bytes")
MODEL_KEY = ("workflow", "day", "name", "model", "alias", "version")
MODEL_SUMS = (
    "calls",
    "failures",
    "tokens_in",
    "tokens_out",
    "cost",
    "fallbacks",
    "cache_hits",
    "cache_known",
)

_META_PATHS = (
    "'$.model', '$.served_by', '$.alias', '$.version', '$.tokens.input', '$.tokens.output', "
    "'$.cost', '$.fallback', '$.cache_hit'"
)


def _run_key(run: str) -> list[str]:
    # A step whose run row is missing (not written by bandmaster) is kept under ('', -1).
    return [f"COALESCE({run}.workflow, '')", f"COALESCE(CAST({run}.created_at / 86400 AS INTEGER), -1)"]


def _step_values(s: str, run: str, sign: str = "") -> list[str]:
    """One steps row ``s`` (of run ``run``) as a step_rollup row; ``sign="-"`` to subtract."""
    latency = f"({s}.ended_at - {s}.started_at)"
    bucket = (
        f"CASE WHEN {s}.ended_at IS NULL THEN {UNFINISHED} ELSE COALESCE((SELECT b.bucket "
        f"FROM latency_buckets b WHERE b.lower <= {latency} ORDER BY b.lower DESC LIMIT 1), 0) END"
    )
    size = (
        f"length(CAST({s}.name AS BLOB)) + COALESCE(length(CAST({s}.output AS BLOB)), 0) + "
        f"COALESCE(length(CAST({s}.error AS BLOB)), 0) + COALESCE(length(CAST({s}.meta AS BLOB)), 0)"
    )
    return [
        *_run_key(run),
        f"{s}.name",
        f"{s}.kind",
        bucket,
        f"{sign}1",
        f"{sign}({s}.status = 'failed')",
        f"{sign}({s}.attempts - 1)",
        f"{sign}COALESCE({latency}, 0.0)",
        latency,
        latency,
        f"{sign}({size})",
    ]


def _model_values(s: str, run: str, sign: str = "") -> list[str]:
    """One model-call row ``s`` as a model_rollup row; ``j`` must be its parsed meta paths."""
    return [
        *_run_key(run),
        f"{s}.name",
        f"COALESCE(j ->> 0, j ->> 1, {s}.name)",
        "COALESCE(j ->> 2, '')",
        "COALESCE(j ->> 3, '')",
        f"{sign}1",
        f"{sign}({s}.status = 'failed')",
        f"{sign}COALESCE(j ->> 4, 0)",
        f"{sign}COALESCE(j ->> 5, 0)",
        f"{sign}COALESCE(j ->> 6, 0)",
        f"{sign}(j ->> 7 IS NOT NULL)",
        f"{sign}COALESCE(j ->> 8 = 1, 0)",
        f"{sign}(j ->> 8 IS NOT NULL)",
    ]


def _meta(s: str) -> str:
    # One parse of the meta (which holds the whole request) into a small JSON array; a meta
    # that is not JSON counts as empty, so a bad row never fails the write that carries it.
    return f"CASE WHEN json_valid({s}.meta) THEN json_extract({s}.meta, {_META_PATHS}) END"


def _upsert(key: tuple[str, ...], sums: tuple[str, ...]) -> str:
    sets = []
    for column in sums:
        if column in ("lo", "hi"):  # the scalar min/max of NULL and x is NULL: keep the other
            fn = "min" if column == "lo" else "max"
            sets.append(
                f"{column} = COALESCE({fn}({column}, excluded.{column}), {column}, excluded.{column})"
            )
        else:
            sets.append(f"{column} = {column} + excluded.{column}")
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"


def step_rows_sql(source: str, *, run: str = "r", sign: str = "") -> str:
    """SELECT of ``step_rollup`` rows summing the steps ``s`` of ``source`` (a FROM clause
    ending in a WHERE, in which ``run`` names the steps' run); ``sign="-"`` to subtract."""
    values = _step_values("s", run, sign)
    aggregates = ["SUM", "SUM", "SUM", "TOTAL", "MIN", "MAX", "SUM"]
    columns = [*values[:5], *(f"{fn}({v})" for fn, v in zip(aggregates, values[5:], strict=True))]
    return f"SELECT {', '.join(columns)} FROM {source} GROUP BY 1, 2, 3, 4, 5"


def model_rows_sql(source: str, *, run: str = "r", sign: str = "") -> str:
    """SELECT of ``model_rollup`` rows summing the model calls among ``source``'s steps."""
    # MATERIALIZED: parse each meta once, not once per ->> (SQLite would inline the subquery).
    inner = (
        f"SELECT s.name AS name, s.status AS status, {run}.workflow AS workflow, "
        f"{run}.created_at AS created_at, {_meta('s')} AS j FROM {source} AND s.kind = 'model'"
    )
    values = _model_values("m", "m", sign)
    aggregates = ["SUM", "SUM", "TOTAL", "TOTAL", "TOTAL", "SUM", "SUM", "SUM"]
    columns = [*values[:6], *(f"{fn}({v})" for fn, v in zip(aggregates, values[6:], strict=True))]
    return (
        f"WITH m AS MATERIALIZED ({inner}) SELECT {', '.join(columns)} FROM m WHERE true "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )


def _add(source: str, *, run: str = "r", sign: str = "") -> list[str]:
    """Statements adding (``sign="-"``: removing) the steps of ``source`` to the rollups,
    grouped first (for many runs at once: the backfill)."""
    return [
        f"INSERT INTO step_rollup ({', '.join(STEP_KEY + STEP_SUMS)}) "
        f"{step_rows_sql(source, run=run, sign=sign)} {_upsert(STEP_KEY, STEP_SUMS)}",
        f"INSERT INTO model_rollup ({', '.join(MODEL_KEY + MODEL_SUMS)}) "
        f"{model_rows_sql(source, run=run, sign=sign)} {_upsert(MODEL_KEY, MODEL_SUMS)}",
    ]


def _add_each(source: str, *, run: str = "r", sign: str = "") -> list[str]:
    """As :func:`_add`, one upsert per row without grouping (for one run: a trigger). Half the
    cost of sorting a dozen rows into groups first."""
    # LIMIT/OFFSET keeps SQLite from inlining the subquery, which would parse the meta per ->>.
    calls = (
        f"SELECT s.name AS name, s.status AS status, {run}.workflow AS workflow, {run}.created_at "
        f"AS created_at, {_meta('s')} AS j FROM {source} AND s.kind = 'model' LIMIT -1 OFFSET 0"
    )
    return [
        f"INSERT INTO step_rollup ({', '.join(STEP_KEY + STEP_SUMS)}) "
        f"SELECT {', '.join(_step_values('s', run, sign))} FROM {source} {_upsert(STEP_KEY, STEP_SUMS)}",
        f"INSERT INTO model_rollup ({', '.join(MODEL_KEY + MODEL_SUMS)}) "
        f"SELECT {', '.join(_model_values('m', 'm', sign))} FROM ({calls}) AS m WHERE true "
        f"{_upsert(MODEL_KEY, MODEL_SUMS)}",
    ]


def _one_row(row: str) -> str:
    """A source of the single steps row ``row`` (NEW or OLD inside a trigger) and its run."""
    columns = (
        "run_id",
        "name",
        "kind",
        "status",
        "output",
        "error",
        "attempts",
        "started_at",
        "ended_at",
        "meta",
    )
    projected = ", ".join(f"{row}.{c} AS {c}" for c in columns)
    return f"(SELECT {projected}) AS s JOIN runs r ON r.id = s.run_id WHERE true"


def _trigger(name: str, event: str, when: str, statements: list[str]) -> str:
    body = "".join(f"{statement};\n" for statement in statements)
    return f"CREATE TRIGGER IF NOT EXISTS {name} {event} WHEN {when} BEGIN\n{body}END"


_TERMINAL = f"({', '.join(repr(s) for s in sorted(TERMINAL_STATUSES))})"
_ROLLED = "(SELECT rolled_up FROM runs WHERE id = {row}.run_id) = 1"

MIGRATION: list[str] = [
    # NULL until the run's steps are in the rollups (set by the triggers below).
    "ALTER TABLE runs ADD COLUMN rolled_up INTEGER",
    """
    CREATE TABLE IF NOT EXISTS latency_buckets (
        lower  REAL PRIMARY KEY,         -- seconds; the bucket holds [lower, next lower)
        bucket INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    f"""
    INSERT OR IGNORE INTO latency_buckets (lower, bucket)
    WITH RECURSIVE b(bucket, lower) AS (
        SELECT 1, {SMALLEST_BUCKET}
        UNION ALL SELECT bucket + 1, lower * {BUCKET_RATIO} FROM b WHERE bucket < {BUCKETS}
    ) SELECT lower, bucket FROM b
    """,
    """
    CREATE TABLE IF NOT EXISTS step_rollup (
        workflow TEXT NOT NULL,
        day      INTEGER NOT NULL,       -- UTC day of the run's created_at (days since 1970)
        name     TEXT NOT NULL,
        kind     TEXT NOT NULL,
        bucket   INTEGER NOT NULL,       -- latency_buckets.bucket; 0 below 1 µs; -1 unfinished
        n        INTEGER NOT NULL,       -- step rows
        failures INTEGER NOT NULL,
        retries  INTEGER NOT NULL,       -- attempts beyond the first
        latency  REAL NOT NULL,          -- summed, seconds
        lo       REAL,                   -- lowest and highest latency seen in the bucket
        hi       REAL,
        bytes    INTEGER NOT NULL,       -- name, output, error and meta, as observe.stats counts
        PRIMARY KEY (workflow, day, name, kind, bucket)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS model_rollup (
        workflow    TEXT NOT NULL,
        day         INTEGER NOT NULL,
        name        TEXT NOT NULL,       -- the step (call_model) name
        model       TEXT NOT NULL,       -- the concrete model that answered
        alias       TEXT NOT NULL,       -- '' when the meta has none
        version     TEXT NOT NULL,       -- served version label, '' when none
        calls       INTEGER NOT NULL,
        failures    INTEGER NOT NULL,
        tokens_in   REAL NOT NULL,
        tokens_out  REAL NOT NULL,
        cost        REAL NOT NULL,
        fallbacks   INTEGER NOT NULL,
        cache_hits  INTEGER NOT NULL,
        cache_known INTEGER NOT NULL,    -- calls whose meta says hit or miss
        PRIMARY KEY (workflow, day, name, model, alias, version)
    ) WITHOUT ROWID
    """,
    # Backfill: the finished runs of an older journal, in bulk (same transaction as the
    # triggers, so no write slips between).
    *_add(f"runs r JOIN steps s ON s.run_id = r.id WHERE r.status IN {_TERMINAL}"),
    f"UPDATE runs SET rolled_up = 1 WHERE status IN {_TERMINAL}",
    # A run's steps join the rollups when it ends (in the statement that ends it). Dropped
    # again by CATCH_UP_MIGRATION: catch_up() does it off the write path.
    _trigger(
        "runs_rollup_end",
        "AFTER UPDATE OF status ON runs",
        f"NEW.status IN {_TERMINAL} AND NEW.rolled_up IS NULL",
        [
            *_add_each("steps s WHERE s.run_id = NEW.id", run="NEW"),
            "UPDATE runs SET rolled_up = 1 WHERE id = NEW.id",
        ],
    ),
    _trigger(
        "runs_rollup_reopen",
        "AFTER UPDATE OF status ON runs",
        f"NEW.status NOT IN {_TERMINAL} AND NEW.rolled_up = 1",
        [
            *_add_each("steps s WHERE s.run_id = NEW.id", run="NEW", sign="-"),
            "UPDATE runs SET rolled_up = NULL WHERE id = NEW.id",
        ],
    ),
    _trigger(
        "runs_rollup_delete",
        "AFTER DELETE ON runs",
        "OLD.rolled_up = 1",
        _add_each("steps s WHERE s.run_id = OLD.id", run="OLD", sign="-"),
    ),
    # Rows of a run already rolled up: removed by archive (steps first), rarely anything else.
    _trigger(
        "steps_rollup_delete",
        "AFTER DELETE ON steps",
        _ROLLED.format(row="OLD"),
        _add_each(_one_row("OLD"), sign="-"),
    ),
    _trigger(
        "steps_rollup_update",
        "AFTER UPDATE ON steps",
        _ROLLED.format(row="NEW"),
        [*_add_each(_one_row("OLD"), sign="-"), *_add_each(_one_row("NEW"))],
    ),
]
"""The schema migration that adds the rollups (appended to ``store.schema.MIGRATIONS``)."""

CATCH_UP_MIGRATION: list[str] = [
    # Ended runs join the rollups in catch_up(), not in the statement that ends them.
    "DROP TRIGGER IF EXISTS runs_rollup_end",
    # Its WHEN subquery ran on every step update (a timer or signal wait completing); bandmaster
    # never updates a step of an ended run (the lease fences it), so it guarded only hand edits.
    "DROP TRIGGER IF EXISTS steps_rollup_update",
    # The same reopen trigger, its WHEN tested cheapest first: every claim and every end of a
    # run fires it, and the NOT IN list cost 1-2 µs per step of the engine's chain; a run not
    # rolled up (every live one) now stops at the first test (benchmarks/README.md).
    "DROP TRIGGER IF EXISTS runs_rollup_reopen",
    _trigger(
        "runs_rollup_reopen",
        "AFTER UPDATE OF status ON runs",
        f"NEW.rolled_up = 1 AND NEW.status NOT IN {_TERMINAL}",
        [
            *_add_each("steps s WHERE s.run_id = NEW.id", run="NEW", sign="-"),
            "UPDATE runs SET rolled_up = NULL WHERE id = NEW.id",
        ],
    ),
]
"""The schema migration that takes rollup maintenance off the write path (appended after
:data:`MIGRATION`; a journal that ran it has a backlog from then on, which readers and workers
catch up)."""


def remove_runs_sql(ids: str) -> list[str]:
    """Statements taking the runs whose ids ``ids`` (a subquery with one ``?``) selects out of
    the rollups in bulk, before they are deleted: faster than the per-row delete triggers."""
    source = f"runs r CROSS JOIN steps s ON s.run_id = r.id WHERE r.id IN ({ids}) AND r.rolled_up = 1"
    return [
        *_add(source, sign="-"),
        f"UPDATE runs SET rolled_up = NULL WHERE id IN ({ids}) AND rolled_up = 1",
    ]


SWEEP = ["DELETE FROM step_rollup WHERE n = 0", "DELETE FROM model_rollup WHERE calls = 0"]
"""Statements removing the counters that deletions brought to zero (``archive`` runs them)."""


BATCH = 200
"""Runs added per write transaction by :func:`catch_up`: some 15-30 ms of write lock on a loaded
2-core machine, so the engine's commits never wait long behind it (benchmarks/README.md)."""

MAX_PAUSE = 0.05
"""Longest pause between two batches (each pause lasts as long as the batch before it held the
write lock, so the engine's commits get the lock at least half of the time)."""

_IDS = "SELECT value FROM json_each(?)"
# The unary + keeps SQLite from walking the status index: the given ids drive the lookup.
_BACKLOG = "+{t}status IN " + _TERMINAL + " AND {t}rolled_up IS NULL"


def add_runs_sql(ids: str) -> list[str]:
    """Statements adding the ended runs not rolled up yet among those ``ids`` (a subquery with
    one ``?``) selects to the rollups, and marking them; the caller holds the transaction."""
    runs = f"r.id IN ({ids}) AND {_BACKLOG.format(t='r.')}"
    source = f"runs r CROSS JOIN steps s ON s.run_id = r.id WHERE {runs}"
    mark = f"UPDATE runs SET rolled_up = 1 WHERE id IN ({ids}) AND {_BACKLOG.format(t='')}"
    return [*_add(source), mark]


def backlog(conn: sqlite3.Connection, limit: int | None = None) -> list[str]:
    """Ids of the ended runs not in the rollups yet (one pass over ``runs``, no write lock)."""
    query = f"SELECT id FROM runs WHERE {_BACKLOG.format(t='')}"
    rows = conn.execute(query if limit is None else f"{query} LIMIT {int(limit)}").fetchall()
    return [row[0] for row in rows]


def catch_up(
    conn: sqlite3.Connection,
    *,
    limit: int | None = None,
    batch: int = BATCH,
    keep_going: Callable[[], bool] | None = None,
) -> int:
    """Add the ended runs not rolled up yet (at most ``limit``) to the rollups and mark them,
    ``batch`` runs per write transaction; returns how many this call added.

    Safe to interrupt anywhere (a batch is added and marked together or not at all) and to run
    in several processes at once (each batch re-selects its unmarked runs under the write lock,
    so a run another process added meanwhile is skipped). ``conn`` must be in autocommit mode
    (``isolation_level=None``) and outside a transaction; lock waits follow its busy timeout
    (``sqlite3.OperationalError`` when it runs out, with the batches before kept); between
    batches it pauses as long as the last one held the lock (at most :data:`MAX_PAUSE`).
    ``keep_going`` is asked before each batch after the first (a worker stopping says no).
    """
    if conn.isolation_level is not None or conn.in_transaction:
        raise UsageError(
            "rollups.catch_up needs an autocommit connection outside a transaction: "
            "sqlite3.connect(path, isolation_level=None), and no BEGIN pending"
        )
    if batch < 1 or (limit is not None and limit < 0):
        raise UsageError(f"rollups.catch_up: batch must be >= 1 and limit >= 0, got {batch=}, {limit=}")
    pending = backlog(conn, limit)
    added = 0
    held = 0.0  # seconds the last batch held the write lock
    for start in range(0, len(pending), batch):
        if start:
            # Writers waiting for the lock poll it from SQLite's busy handler, sleeping between
            # tries: without a pause as long as the batch, back-to-back batches starve them.
            time.sleep(min(held, MAX_PAUSE))
            if keep_going is not None and not keep_going():
                break
        ids = json.dumps(pending[start : start + batch])
        conn.execute("BEGIN IMMEDIATE")
        locked = time.perf_counter()
        try:
            *add, mark = add_runs_sql(_IDS)
            for statement in add:
                conn.execute(statement, (ids,))
            added += conn.execute(mark, (ids,)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        held = time.perf_counter() - locked
    return added
