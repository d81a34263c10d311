"""Read-only connections to the journal for the server's own queries (readiness, cost per run),
so they never go through, or hold, the engine's writing connection. Statistics come from
``bandmaster.observe.stats.compute``, which opens its own connections (reading, and briefly
writing to add the runs ended since the workers' last rollup pass)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (``mode=ro``: a query here can never write the journal)."""
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=5.0)
    try:
        yield conn
    finally:
        conn.close()


def run_costs(path: Path, run_ids: list[str]) -> dict[str, float]:
    """Total model cost per run, for the runs list (``observe.stats`` sums cost per workflow and
    per model, never per run)."""
    if not run_ids:
        return {}
    with reading(path) as conn:
        rows = conn.execute(
            "SELECT run_id, SUM(COALESCE(json_extract(meta, '$.cost'), 0)) FROM steps "
            "WHERE run_id IN (SELECT value FROM json_each(?)) AND meta IS NOT NULL GROUP BY run_id",
            (json.dumps(run_ids),),
        ).fetchall()
    return {run_id: float(cost or 0.0) for run_id, cost in rows}
