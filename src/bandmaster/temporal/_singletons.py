"""The workflows bandmaster keeps one of per task queue for itself (the model registry, the
limiter, the spend ledger): started by whoever needs one first, never twice, and continued as
new with their state before their history grows long."""

from __future__ import annotations

from temporalio import workflow
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


MAX_EVENTS = 10_000
"""History events a singleton workflow keeps before it continues as new with its state."""


async def until_history_is_long() -> None:
    """In a singleton workflow's run: wait until its history should be cut (Temporal suggests
    it, or it passed ``MAX_EVENTS``) and no update or signal handler is still running; the
    caller then continues as new with its state."""
    info = workflow.info()
    await workflow.wait_condition(
        lambda: info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_EVENTS
    )
    await workflow.wait_condition(workflow.all_handlers_finished)
