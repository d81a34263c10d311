"""Budget spend on Temporal: one long-lived workflow per task queue (id
``bandmaster.spend.<task queue>``) holding what the embedded engine keeps in its journal's
``budget_spend`` table: per scope (``run:<id>``, ``tenant:<name>``) and day, the money spent
and the money held by calls in flight.

A worker holds a call's estimate with the ``reserve`` update and settles it with ``settle``.
Updates run one at a time in the workflow, so a reserve's check-and-add is atomic across every
worker of the task queue: two workers cannot both take a tenant's last dollars. The state lives
in the workflow's history, so it survives any worker's crash (a crash between reserve and settle
leaves the hold counted, as on the embedded engine: the provider may have billed the call).

It continues as new when Temporal suggests it or its history grows long (``_singletons.py``), carrying
its state, less tenant days older than ``KEEP_DAYS`` and runs untouched for ``KEEP_DAYS``.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError

from bandmaster.temporal._singletons import ensure_running, until_history_is_long

SPEND_WORKFLOW = "bandmaster.spend"
RESERVE_UPDATE = "bandmaster.spend.reserve"
SETTLE_UPDATE = "bandmaster.spend.settle"
SPEND_QUERY = "bandmaster.spend.read"
KEEP_DAYS = 7
"""Days a tenant's daily row, or an idle run's row, is kept."""
ATTEMPTS = 3
"""Tries of an update that met the workflow between two runs (continuing as new) or not started
(terminated): a hold sent twice is counted twice, which errs on the side of the budget."""
CALL_TIMEOUT = 30.0
"""Seconds a reserve or settle may take before the model call fails (a reserve) or the settle is
given up (its hold then stays counted)."""


def spend_id(task_queue: str) -> str:
    return f"bandmaster.spend.{task_queue}"


async def ensure_spend(client: Client, task_queue: str) -> None:
    """Start the spend workflow of ``task_queue`` unless it runs."""
    await ensure_running(client, SPEND_WORKFLOW, spend_id(task_queue), task_queue)


def _key(scope: str, day: str) -> str:
    return f"{scope}\x00{day}"


def pruned(rows: dict[str, list[float]], now: float) -> dict[str, list[float]]:
    """``rows`` less old tenant days and runs idle for ``KEEP_DAYS``."""
    oldest_day = (datetime.fromtimestamp(now, UTC) - timedelta(days=KEEP_DAYS)).date().isoformat()
    kept: dict[str, list[float]] = {}
    for key, row in rows.items():
        _, _, day = key.partition("\x00")
        if (day and day < oldest_day) or (not day and row[2] < now - KEEP_DAYS * 86400):
            continue
        kept[key] = row
    return kept


# Not sandboxed: its handlers are pure (times from workflow.time(), no I/O), like the registry's.
@workflow.defn(name=SPEND_WORKFLOW, sandboxed=False)
class SpendWorkflow:
    """Money spent and held per budget scope and day, for every worker of a task queue."""

    @workflow.init
    def __init__(self, state: dict[str, Any] | None) -> None:
        self.rows: dict[str, list[float]] = dict((state or {}).get("rows", {}))  # [spent, held, at]

    @workflow.run
    async def run(self, state: dict[str, Any] | None) -> None:
        await until_history_is_long()
        workflow.continue_as_new({"rows": pruned(self.rows, workflow.time())})

    @workflow.update(name=RESERVE_UPDATE)
    def reserve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Hold ``amount`` of ``scope``/``day`` if spent + held + amount <= ``limit``; answers
        ``{"held": bool, "committed": spent + held before}``."""
        row = self.rows.get(_key(request["scope"], request["day"]), [0.0, 0.0, 0.0])
        committed = row[0] + row[1]
        limit = request["limit"]
        if limit is not None and committed + request["amount"] > limit:
            return {"held": False, "committed": committed}
        self.rows[_key(request["scope"], request["day"])] = [
            row[0],
            row[1] + request["amount"],
            workflow.time(),
        ]
        return {"held": True, "committed": committed}

    @workflow.update(name=SETTLE_UPDATE)
    def settle(self, request: dict[str, Any]) -> None:
        """Give back ``held`` of ``scope``/``day`` and count ``cost``."""
        row = self.rows.get(_key(request["scope"], request["day"]), [0.0, 0.0, 0.0])
        held = max(0.0, row[1] - request["held"])
        self.rows[_key(request["scope"], request["day"])] = [row[0] + request["cost"], held, workflow.time()]

    @workflow.query(name=SPEND_QUERY)
    def read(self, request: dict[str, Any]) -> dict[str, float]:
        row = self.rows.get(_key(request["scope"], request["day"]), [0.0, 0.0, 0.0])
        return {"spent": row[0], "held": row[1]}


class TemporalLedger:
    """A ``SpendLedger`` over the spend workflow of a task queue (``calls.wrappers.SpendLedger``)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client, self.task_queue = client, task_queue
        self._started = False

    async def _handle(self) -> Any:
        if not self._started:
            await ensure_spend(self.client, self.task_queue)
            self._started = True
        return self.client.get_workflow_handle(spend_id(self.task_queue))

    async def reserve(self, scope: str, day: str, limit: float, amount: float) -> float | None:
        bound = None if limit == math.inf else limit  # a person approved: hold without a limit
        request = {"scope": scope, "day": day, "limit": bound, "amount": amount}
        answer = await self._update(RESERVE_UPDATE, request)
        return None if answer["held"] else float(answer["committed"])

    async def settle(self, scope: str, day: str, held: float, cost: float) -> None:
        await self._update(SETTLE_UPDATE, {"scope": scope, "day": day, "held": held, "cost": cost})

    async def _update(self, name: str, request: dict[str, Any]) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            handle = await self._handle()
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    return await handle.execute_update(name, request, result_type=dict)
            except RPCError:
                if attempt == ATTEMPTS:
                    raise
                self._started = False  # start it again if it was terminated
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def spend(self, scope: str, day: str) -> dict[str, float]:
        handle = await self._handle()
        answer: dict[str, float] = await handle.query(
            SPEND_QUERY, {"scope": scope, "day": day}, result_type=dict
        )
        return answer
