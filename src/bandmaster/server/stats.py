"""Journal statistics for the stats endpoint and page.

PROVISIONAL: ``bandmaster.observe.stats.compute(db, workflow=, since=)`` (another branch) will
compute these numbers; until it is merged, ``journal_stats`` computes the few the server shows
with SQL here. Point ``journal_stats`` at it then; the endpoint and page call nothing else.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bandmaster.server.journal import reading

_MAX_ROWS = 200_000  # bound the work of one stats request on a large journal


class StepStats(BaseModel):
    name: str
    kind: str
    count: int
    p50_ms: float | None
    p99_ms: float | None
    failure_rate: float
    retry_rate: float  # share of calls that needed more than one attempt
    fallback_rate: float  # model calls answered by a fallback


class ModelCost(BaseModel):
    model: str
    calls: int
    cost: float
    input_tokens: int
    output_tokens: int


class JournalStats(BaseModel):
    workflow: str | None
    since: float | None
    runs: dict[str, int]
    steps: list[StepStats]
    models: list[ModelCost]
    total_cost: float


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def journal_stats(path: Path, *, workflow: str | None = None, since: float | None = None) -> JournalStats:
    """Runs per status, latency/failure/fallback per step, cost per model (``since``: Unix time)."""
    with reading(path) as conn:
        return _compute(conn, workflow, since)


def _compute(conn: sqlite3.Connection, workflow: str | None, since: float | None) -> JournalStats:
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if workflow is not None:
        where.append("r.workflow = ?")
        params.append(workflow)
    if since is not None:
        where.append("r.created_at >= ?")
        params.append(since)
    clause = " AND ".join(where)
    runs = dict(
        conn.execute(
            f"SELECT r.status, COUNT(*) FROM runs r WHERE {clause} GROUP BY r.status", params
        ).fetchall()
    )
    rows = conn.execute(
        f"SELECT s.name, s.kind, s.status, s.attempts, s.started_at, s.ended_at, s.meta "
        f"FROM steps s JOIN runs r ON r.id = s.run_id WHERE {clause} AND s.kind IN ('step', 'model') "
        f"ORDER BY s.started_at DESC LIMIT {_MAX_ROWS}",
        params,
    ).fetchall()
    by_step: dict[tuple[str, str], list[tuple[str, int, float | None, dict[str, Any]]]] = {}
    models: dict[str, ModelCost] = {}
    for name, kind, status, attempts, started, ended, meta_text in rows:
        meta: dict[str, Any] = json.loads(meta_text) if meta_text else {}
        duration = (ended - started) * 1000 if ended is not None else None
        by_step.setdefault((name, kind), []).append((status, attempts, duration, meta))
        model = meta.get("model")
        if kind == "model" and isinstance(model, str):
            entry = models.setdefault(
                model, ModelCost(model=model, calls=0, cost=0.0, input_tokens=0, output_tokens=0)
            )
            tokens: dict[str, Any] = meta["tokens"] if isinstance(meta.get("tokens"), dict) else {}
            entry.calls += 1
            entry.cost += float(meta.get("cost") or 0.0)
            entry.input_tokens += int(tokens.get("input", 0))
            entry.output_tokens += int(tokens.get("output", 0))
    steps = []
    for (name, kind), calls in sorted(by_step.items()):
        durations = sorted(d for _, _, d, _ in calls if d is not None)
        count = len(calls)
        steps.append(
            StepStats(
                name=name,
                kind=kind,
                count=count,
                p50_ms=_percentile(durations, 0.5),
                p99_ms=_percentile(durations, 0.99),
                failure_rate=sum(1 for s, *_ in calls if s == "failed") / count,
                retry_rate=sum(1 for _, a, _, _ in calls if a > 1) / count,
                fallback_rate=sum(1 for *_, m in calls if m.get("fallback")) / count,
            )
        )
    ordered_models = sorted(models.values(), key=lambda m: -m.cost)
    return JournalStats(
        workflow=workflow,
        since=since,
        runs=runs,
        steps=steps,
        models=ordered_models,
        total_cost=sum(m.cost for m in ordered_models),
    )


def run_costs(path: Path, run_ids: list[str]) -> dict[str, float]:
    """Total model cost per run (for the runs list)."""
    if not run_ids:
        return {}
    with reading(path) as conn:
        rows = conn.execute(
            "SELECT run_id, SUM(COALESCE(json_extract(meta, '$.cost'), 0)) FROM steps "
            "WHERE run_id IN (SELECT value FROM json_each(?)) AND meta IS NOT NULL GROUP BY run_id",
            (json.dumps(run_ids),),
        ).fetchall()
    return {run_id: float(cost or 0.0) for run_id, cost in rows}


def parse_since(text: str | None) -> float | None:
    """``30m``, ``24h``, ``7d`` or a Unix time → a Unix time."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"since={text!r}: use a duration like 30m, 24h, 7d, or a Unix time") from None
