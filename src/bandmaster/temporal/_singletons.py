"""The workflows bandmaster keeps one of per task queue for itself (the model registry, the
limiter, the spend ledger): started by whoever needs one first, never twice."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy


async def ensure_running(client: Client, workflow: str, workflow_id: str, task_queue: str) -> None:
    """Start ``workflow`` as ``workflow_id`` on ``task_queue`` unless it runs (one that ended,
    e.g. was terminated, starts again, empty)."""
    await client.start_workflow(
        workflow,
        None,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
