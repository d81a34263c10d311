"""Statistics rollups of the journal, kept by SQLite triggers on ``steps``.

``bandmaster stats`` over a million step rows cannot sort every latency and parse every model
call's meta each time it is asked. So every write to ``steps`` (insert, the one update of a
waiting row, delete by retention) also adjusts two small tables, inside the same statement and
therefore the same transaction: a crash can never leave them out of step with the journal,
and every writer (the engine, ``import``, ``archive``, a bulk load with plain ``sqlite3``)
keeps them without knowing they exist.

- ``step_rollup``: per workflow, UTC day of the run's creation, step name, kind and latency
  bucket: rows, failures, retries, summed latency, lowest and highest latency seen, bytes.
- ``model_rollup``: per workflow, day, step name and answering model/alias/version: calls,
  failures, tokens, cost, fallbacks, cache hits (from the step's meta JSON).
- ``latency_buckets``: bucket lower bounds, 1 % apart from 1 µs to two weeks; bucket 0 holds
  anything faster than 1 µs (zero included), bucket -1 the rows without an end time.

Rows are keyed by the run's workflow and creation day because that is how stats filter
(``--workflow``, ``--since``); both are fixed when the run is created, so a step's key never
moves. Deleting runs (archive) subtracts their steps: stats describe what is in the journal.
Counters that reach zero stay as zero rows until ``archive`` sweeps them. The SQL that turns
raw rows into rollup rows is one definition here, used by the triggers, by the backfill of an
older journal and by ``observe.stats_rollup`` for the partial day at the edge of ``--since``.
"""

from __future__ import annotations

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


def _row_statements(s: str, sign: str) -> list[str]:
    """Trigger statements adding (or, with ``sign="-"``, removing) the row ``s`` (NEW/OLD)."""
    run = f"(SELECT 1) LEFT JOIN runs r ON r.id = {s}.run_id"
    step = (
        f"INSERT INTO step_rollup ({', '.join(STEP_KEY + STEP_SUMS)}) "
        f"SELECT {', '.join(_step_values(s, 'r', sign))} FROM {run} WHERE true "
        f"{_upsert(STEP_KEY, STEP_SUMS)}"
    )
    # LIMIT keeps SQLite from flattening the subquery, which would parse the meta per ->>.
    model = (
        f"INSERT INTO model_rollup ({', '.join(MODEL_KEY + MODEL_SUMS)}) "
        f"SELECT {', '.join(_model_values(s, 'r', sign))} "
        f"FROM (SELECT {_meta(s)} AS j LIMIT 1) LEFT JOIN runs r ON r.id = {s}.run_id "
        f"WHERE {s}.kind = 'model' {_upsert(MODEL_KEY, MODEL_SUMS)}"
    )
    return [step, model]


def step_rows_sql(source: str) -> str:
    """``step_rollup`` rows (grouped) of the steps ``s`` and runs ``r`` that ``source`` (a FROM
    clause with its WHERE) yields."""
    values = _step_values("s", "r")
    aggregates = ["SUM", "SUM", "SUM", "TOTAL", "MIN", "MAX", "SUM"]
    columns = [*values[:5], *(f"{fn}({v})" for fn, v in zip(aggregates, values[5:], strict=True))]
    return f"SELECT {', '.join(columns)} FROM {source} GROUP BY 1, 2, 3, 4, 5"


def model_rows_sql(source: str) -> str:
    """``model_rollup`` rows (grouped) of the model calls among ``source``'s steps."""
    # MATERIALIZED: parse each meta once, not once per ->> below.
    inner = (
        f"SELECT s.name, s.status, r.workflow, r.created_at, {_meta('s')} AS j "
        f"FROM {source} AND s.kind = 'model'"
    )
    values = _model_values("m", "m")
    aggregates = ["SUM", "SUM", "TOTAL", "TOTAL", "TOTAL", "SUM", "SUM", "SUM"]
    columns = [*values[:6], *(f"{fn}({v})" for fn, v in zip(aggregates, values[6:], strict=True))]
    return f"WITH m AS MATERIALIZED ({inner}) SELECT {', '.join(columns)} FROM m GROUP BY 1, 2, 3, 4, 5, 6"


MIGRATION: list[str] = [
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
    # Backfill an older journal (before the triggers exist; same transaction, so no write
    # slips between the two).
    f"""
    INSERT INTO step_rollup ({", ".join(STEP_KEY + STEP_SUMS)})
    {step_rows_sql("steps s LEFT JOIN runs r ON r.id = s.run_id WHERE true")}
    ON CONFLICT DO NOTHING
    """,
    f"""
    INSERT INTO model_rollup ({", ".join(MODEL_KEY + MODEL_SUMS)})
    {model_rows_sql("steps s LEFT JOIN runs r ON r.id = s.run_id WHERE true")}
    ON CONFLICT DO NOTHING
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS steps_rollup_insert AFTER INSERT ON steps BEGIN
        {"; ".join(_row_statements("NEW", ""))};
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS steps_rollup_delete AFTER DELETE ON steps BEGIN
        {"; ".join(_row_statements("OLD", "-"))};
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS steps_rollup_update AFTER UPDATE ON steps BEGIN
        {"; ".join(_row_statements("OLD", "-") + _row_statements("NEW", ""))};
    END
    """,
]
"""The schema migration that adds the rollups (appended to ``store.schema.MIGRATIONS``)."""


def sweep_sql() -> list[str]:
    """Statements removing counters that deletions brought to zero."""
    return ["DELETE FROM step_rollup WHERE n = 0", "DELETE FROM model_rollup WHERE calls = 0"]
