"""Statistics from the journal: latency percentiles, failures, retries, fallbacks, cache hits,
tokens and cost per model, completion and cost per workflow, storage per run and per day.

Read from the rollup tables beside the journal (``stats_rollup``: a few thousand rows,
whatever the journal's size; percentiles within 0.5 %), caught up first with the runs that
ended since the last catch-up (workers catch up every 30 s, so there are few), or with ``exact=True``
(and on a journal without rollups) aggregated from every row inside SQLite (``stats_raw``);
only aggregates reach Python, never a journal row.

    from bandmaster.observe.stats import compute
    stats = compute("bm.db", workflow="triage", since="24h")
    stats.step_stats[0].p99, stats.models[0].cost, stats.workflows[0].completion_rate

This module is also the one import for moving runs around: ``export_runs``/``import_runs``
(JSONL, ``stats_export``) and ``archive`` (retention, ``stats_archive``).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

from bandmaster.engine.stats_report import (
    BOOKKEEPING_KINDS,
    PERCENTILES,
    DayStats,
    ModelStats,
    Stats,
    StepStats,
    WorkflowStats,
    unserved_of,
)
from bandmaster.observe.stats._raw import compute_raw, unknown_cost_calls, with_unknown_costs
from bandmaster.observe.stats._rollup import catch_up_before_reading, compute_rollups, has_rollups
from bandmaster.observe.stats._tenants import tenants_of_journal
from bandmaster.store import unserved_rows
from bandmaster.store.reading import JournalRef, connect, journal_path, parse_duration


def compute(
    db: JournalRef, workflow: str | None = None, since: str | float | None = None, *, exact: bool = False
) -> Stats:
    """Statistics of the runs in ``db`` (a store, path or URL), optionally of one workflow and
    of runs created within ``since`` (``"24h"``, ``"7d"``, seconds). ``exact=True`` reads every
    step row for exact percentiles (seconds on a million steps) instead of the rollups. Before
    reading the rollups it adds the runs that ended since the last catch-up (a short write,
    batch by batch; skipped on a journal it cannot write, whose backlog is read from rows)."""
    started = time.perf_counter()
    cutoff = time.time() - parse_duration(since, what="since") if since is not None else None
    if not exact:
        catch_up_before_reading(db)  # exact up to now; when it cannot write, rows fill the gap
    conn = connect(db)
    try:
        # Sorts (percentiles, GROUP BY) in memory, not in temp files.
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -131072")  # 128 MB, this connection only
        conn.execute("BEGIN")  # one snapshot for every query
        from_rollups = not exact and has_rollups(conn)
        steps, models, workflows, days = (compute_rollups if from_rollups else compute_raw)(
            conn, workflow, cutoff
        )
        tenants = tenants_of_journal(conn, workflow, cutoff)
        unserved = [
            u for u in unserved_of(unserved_rows(conn, time.time())) if workflow in (None, u.workflow)
        ]
        models = with_unknown_costs(models, unknown_cost_calls(conn, workflow, cutoff))
        file_bytes, free_bytes = _file_sizes(conn, journal_path(db))
        conn.execute("COMMIT")
    finally:
        conn.close()
    runs = sum(w.runs for w in workflows)
    return Stats(
        db=str(journal_path(db)),
        workflow=workflow,
        since=datetime.fromtimestamp(cutoff, UTC) if cutoff is not None else None,
        computed_at=datetime.now(UTC),
        seconds=time.perf_counter() - started,
        runs=runs,
        steps=sum(d.steps for d in days),
        retries_per_run=sum(w.retries_per_run * w.runs for w in workflows) / runs if runs else 0.0,
        file_bytes=file_bytes,
        free_bytes=free_bytes,
        step_stats=steps,
        models=models,
        workflows=workflows,
        days=days,
        percentiles_exact=not from_rollups,
        tenants=tenants,
        unserved=unserved,
        unknown_cost_calls=sum(m.unknown_cost_calls for m in models),
    )


def _file_sizes(conn: sqlite3.Connection, path: object) -> tuple[int, int]:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    wal = journal_path(f"{path}-wal")
    return pages * page_size + (wal.stat().st_size if wal.is_file() else 0), free * page_size


# The rest of the room's public API, importable from here.
from typing import TYPE_CHECKING  # noqa: E402

from bandmaster._lazy import lazy_loader  # noqa: E402
from bandmaster.store.archive import ArchiveResult, archive  # noqa: E402
from bandmaster.store.export import ImportResult, RunRecord, export_runs, import_runs, read_records  # noqa: E402

__all__ = [
    "BOOKKEEPING_KINDS",
    "PERCENTILES",
    "ArchiveResult",
    "DayStats",
    "ImportResult",
    "ModelStats",
    "RunRecord",
    "Stats",
    "StepStats",
    "WorkflowStats",
    "archive",
    "compute",
    "export_runs",
    "import_runs",
    "plot",
    "read_records",
    "stats_of_runs",
    "timeline",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "plot": "bandmaster.observe.stats._plot",
    "stats_of_runs": "bandmaster.observe.stats._runs",
    "timeline": "bandmaster.observe.stats._plot",
}

if TYPE_CHECKING:
    from bandmaster.observe.stats._plot import plot, timeline
    from bandmaster.observe.stats._runs import stats_of_runs
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
