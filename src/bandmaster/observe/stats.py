"""Statistics from the journal: latency percentiles, failures, retries, fallbacks, cache hits,
tokens and cost per model, completion and cost per workflow, storage per run and per day.

Everything is aggregated inside SQLite (window functions for exact nearest-rank percentiles,
``json_extract`` on step meta), so a million steps take seconds and no row reaches Python.

    from bandmaster.observe.stats import compute
    stats = compute("bm.db", workflow="triage", since="24h")
    stats.steps[0].p99, stats.models[0].cost, stats.workflows[0].completion_rate
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, date, datetime

from pydantic import BaseModel

from bandmaster.observe.stats_db import JournalRef, connect, journal_path, parse_duration

# Journaled bookkeeping, not work: their "latency" is a timer or a wait for a person.
BOOKKEEPING_KINDS = ("now", "uuid", "random", "sleep", "wait")
_NOT_BOOKKEEPING = f"kind NOT IN ({', '.join(repr(k) for k in BOOKKEEPING_KINDS)})"
PERCENTILES = (50, 95, 99)


class StepStats(BaseModel):
    """One step (or model call) name. Latencies in seconds, over finished attempts-with-retries."""

    name: str
    kind: str
    calls: int
    runs: int
    failures: int
    failure_rate: float
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None
    retries: int
    """Attempts beyond the first, summed."""
    retries_per_run: float
    fallback_rate: float
    """Share of calls answered by a fallback rather than the primary."""
    cache_hit_rate: float | None
    """Share of calls answered from the cache; ``None`` when the step has no cache."""


class ModelStats(BaseModel):
    """One model (the concrete version that answered), per alias and served version label."""

    model: str
    alias: str | None
    version: str | None
    calls: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost: float
    fallback_calls: int
    cache_hits: int


class WorkflowStats(BaseModel):
    workflow: str
    runs: int
    by_status: dict[str, int]
    completion_rate: float | None
    """Completed runs over runs that ended (completed, failed, cancelled)."""
    cost: float
    mean_cost_per_run: float
    retries_per_run: float
    journal_bytes: int
    bytes_per_run: float


class DayStats(BaseModel):
    """Storage growth: what the runs created that day (UTC) occupy."""

    day: date
    runs: int
    steps: int
    journal_bytes: int


class Stats(BaseModel):
    db: str
    workflow: str | None
    since: datetime | None
    computed_at: datetime
    seconds: float
    """Time the computation took."""
    runs: int
    steps: int
    file_bytes: int
    """Size of the journal file (plus its WAL); free pages included."""
    free_bytes: int
    """Free pages inside the file, reused before it grows."""
    step_stats: list[StepStats]
    models: list[ModelStats]
    workflows: list[WorkflowStats]
    days: list[DayStats]


def compute(db: JournalRef, workflow: str | None = None, since: str | float | None = None) -> Stats:
    """Statistics of the runs in ``db`` (a store, path or URL), optionally of one workflow and
    of runs created within ``since`` (``"24h"``, ``"7d"``, seconds)."""
    started = time.perf_counter()
    cutoff = time.time() - parse_duration(since, what="since") if since is not None else None
    conn = connect(db)
    try:
        conn.execute("BEGIN")  # one snapshot for every query
        where, params = _run_filter(workflow, cutoff)
        steps = _step_stats(conn, where, params)
        models = _model_stats(conn, where, params)
        workflows, days = _run_stats(conn, where, params)
        file_bytes, free_bytes = _file_sizes(conn, journal_path(db))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Stats(
        db=str(journal_path(db)),
        workflow=workflow,
        since=datetime.fromtimestamp(cutoff, UTC) if cutoff is not None else None,
        computed_at=datetime.now(UTC),
        seconds=time.perf_counter() - started,
        runs=sum(w.runs for w in workflows),
        steps=sum(d.steps for d in days),
        file_bytes=file_bytes,
        free_bytes=free_bytes,
        step_stats=steps,
        models=models,
        workflows=workflows,
        days=days,
    )


def _run_filter(workflow: str | None, cutoff: float | None) -> tuple[str, dict[str, object]]:
    """A WHERE clause over ``runs`` (aliased ``r``) and its parameters."""
    clauses: list[str] = ["1"]
    params: dict[str, object] = {}
    if workflow is not None:
        clauses.append("r.workflow = :workflow")
        params["workflow"] = workflow
    if cutoff is not None:
        clauses.append("r.created_at >= :cutoff")
        params["cutoff"] = cutoff
    return " AND ".join(clauses), params


def _steps_of_runs(where: str, columns: str, extra: str = "") -> str:
    """Steps of the selected runs; without a filter, no join at all (the common, big case)."""
    if where == "1":
        return f"SELECT {columns} FROM steps WHERE {_NOT_BOOKKEEPING} {extra}"
    return (
        f"SELECT {columns} FROM steps WHERE {_NOT_BOOKKEEPING} {extra} "
        f"AND run_id IN (SELECT r.id FROM runs r WHERE {where})"
    )


def _step_stats(conn: sqlite3.Connection, where: str, params: dict[str, object]) -> list[StepStats]:
    # Nearest-rank percentile: the value at rank ceil(p * n / 100) among finished calls,
    # written as integer division so it needs no math extension.
    picks = ", ".join(f"MAX(CASE WHEN rn = ({p} * n + 99) / 100 THEN d END) AS p{p}" for p in PERCENTILES)
    sql = f"""
        WITH s AS ({
        _steps_of_runs(where, "run_id, name, kind, status, attempts, meta, ended_at - started_at AS d")
    }),
        ranked AS (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY name, kind ORDER BY d IS NULL, d) AS rn,
                   COUNT(d) OVER (PARTITION BY name, kind) AS n
            FROM s
        )
        SELECT name, kind, COUNT(*), COUNT(DISTINCT run_id), SUM(status = 'failed'), {picks},
               AVG(d), MAX(d), SUM(attempts - 1),
               SUM(json_extract(meta, '$.fallback') IS NOT NULL),
               SUM(json_extract(meta, '$.cache_hit') = 1),
               SUM(json_extract(meta, '$.cache_hit') IS NOT NULL)
        FROM ranked GROUP BY name, kind ORDER BY name, kind
    """
    out = []
    for (
        name,
        kind,
        calls,
        runs,
        failed,
        p50,
        p95,
        p99,
        mean,
        longest,
        retries,
        fallbacks,
        hits,
        cached,
    ) in conn.execute(sql, params):
        out.append(
            StepStats(
                name=name,
                kind=kind,
                calls=calls,
                runs=runs,
                failures=failed,
                failure_rate=failed / calls,
                p50=p50,
                p95=p95,
                p99=p99,
                mean=mean,
                max=longest,
                retries=retries,
                retries_per_run=retries / runs,
                fallback_rate=fallbacks / calls,
                cache_hit_rate=hits / cached if cached else None,
            )
        )
    return out


def _model_stats(conn: sqlite3.Connection, where: str, params: dict[str, object]) -> list[ModelStats]:
    # One JSON parse per row: json_extract with several paths returns them as a small array.
    fields = "'$.model', '$.served_by', '$.alias', '$.version', '$.tokens.input', '$.tokens.output', "
    fields += "'$.cost', '$.fallback', '$.cache_hit'"
    inner = _steps_of_runs(where, f"name, status, json_extract(meta, {fields}) AS m", "AND kind = 'model'")
    sql = f"""
        WITH s AS ({inner})
        SELECT COALESCE(m ->> 0, m ->> 1, name) AS model, m ->> 2 AS alias, m ->> 3 AS version,
               COUNT(*), SUM(status = 'failed'), TOTAL(m ->> 4), TOTAL(m ->> 5), TOTAL(m ->> 6),
               SUM(m ->> 7 IS NOT NULL), SUM(m ->> 8 = 1)
        FROM s GROUP BY 1, 2, 3 ORDER BY TOTAL(m ->> 6) DESC, 1
    """
    rows = conn.execute(sql, params).fetchall()
    return [
        ModelStats(
            model=model,
            alias=alias,
            version=version,
            calls=calls,
            failures=failed,
            input_tokens=int(tokens_in),
            output_tokens=int(tokens_out),
            cost=cost,
            fallback_calls=fallbacks,
            cache_hits=hits,
        )
        for model, alias, version, calls, failed, tokens_in, tokens_out, cost, fallbacks, hits in rows
    ]


def _run_stats(
    conn: sqlite3.Connection, where: str, params: dict[str, object]
) -> tuple[list[WorkflowStats], list[DayStats]]:
    """One pass over runs and their steps, grouped by workflow, day and status; the few
    resulting groups are then summed per workflow and per day."""
    step_bytes = (
        "length(CAST(name AS BLOB)) + COALESCE(length(CAST(output AS BLOB)), 0) + "
        "COALESCE(length(CAST(error AS BLOB)), 0) + COALESCE(length(CAST(meta AS BLOB)), 0)"
    )
    run_bytes = (
        "length(CAST(r.id AS BLOB)) + COALESCE(length(CAST(r.input AS BLOB)), 0) + "
        "COALESCE(length(CAST(r.output AS BLOB)), 0) + COALESCE(length(CAST(r.error AS BLOB)), 0)"
    )
    sql = f"""
        WITH per_run AS (
            SELECT run_id, COUNT(*) AS n, SUM({step_bytes}) AS bytes, SUM(attempts - 1) AS retries,
                   TOTAL(CASE WHEN kind = 'model' THEN json_extract(meta, '$.cost') END) AS cost
            FROM steps {"" if where == "1" else f"WHERE run_id IN (SELECT r.id FROM runs r WHERE {where})"}
            GROUP BY run_id
        )
        SELECT r.workflow, date(r.created_at, 'unixepoch'), r.status, COUNT(*),
               TOTAL(p.n), TOTAL({run_bytes} + COALESCE(p.bytes, 0)), TOTAL(p.retries), TOTAL(p.cost)
        FROM runs r LEFT JOIN per_run p ON p.run_id = r.id
        WHERE {where}
        GROUP BY 1, 2, 3
    """
    by_workflow: dict[str, dict[str, float]] = {}
    statuses: dict[str, dict[str, int]] = {}
    by_day: dict[str, list[float]] = {}
    for wf, day, status, runs, steps, size, retries, cost in conn.execute(sql, params):
        totals = by_workflow.setdefault(wf, {"runs": 0, "bytes": 0, "retries": 0, "cost": 0.0})
        totals["runs"] += runs
        totals["bytes"] += size
        totals["retries"] += retries
        totals["cost"] += cost
        statuses.setdefault(wf, {})[status] = statuses.get(wf, {}).get(status, 0) + runs
        totals_day = by_day.setdefault(day, [0, 0, 0])
        totals_day[0] += runs
        totals_day[1] += steps
        totals_day[2] += size
    workflows = []
    for wf, t in sorted(by_workflow.items()):
        runs = int(t["runs"])
        counts = statuses[wf]
        ended = sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled"))
        workflows.append(
            WorkflowStats(
                workflow=wf,
                runs=runs,
                by_status=dict(sorted(counts.items())),
                completion_rate=counts.get("completed", 0) / ended if ended else None,
                cost=t["cost"],
                mean_cost_per_run=t["cost"] / runs,
                retries_per_run=t["retries"] / runs,
                journal_bytes=int(t["bytes"]),
                bytes_per_run=t["bytes"] / runs,
            )
        )
    days = [
        DayStats(day=date.fromisoformat(day), runs=int(r), steps=int(s), journal_bytes=int(b))
        for day, (r, s, b) in sorted(by_day.items())
    ]
    return workflows, days


def _file_sizes(conn: sqlite3.Connection, path: object) -> tuple[int, int]:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    wal = journal_path(f"{path}-wal")
    return pages * page_size + (wal.stat().st_size if wal.is_file() else 0), free * page_size
