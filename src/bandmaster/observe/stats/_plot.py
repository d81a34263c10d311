"""``bandmaster stats --plot``: step latency and model cost over time, one PNG (matplotlib)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.observe.stats._raw import run_filter, steps_of_runs
from bandmaster.store.reading import JournalRef, connect, parse_duration


class Bucket(BaseModel):
    start: datetime
    steps: int
    p50: float | None
    p95: float | None
    cost: float


def timeline(
    db: JournalRef, workflow: str | None = None, since: str | float | None = None, buckets: int = 48
) -> list[Bucket]:
    """Steps grouped into ``buckets`` equal time slices of their start: latency p50/p95 and
    model cost per slice (aggregated in SQL, like ``compute``)."""
    cutoff = time.time() - parse_duration(since, what="since") if since is not None else None
    where, params = run_filter(workflow, cutoff)
    conn = connect(db)
    try:
        conn.execute("BEGIN")
        span = conn.execute(
            f"SELECT MIN(started_at), MAX(started_at) FROM ({steps_of_runs(where, 'started_at')})", params
        ).fetchone()
        if span[0] is None:
            return []
        first, last = span
        width = max((last - first) / buckets, 1e-6)
        inner = steps_of_runs(
            where,
            f"CAST((started_at - {first!r}) / {width!r} AS INTEGER) AS b, ended_at - started_at AS d, "
            "CASE WHEN kind = 'model' THEN json_extract(meta, '$.cost') END AS cost",
        )
        rows = conn.execute(
            f"""
            WITH s AS ({inner}),
            ranked AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY b ORDER BY d IS NULL, d) AS rn,
                              COUNT(d) OVER (PARTITION BY b) AS n FROM s)
            SELECT b, COUNT(*), MAX(CASE WHEN rn = (50 * n + 99) / 100 THEN d END),
                   MAX(CASE WHEN rn = (95 * n + 99) / 100 THEN d END), TOTAL(cost)
            FROM ranked GROUP BY b ORDER BY b
            """,
            params,
        ).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return [
        Bucket(start=datetime.fromtimestamp(first + b * width, UTC), steps=n, p50=p50, p95=p95, cost=cost)
        for b, n, p50, p95, cost in rows
    ]


def plot(
    db: JournalRef, out: str | os.PathLike[str], workflow: str | None = None, since: str | float | None = None
) -> int:
    """Draw latency (p50, p95) and cost over time into ``out``; returns the number of slices."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError("--plot needs matplotlib: pip install 'bandmaster[plot]'") from exc
    points = timeline(db, workflow=workflow, since=since)
    fig, (latency, cost) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    times = [p.start for p in points]
    latency.plot(times, [(p.p50 or 0) * 1000 for p in points], label="p50")
    latency.plot(times, [(p.p95 or 0) * 1000 for p in points], label="p95")
    latency.set_ylabel("step latency (ms)")
    latency.legend()
    cost.bar(times, [p.cost for p in points], width=_bar_width(points), color="tab:green")
    cost.set_ylabel("model cost (USD)")
    title = f"bandmaster journal{f' — {workflow}' if workflow else ''} ({len(points)} slices)"
    fig.suptitle(title)
    fig.autofmt_xdate()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return len(points)


def _bar_width(points: list[Bucket]) -> float:
    if len(points) < 2:
        return 0.01
    days = (points[-1].start - points[0].start).total_seconds() / 86400
    return max(days / len(points) * 0.8, 1e-6)
