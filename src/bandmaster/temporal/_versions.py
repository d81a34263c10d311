"""Workflow versions on Temporal: a task queue per version, so a worker gets only the tasks of
the versions it hosts (Temporal's own answer to "a v2 worker must not replay a v1 history").

Runs of ``triage`` version ``2`` live on ``<queue>@triage@2``; runs of a workflow without a
version, and runs started by name by a client that knows no version, on ``<queue>`` itself.
A worker polls ``<queue>`` and one queue per version it hosts. Started on ``<queue>``, a run of
a name the worker hosts only versions of is *dispatched*: its first task continues it as new on
the queue of the worker's default version (``temporal/_workflow.py``), with the same run id,
memo and input, before it has any history of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bandmaster.engine.stats_report import Unserved

VERSION_MEMO = "bandmaster.version"
"""The run's memo entry with the version it runs on (absent: none)."""


def version_queue(task_queue: str, workflow: str, version: str | None) -> str:
    """The task queue runs of ``workflow`` at ``version`` live on."""
    return f"{task_queue}@{workflow}@{version}" if version else task_queue


def memo_version(memo: Mapping[str, Any] | None) -> str | None:
    version = (memo or {}).get(VERSION_MEMO)
    return version if isinstance(version, str) and version else None


POLLER_FRESH = 75.0
"""Seconds since a worker's last poll of a queue within which it counts as serving it: a live
worker long-polls for at most a minute, and Temporal lists a stopped worker for minutes."""


async def unserved(client: Client, query: str, scan: int) -> list[Unserved]:
    """Running runs (of the newest ``scan`` matching ``query``), per workflow version, whose task
    queue no worker polled within ``POLLER_FRESH`` seconds."""
    found: dict[tuple[str, str | None, str], int] = {}
    seen = 0
    async for execution in client.list_workflows(query):
        memo = await execution.memo()
        key = (execution.workflow_type, memo_version(memo), execution.task_queue)
        found[key] = found.get(key, 0) + 1
        seen += 1
        if seen >= scan:
            break
    live = {queue: await _polled(client, queue) for queue in {queue for _, _, queue in found}}
    return [
        Unserved(workflow=workflow, version=version, runs=count, statuses={"running": count})
        for (workflow, version, queue), count in sorted(
            found.items(), key=lambda item: (item[0][0], item[0][1] or "")
        )
        if not live[queue]
    ]


async def _polled(client: Client, queue: str) -> bool:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    response = await client.workflow_service.describe_task_queue(request)
    cutoff = datetime.now(UTC) - timedelta(seconds=POLLER_FRESH)
    return any(p.last_access_time.ToDatetime(UTC) >= cutoff for p in response.pollers)
