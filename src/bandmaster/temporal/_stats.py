"""``TemporalEngine.stats``: the embedded engine's ``Stats``, computed from Temporal.

Temporal keeps no journal to aggregate, so the runs in the window are listed through
visibility (newest first, at most ``scan`` of them: ``Stats.scan_limit``, and
``Stats.truncated`` when the window held more), each is rebuilt from its history as
``describe`` rebuilds it, and ``observe.stats_runs`` computes the same figures from those runs
as ``bandmaster stats`` computes from a journal. A run's ``journal_bytes`` is the size of its
history. Histories are fetched a few at a time, so the cost is about one round trip per
``FETCHES`` runs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

from temporalio.client import Client, WorkflowExecution

from bandmaster.engine import RunInfo
from bandmaster.engine.stats_report import Stats
from bandmaster.observe.stats import stats_of_runs
from bandmaster.store.reading import parse_duration
from bandmaster.temporal._history import run_info
from bandmaster.temporal._visibility import runs_query

SCAN = 500
"""Runs read at most per ``stats()`` call, newest first (``TemporalEngine(stats_scan=...)``)."""
FETCHES = 8
"""Histories fetched at once."""


class StatsHost(Protocol):
    """What the computation needs of its engine (a ``TemporalEngine``)."""

    @property
    def client(self) -> Client: ...

    @property
    def task_queue(self) -> str: ...

    @property
    def target(self) -> str: ...

    @property
    def namespace(self) -> str: ...


async def compute_stats(
    engine: StatsHost, *, workflow: str | None = None, since: str | float | None = None, scan: int = SCAN
) -> Stats:
    """Statistics of the newest ``scan`` runs on the engine's task queue (of ``workflow``,
    started within ``since``: ``"24h"``, ``"7d"``, seconds)."""
    started = time.perf_counter()
    cutoff = (
        datetime.fromtimestamp(time.time() - parse_duration(since, what="since"), UTC)
        if since is not None
        else None
    )
    if workflow is not None and not workflow.isprintable():
        executions: list[WorkflowExecution] = []  # no such workflow; a NUL breaks the query
        truncated = False
    else:
        executions, truncated = await _newest(
            engine, runs_query(engine.task_queue, workflow=workflow, since=cutoff), scan
        )
    gate = asyncio.Semaphore(FETCHES)
    rebuilt = await asyncio.gather(*(_run(engine.client, execution, gate) for execution in executions))
    stats = stats_of_runs(
        [run for run, _ in rebuilt],
        source=f"temporal://{engine.target}/{engine.namespace}/{engine.task_queue}",
        workflow=workflow,
        since=cutoff,
        sizes={run.id: size for run, size in rebuilt},
        scan_limit=scan,
        truncated=truncated,
    )
    return stats.model_copy(update={"seconds": time.perf_counter() - started})


async def _newest(engine: StatsHost, query: str, scan: int) -> tuple[list[WorkflowExecution], bool]:
    found: list[WorkflowExecution] = []
    async for execution in engine.client.list_workflows(query):
        if len(found) == scan:
            return found, True
        found.append(execution)
    return found, False


async def _run(client: Client, execution: WorkflowExecution, gate: asyncio.Semaphore) -> tuple[RunInfo, int]:
    async with gate:
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
    events = list(history.events)
    return await run_info(execution, events, client.data_converter), sum(e.ByteSize() for e in events)
