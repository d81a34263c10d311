"""A Temporal worker hosting bandmaster workflows, with the workflow sandbox configured.

Sandbox rules (the README repeats them): bandmaster, pydantic and the modules that define the
hosted workflows are passed through the sandbox (imported once, not per run), so

- workflow modules must be import-safe: no network or file I/O at import time;
- workflow code must be deterministic: time and randomness from ``bm.now/uuid/random``,
  waiting with ``bm.sleep``/``bm.wait_for``, I/O only inside steps (the sandbox does not
  police passed-through code, so this rule is yours to keep);
- steps must be module-level ``@bm.step`` functions (activity workers import them by name);
  a declarative graph's steps are found through the graph, which every worker hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bandmaster.engine.backend_kit import Redactor, Workflow
from bandmaster.temporal._activities import Activities
from bandmaster.temporal._hosting import host
from bandmaster.temporal._model_registry import ModelRegistryWorkflow
from bandmaster.temporal._model_sync import ModelSync, serving
from bandmaster.temporal._notify import notify_activity
from bandmaster.temporal._redaction import redact_activity
from bandmaster.temporal._spend import SpendWorkflow, TemporalLedger
from bandmaster.temporal._workflow import BandmasterWorkflow

PASSTHROUGH = (
    "bandmaster",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "opentelemetry",  # the tracing interceptor's context must be the one the worker sees
)


def sandbox_runner(extra_modules: Iterable[str] = ()) -> SandboxedWorkflowRunner:
    """The sandbox bandmaster workflows run in: bandmaster and the user's modules pass through."""
    modules = sorted({*PASSTHROUGH, *extra_modules})
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


def create_worker(
    client: Client,
    workflows: Iterable[Workflow[..., Any]],
    *,
    task_queue: str = "bandmaster",
    registry: object | None = None,
    local_activities: bool = False,
    default_timeout: float = 300.0,
    heartbeat: float = 10.0,
    max_concurrent_activities: int = 100,
    redact: Redactor | None = None,
    models: ModelSync | None = None,
    home: str | None = None,
    forward: dict[str, str] | None = None,
) -> Worker:
    """A worker for ``task_queue`` running these workflows and every step they call, and the
    task queue's model registry workflow. ``models`` (started by the caller once the worker
    runs) keeps the registry's alias switches and breakers shared with the other workers.
    ``home``: ``task_queue`` is the queue of a workflow version (``temporal/_versions.py``) and
    ``home`` the engine's queue, whose spend and registry workflows it shares; ``forward``: the
    version queues runs started by name are dispatched to."""
    workflows = list(workflows)
    registry = models.registry if models is not None else serving(registry)
    host(
        task_queue,
        workflows,
        registry=registry,
        forward=forward,
        local_activities=local_activities,
        default_timeout=default_timeout,
        heartbeat=heartbeat,
        redact=redact,
    )
    activities = Activities(registry, models, TemporalLedger(client, home or task_queue))
    user_modules = {wf.fn.__module__ for wf in workflows if wf.fn.__module__ != "__main__"}
    return Worker(
        client,
        task_queue=task_queue,
        # a version's queue runs its runs only; the engine's queue also the shared workflows
        workflows=[BandmasterWorkflow, *([] if home else [ModelRegistryWorkflow, SpendWorkflow])],
        activities=[activities.run_step, activities.call_model, redact_activity, notify_activity],
        workflow_runner=sandbox_runner(user_modules),
        max_concurrent_activities=max_concurrent_activities,
    )
