"""Exact statistics straight from the journal rows (``compute(..., exact=True)``, and journals
without rollups): everything aggregated inside SQLite (window functions for exact nearest-rank
percentiles, ``json_extract`` on step meta); only the aggregates reach Python.

Reads every step row of the selected runs, so it takes seconds on a million steps; the
rollups (``stats_rollup``) answer the same from a few thousand rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import date
from typing import Any

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

_NOT_BOOKKEEPING = f"kind NOT IN ({', '.join(repr(k) for k in BOOKKEEPING_KINDS)})"
RUN_BYTES = (
    "length(CAST(r.id AS BLOB)) + COALESCE(length(CAST(r.input AS BLOB)), 0) + "
    "COALESCE(length(CAST(r.output AS BLOB)), 0) + COALESCE(length(CAST(r.error AS BLOB)), 0)"
)
"""Bytes a run row (``r``) occupies in the journal: its id and text columns."""


def compute_raw(
    conn: sqlite3.Connection, workflow: str | None, cutoff: float | None
) -> tuple[list[StepStats], list[ModelStats], list[WorkflowStats], list[DayStats]]:
    """Per step, per model, per workflow and per day statistics of the selected runs."""
    where, params = run_filter(workflow, cutoff)
    _collect_model_calls(conn, where, params)
    groups = _model_groups(conn)
    steps = _step_stats(conn, where, params, groups)
    models = model_stats(groups)
    workflows, days = _run_stats(conn, where, params)
    return steps, models, workflows, days


UNKNOWN_COST = "s.kind = 'model' AND instr(s.meta, '\"cost_known\":false') > 0"
"""Model calls whose price was unknown, as the partial index ``steps_unknown_cost`` (schema 15)
selects them: a substring test of the compact meta JSON (inside a JSON string a quote is
escaped, so a prompt cannot fake it), cheap enough for every model-step write."""


def unknown_cost_calls(
    conn: sqlite3.Connection, workflow: str | None, cutoff: float | None
) -> dict[tuple[str, str | None, str | None], int]:
    """Calls of unknown price per answering model/alias/version, read through the partial
    index (so its cost is the number of such calls, not the size of the journal)."""
    where, params = run_filter(workflow, cutoff)
    runs = "" if where == "1" else f" AND s.run_id IN (SELECT r.id FROM runs r WHERE {where})"
    indexed = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'steps_unknown_cost'"
    ).fetchone()
    # A journal not yet upgraded (read-only) has no index: one scan of its model steps instead.
    source = "steps s INDEXED BY steps_unknown_cost" if indexed else "steps s"
    rows = conn.execute(
        "SELECT COALESCE(json_extract(s.meta, '$.model'), json_extract(s.meta, '$.served_by'), s.name), "
        "json_extract(s.meta, '$.alias'), json_extract(s.meta, '$.version'), COUNT(*) "
        f"FROM {source} WHERE {UNKNOWN_COST}{runs} GROUP BY 1, 2, 3",
        params,
    )
    return {(str(model), alias, version): n for model, alias, version, n in rows}


def with_unknown_costs(
    models: list[ModelStats], unknown: dict[tuple[str, str | None, str | None], int]
) -> list[ModelStats]:
    if not unknown:
        return models
    return [
        m.model_copy(update={"unknown_cost_calls": unknown.get((m.model, m.alias, m.version), 0)})
        for m in models
    ]


def run_filter(workflow: str | None, cutoff: float | None) -> tuple[str, dict[str, object]]:
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


def steps_of_runs(where: str, columns: str, extra: str = "", *, bookkeeping: bool = False) -> str:
    """Steps of the selected runs; without a filter, no join at all (the common, big case)."""
    clauses = [] if bookkeeping else [_NOT_BOOKKEEPING]
    if extra:
        clauses.append(extra)
    if where != "1":
        clauses.append(f"run_id IN (SELECT r.id FROM runs r WHERE {where})")
    return f"SELECT {columns} FROM steps WHERE {' AND '.join(clauses) or '1'}"


def _collect_model_calls(conn: sqlite3.Connection, where: str, params: dict[str, object]) -> None:
    """Parse the meta of every model call once, into a temporary table the other queries share.

    ``json_extract`` with several paths returns them as one small JSON array (one parse of the
    meta, which also holds the request); MATERIALIZED stops SQLite from inlining the subquery
    and parsing again for every ``->>``.
    """
    paths = "'$.model', '$.served_by', '$.alias', '$.version', '$.tokens.input', '$.tokens.output', "
    paths += "'$.cost', '$.fallback', '$.cache_hit'"
    inner = steps_of_runs(where, f"run_id, name, status, json_extract(meta, {paths}) AS m", "kind = 'model'")
    conn.execute("DROP TABLE IF EXISTS temp.model_calls")
    conn.execute(
        f"""
        CREATE TEMP TABLE model_calls AS
        WITH s AS MATERIALIZED ({inner})
        SELECT run_id, name, status, COALESCE(m ->> 0, m ->> 1, name) AS model, m ->> 2 AS alias,
               m ->> 3 AS version, m ->> 4 AS tokens_in, m ->> 5 AS tokens_out, m ->> 6 AS cost,
               m ->> 7 IS NOT NULL AS fallback, m ->> 8 AS cache_hit
        FROM s
        """,
        params,
    )


def _step_stats(
    conn: sqlite3.Connection, where: str, params: dict[str, object], groups: list[dict[str, Any]]
) -> list[StepStats]:
    """Counts and means by GROUP BY; percentiles from ROW_NUMBER over each step's partition
    ordered by latency, keeping only the rows at the wanted ranks."""
    counts = steps_of_runs(
        where,
        "name, kind, COUNT(*), COUNT(ended_at), SUM(status = 'failed'), SUM(attempts - 1), "
        "AVG(ended_at - started_at), MAX(ended_at - started_at)",
    )
    totals = {(r[0], r[1]): r[2:] for r in conn.execute(f"{counts} GROUP BY name, kind", params)}
    # Nearest-rank percentile: the value at rank ceil(p * n / 100) among n finished calls.
    # Only rows at a wanted rank of some step leave the window (a few per step), so picking
    # each step's own ranks from them is no loop over the journal.
    # (-(-a // b) is ceil(a / b) in integers.)
    wanted = {key: [-(-p * t[1] // 100) for p in PERCENTILES] for key, t in totals.items() if t[1]}
    ranks = sorted({rank for per_step in wanted.values() for rank in per_step})
    slim = steps_of_runs(where, "name, kind, ended_at - started_at AS d", "ended_at IS NOT NULL")
    sql = f"""
        SELECT name, kind, rn, d FROM (
            SELECT name, kind, d, ROW_NUMBER() OVER (PARTITION BY name, kind ORDER BY d) AS rn
            FROM ({slim})
        ) WHERE rn IN (SELECT value FROM json_each(:ranks))
    """
    at_rank = {
        (name, kind, rn): d for name, kind, rn, d in conn.execute(sql, {**params, "ranks": json.dumps(ranks)})
    }
    latency = {key: tuple(at_rank.get((*key, rank)) for rank in per_step) for key, per_step in wanted.items()}
    flags = model_flags(groups)
    out = [
        step_stats(
            name,
            kind,
            calls=calls,
            failures=failed,
            retries=retries,
            percentiles=latency.get((name, kind), (None, None, None)),
            mean=mean,
            longest=longest,
            flags=flags,
        )
        for (name, kind), (calls, _, failed, retries, mean, longest) in totals.items()
    ]
    return sorted(out, key=lambda st: (st.name, st.kind))


def _model_groups(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Model calls grouped by step name and answering model/alias/version: the source of both
    the per-model table and the steps' fallback and cache rates."""
    rows = conn.execute(
        """
        SELECT name, model, alias, version, COUNT(*), SUM(status = 'failed'), TOTAL(tokens_in),
               TOTAL(tokens_out), TOTAL(cost), SUM(fallback), SUM(cache_hit = 1), COUNT(cache_hit)
        FROM model_calls GROUP BY 1, 2, 3, 4
        """
    ).fetchall()
    keys = (
        "name", "model", "alias", "version", "calls", "failures", "input_tokens", "output_tokens",
        "cost", "fallback_calls", "cache_hits", "cache_known",
    )  # fmt: skip
    return [dict(zip(keys, row, strict=True)) for row in rows]


def model_stats(groups: list[dict[str, Any]]) -> list[ModelStats]:
    merged: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
    for group in groups:
        key = (group["model"], group["alias"], group["version"])
        if key not in merged:
            merged[key] = dict(group)
            continue
        for field in (
            "calls",
            "failures",
            "input_tokens",
            "output_tokens",
            "cost",
            "fallback_calls",
            "cache_hits",
        ):
            merged[key][field] += group[field]
        merged[key]["unknown_cost_calls"] = merged[key].get("unknown_cost_calls", 0) + group.get(
            "unknown_cost_calls", 0
        )
    models = [
        ModelStats(
            model=g["model"],
            alias=g["alias"],
            version=g["version"],
            calls=g["calls"],
            failures=g["failures"],
            input_tokens=int(g["input_tokens"]),
            output_tokens=int(g["output_tokens"]),
            cost=g["cost"],
            fallback_calls=g["fallback_calls"],
            cache_hits=g["cache_hits"],
            unknown_cost_calls=g.get("unknown_cost_calls", 0),
        )
        for g in merged.values()
    ]
    return sorted(models, key=lambda m: (-m.cost, m.model, m.alias or "", m.version or ""))


def _run_stats(
    conn: sqlite3.Connection, where: str, params: dict[str, object]
) -> tuple[list[WorkflowStats], list[DayStats]]:
    """One pass over runs and their steps (in primary-key order, so grouping by run needs no
    sort), grouped by workflow, day and status; the few groups are then summed in Python."""
    step_bytes = (
        "length(CAST(name AS BLOB)) + COALESCE(length(CAST(output AS BLOB)), 0) + "
        "COALESCE(length(CAST(error AS BLOB)), 0) + COALESCE(length(CAST(meta AS BLOB)), 0)"
    )
    per_run = steps_of_runs(
        where,
        f"run_id, COUNT(*) AS n, SUM({step_bytes}) AS bytes, SUM(attempts - 1) AS retries",
        bookkeeping=True,
    )
    sql = f"""
        WITH per_run AS ({per_run} GROUP BY run_id),
        cost AS (SELECT run_id, TOTAL(cost) AS cost FROM model_calls GROUP BY run_id)
        SELECT r.workflow, date(r.created_at, 'unixepoch'), r.status, COUNT(*),
               TOTAL(p.n), TOTAL({RUN_BYTES} + COALESCE(p.bytes, 0)), TOTAL(p.retries), TOTAL(c.cost)
        FROM runs r LEFT JOIN per_run p ON p.run_id = r.id LEFT JOIN cost c ON c.run_id = r.id
        WHERE {where}
        GROUP BY 1, 2, 3
    """
    return assemble_run_stats(conn.execute(sql, params))


def assemble_run_stats(
    rows: Iterable[tuple[str, str, str, int, float, float, float, float]],
) -> tuple[list[WorkflowStats], list[DayStats]]:
    """Workflow and day statistics from rows of (workflow, UTC day ``YYYY-MM-DD``, run status,
    runs, step rows, journal bytes, retries, cost), one per group of runs."""
    by_workflow: dict[str, dict[str, float]] = {}
    statuses: dict[str, dict[str, int]] = {}
    by_day: dict[str, list[float]] = {}
    for wf, day, status, runs, steps, size, retries, cost in rows:
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
