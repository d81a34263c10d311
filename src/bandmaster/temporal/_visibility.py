"""Visibility queries over the bandmaster runs of one task queue (list, stats, approvals).

Temporal's list filter is a SQL-like string: values are quoted here, and the workflows
bandmaster runs for itself on the queue (the model registry, ``models.REGISTRY_WORKFLOW``)
are left out, so they never show up as runs."""

from __future__ import annotations

from datetime import datetime

INTERNAL_TYPES = ("bandmaster.models",)
"""Workflow types bandmaster keeps on a task queue for itself (temporal/models.py)."""


def quote(value: str) -> str:
    """``value`` as the inside of a single-quoted visibility string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def runs_query(
    task_queue: str,
    *,
    workflow: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    id_prefix: str | None = None,
) -> str:
    """Runs on ``task_queue`` and its versions' queues (``temporal/_versions.py``; of
    ``workflow``, with Temporal ``status``, started at or after ``since``), bandmaster's own
    workflows left out, and so are the first executions of runs dispatched to a version."""
    queue = quote(task_queue)
    clauses = [f"(TaskQueue = '{queue}' OR TaskQueue STARTS_WITH '{queue}@')"]
    clauses += [f"WorkflowType != '{quote(name)}'" for name in INTERNAL_TYPES]
    if workflow is not None:
        clauses.append(f"WorkflowType = '{quote(workflow)}'")
    if status is not None:
        clauses.append(f"ExecutionStatus = '{quote(status)}'")
    else:
        clauses.append("ExecutionStatus != 'ContinuedAsNew'")
    if since is not None:
        clauses.append(f"StartTime >= '{since.isoformat()}'")
    if before is not None:
        clauses.append(f"StartTime < '{before.isoformat()}'")
    if id_prefix:
        clauses.append(f"WorkflowId STARTS_WITH '{quote(id_prefix)}'")
    return " AND ".join(clauses)
