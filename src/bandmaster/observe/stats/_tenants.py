"""Statistics per tenant from the journal: runs, failures, model calls and their cost.

Only runs with a tenant are read (``runs_tenant`` index), with their model-call steps (the
steps' primary key), so a journal without tenants pays one index probe."""

from __future__ import annotations

import sqlite3

from bandmaster.engine.stats_report import TenantStats, tenant_stats

_ANY_TENANT = "SELECT 1 FROM runs WHERE tenant > '' LIMIT 1"


def tenants_of_journal(
    conn: sqlite3.Connection, workflow: str | None, cutoff: float | None
) -> list[TenantStats]:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "tenant" not in columns or conn.execute(_ANY_TENANT).fetchone() is None:
        return []  # a journal from before tenants (read as it is), or without any
    where = "r.tenant > ''"
    params: dict[str, object] = {"workflow": workflow, "cutoff": cutoff}
    if workflow is not None:
        where += " AND r.workflow = :workflow"
    if cutoff is not None:
        where += " AND r.created_at >= :cutoff"
    runs = {
        tenant: (n, failed)
        for tenant, n, failed in conn.execute(
            f"SELECT r.tenant, COUNT(*), SUM(r.status = 'failed') FROM runs r WHERE {where} GROUP BY 1",
            params,
        )
    }
    calls = {
        tenant: (n, failed, cost)
        for tenant, n, failed, cost in conn.execute(
            f"""
            SELECT r.tenant, COUNT(*), SUM(s.status = 'failed'), TOTAL(json_extract(s.meta, '$.cost'))
            FROM runs r JOIN steps s ON s.run_id = r.id AND s.kind = 'model'
            WHERE {where} GROUP BY 1
            """,
            params,
        )
    }
    return tenant_stats((t, n, failed, *calls.get(t, (0, 0, 0.0))) for t, (n, failed) in runs.items())
