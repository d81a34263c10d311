"""Where the server sends run operations: the embedded engine over its own journal, or a
``bm.TemporalEngine`` (``bandmaster server --backend temporal``).

On Temporal the server's SQLite database keeps only what is the server's (tokens, sessions,
its audit log, the registry it shows); runs, steps and approvals live in Temporal. The routes
that read the embedded journal itself answer 501 ``not_on_temporal`` with what to use instead.
temporalio is imported only when a Temporal backend is configured.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bandmaster._types import RunStatus
from bandmaster.engine.approval import Decision
from bandmaster.engine.approvals import Approval
from bandmaster.engine.runtime import RunInfo
from bandmaster.engine.workflow import Workflow, redactor_for
from bandmaster.errors import RunNotFound, WorkflowNotFound
from bandmaster.server.errors import ApiError, error_response, shorter

if TYPE_CHECKING:
    from bandmaster.temporal.engine import TemporalEngine

TEMPORAL_STATUSES = ("running", "completed", "failed", "cancelled")
"""The statuses Temporal's visibility can filter on (a waiting run is running there)."""
HEALTH_TIMEOUT = 5.0


class ApprovalDesk(Protocol):
    """What the server needs of ``engine.approvals`` (embedded or Temporal)."""

    async def list(
        self,
        *,
        status: Literal["pending", "decided"] | None = "pending",
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Approval]: ...

    async def decide(
        self, run_id: str, action: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision: ...


class RunBackend(Protocol):
    """The run operations the server calls: ``bm.Engine`` and ``bm.TemporalEngine`` both have them."""

    @property
    def workflows(self) -> dict[str, Workflow[..., Any]]: ...

    @property
    def approvals(self) -> ApprovalDesk: ...

    async def list(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[RunInfo]: ...

    async def describe(self, run_id: str) -> RunInfo: ...

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None: ...

    async def cancel(self, run_id: str) -> Any: ...


def not_on_temporal(what: str, instead: str) -> ApiError:
    """501 for a route that reads the embedded journal, saying what to use instead."""
    return ApiError(
        501,
        "not_on_temporal",
        f"{what} is not available when the server runs on the Temporal backend: {instead}",
    )


STATS_INSTEAD = (
    "these statistics are computed from the embedded SQLite journal, and runs live in Temporal here. "
    "Use the Temporal UI (or `temporal workflow list`) for runs, GET /api/v1/runs/{id} for one run's "
    "step timeline, and Temporal's own Prometheus metrics (cluster and SDK workers) for activity "
    "latencies and failures"
)
MODELS_INSTEAD = (
    "Temporal workers read their registry from their own models.yaml (`bandmaster worker --backend "
    "temporal --models ...`), so a change made here would reach no worker; edit models.yaml and "
    "restart the workers"
)


def workflow_named(workflows: dict[str, Workflow[..., Any]], name: str) -> Workflow[..., Any]:
    wf = workflows.get(name)
    if wf is None:
        raise WorkflowNotFound(
            f"no workflow {shorter(name)} on this server (known: {', '.join(sorted(workflows)) or 'none'}); "
            "start the server with the module that defines it"
        )
    return wf


async def start_on_temporal(
    temporal: TemporalEngine, workflow: str, value: Any, key: str | None
) -> tuple[RunInfo | None, str]:
    """Start a run on Temporal; the Idempotency-Key is the Temporal workflow id. Returns
    ``(the existing run, its id)`` when the key named one (same request, else 409), or
    ``(None, new id)``."""
    from bandmaster.temporal.engine import MAX_PAYLOAD

    wf = workflow_named(temporal.workflows, workflow)
    args, kwargs = wf.input_from_json(value)
    payload = json.loads(wf.encode_input(args, kwargs, limit=MAX_PAYLOAD))
    if key is not None:
        existing = await _existing(temporal, key)
        if existing is not None:
            # The start event holds the input as the client redacted it: compare like with like.
            redactor = redactor_for(wf, temporal.redact)
            _same_request(existing, key, wf.name, redactor.redact(payload) if redactor else payload)
            return existing, key
    handle = await temporal.start(wf, *args, run_id=key, **kwargs)
    return None, handle.id


async def _existing(temporal: TemporalEngine, key: str) -> RunInfo | None:
    try:
        return await temporal.describe(key)
    except RunNotFound:
        return None


def _same_request(run: RunInfo, key: str, workflow: str, payload: Any) -> None:
    if run.workflow != workflow or run.input != payload:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"Idempotency-Key {key!r} was already used for a different request (run of {run.workflow!r} "
            f"with another input); use a new key for a new run",
        )


def started_status(run: RunInfo | None) -> RunStatus:
    """What POST /runs answers: a new Temporal run is running at once (no queue of ours)."""
    return run.status if run is not None else "running"


async def temporal_ready(temporal: TemporalEngine) -> str | None:
    """None when the Temporal frontend answers its health check, else why not."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            healthy = await temporal.client.service_client.check_health()
    except Exception as exc:  # any failure to answer means: not ready
        return f"{type(exc).__name__}: {exc}"
    return None if healthy else "its health check answered not serving"


def install(app: FastAPI, temporal: TemporalEngine) -> None:
    """Answer Temporal's RPC failures (cluster down, overloaded) as 503 in the one error shape."""
    from temporalio.service import RPCError

    @app.exception_handler(RPCError)
    async def rpc_error(request: Request, exc: RPCError) -> Response:
        return _unavailable(temporal, exc)


def _unavailable(temporal: TemporalEngine, exc: Exception) -> JSONResponse:
    return error_response(
        503,
        "backend_unavailable",
        f"the Temporal cluster at {temporal.target} (namespace {temporal.namespace!r}) did not answer: "
        f"{exc}; check that it runs, then retry",
    )
