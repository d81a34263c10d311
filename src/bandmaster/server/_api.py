"""The versioned JSON API, ``/api/v1``: runs, events, signals, approvals, models, stats."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bandmaster._types import TERMINAL_STATUSES, RunOrder, RunStatus
from bandmaster.engine import Approval, Decision, RunInfo, RunTerms, Workflow
from bandmaster.engine.backend import AliasState, Backend
from bandmaster.engine.backend_kit import describe_key
from bandmaster.errors import (
    AlreadyDecided,
    ApprovalNotFound,
    NotAuthorized,
    RunNotFound,
    UsageError,
    WorkflowNotFound,
)
from bandmaster.observe.stats import Stats
from bandmaster.server._auth import Principal
from bandmaster.server._bodies import StrictJsonRoute
from bandmaster.server._deps import ServerState, require, state_of
from bandmaster.server._errors import AUTHENTICATED, HIDDEN, ApiError, documented, shorter
from bandmaster.server._events import run_events
from bandmaster.server._exposure import shown_run
from bandmaster.server._limits import MAX_OFFSET
from bandmaster.store import TokenStore

router = APIRouter(prefix="/api/v1", route_class=StrictJsonRoute, responses=documented(*AUTHENTICATED))

Reader = Annotated[Principal, Depends(require("runs:read"))]
Writer = Annotated[Principal, Depends(require("runs:write"))]
Decider = Annotated[Principal, Depends(require("approvals:decide"))]
Admin = Annotated[Principal, Depends(require("admin"))]
ModelAdmin = Annotated[Principal, Depends(require("models:admin"))]

MAX_KEY = 200


class StartRun(BaseModel):
    workflow: str = Field(description="Name of a workflow the server was started with")
    input: Any = Field(
        None,
        description="The JSON input: the whole value for a one-parameter workflow, "
        "else an object of keyword arguments or an array",
    )
    priority: int = Field(
        0,
        strict=True,
        description="Higher is claimed and served first under saturation; waiting raises it (aging)",
    )
    tenant: str | None = Field(
        None, strict=True, description="Whose run it is: fair share, tenant budgets, per-tenant stats"
    )
    budget_usd: float | None = Field(
        None, strict=True, description="The most this run may spend on model calls, in dollars"
    )
    version: str | None = Field(
        None,
        strict=True,
        max_length=64,
        description="A version of the workflow the server hosts (default: the newest, or its pinned default)",
    )


class StartedRun(BaseModel):
    id: str
    workflow: str
    status: RunStatus = Field(description="queued, or running when the server executes it itself")
    created: bool = Field(description="false when an Idempotency-Key named an existing run")


class RunPage(BaseModel):
    runs: list[RunInfo]
    next_offset: int | None = Field(description="Pass as offset= for the next page; null on the last")


class SignalIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    payload: Any = None


class DecisionIn(BaseModel):
    action: str = Field(
        min_length=1, max_length=100, description="approve, override, or any action the workflow reads"
    )
    comment: str | None = Field(None, max_length=5000)
    name: str | None = Field(None, description="Which approval, when the run has several pending")


class AliasOut(BaseModel):
    alias: str
    versions: dict[str, str]
    weights: dict[str, float]
    fallback: list[str]
    breakers: dict[str, str]
    history: list[dict[str, Any]] = []


class AliasChange(BaseModel):
    versions: dict[str, str] | None = None
    weights: dict[str, float] | None = None


def workflow_named(backend: Backend, name: str, version: str | None = None) -> Workflow[..., Any]:
    """The workflow to start: ``name``'s default version, or ``version`` of it."""
    wf = backend.workflows.get(name) if version is None else backend.hosted.get(name, version)
    if wf is None:
        known = sorted(describe_key(w.name, w.version) for w in backend.hosted)
        wanted = shorter(name if version is None else f"{name}@{version}")
        raise WorkflowNotFound(
            f"no workflow {wanted} on this server (known: {', '.join(known) or 'none'}); "
            "start the server with the module that defines it"
        )
    return wf


async def start_keyed(
    backend: Backend,
    workflow: str,
    value: Any,
    key: str | None,
    terms: RunTerms | None = None,
    version: str | None = None,
) -> tuple[str, RunStatus, bool]:
    """Start ``workflow`` (at ``version``, else its default) with the JSON input ``value`` and
    ``terms``; the key, when given, is the run id, so a repeat of the same request finds its run
    (IdempotencyConflict, 409, for another request). Returns the run's id, its status, and
    whether this call created it."""
    wf = workflow_named(backend, workflow, version)
    args, kwargs = wf.input_from_json(value)
    terms = terms or RunTerms()
    handle = await backend.start(
        wf,
        *args,
        run_id=key,
        priority=terms.priority,
        tenant=terms.tenant,
        budget_usd=terms.budget_usd,
        **kwargs,
    )
    return handle.id, handle.status or "queued", handle.created


@router.post(
    "/runs",
    operation_id="startRun",
    status_code=201,
    response_model=StartedRun,
    responses=documented(400, 404, 409),
    tags=["runs"],
)
async def start_run(
    body: StartRun,
    request: Request,
    response: Response,
    principal: Writer,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY)] = None,
) -> StartedRun:
    """Start a run. With an ``Idempotency-Key`` header the key is the run id: repeating the
    request returns the same run (200); the same key with another body is a 409. The answer
    is short (GET the ``Location`` for the whole run) so that starting stays cheap."""
    if idempotency_key is not None and (not idempotency_key.strip() or not idempotency_key.isprintable()):
        raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1-200 printable characters")
    backend = state_of(request).backend
    terms = RunTerms(body.priority, body.tenant, body.budget_usd)  # InvalidInput: 422, nothing started
    run_id, status, created = await start_keyed(
        backend, body.workflow, body.input, idempotency_key, terms, body.version
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/runs/{run_id}"
    return StartedRun(id=run_id, workflow=body.workflow, status=status, created=created)


@router.get(
    "/runs", operation_id="listRuns", response_model=RunPage, responses=documented(501), tags=["runs"]
)
async def list_runs(
    request: Request,
    principal: Reader,
    status: RunStatus | None = None,
    workflow: str | None = None,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    search: Annotated[
        str | None,
        Query(
            max_length=200,
            description="The run id or the journaled input contains this text (embedded engine only: "
            "on Temporal a 501 not_supported; use id_prefix)",
        ),
    ] = None,
    id_prefix: Annotated[str | None, Query(max_length=200, description="The run id begins with this")] = None,
    created_after: Annotated[
        str | None,
        Query(
            max_length=40, description="Created at or after: ISO 8601 (UTC without a zone) or Unix seconds"
        ),
    ] = None,
    created_before: Annotated[
        str | None,
        Query(max_length=40, description="Created before: ISO 8601 (UTC without a zone) or Unix seconds"),
    ] = None,
    order: Annotated[
        RunOrder,
        Query(description="newest (default), oldest, longest or shortest (duration); Temporal: newest only"),
    ] = "newest",
) -> RunPage:
    """Runs matching every filter given, newest first, without their steps (``tenant``: only
    that tenant's). On Temporal, ``status`` is one of running, completed, failed, cancelled (a
    waiting run is running there), and ``search`` and ``order`` answer 501 ``not_supported``."""
    state = state_of(request)
    runs = await state.backend.list(
        status=status,
        workflow=workflow,
        tenant=tenant,
        limit=limit + 1,
        offset=offset,
        search=search or None,
        id_prefix=id_prefix or None,
        created_after=_moment(created_after, "created_after"),
        created_before=_moment(created_before, "created_before"),
        order=order,
    )
    more = len(runs) > limit
    internals = state.settings.show_internals
    return RunPage(
        runs=[shown_run(r, internals=internals) for r in runs[:limit]],
        next_offset=offset + limit if more else None,
    )


def _moment(text: str | None, name: str) -> datetime | None:
    """A query's time: ISO 8601 (read as UTC without a zone) or Unix seconds."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not (math.isfinite(seconds) and 0 <= seconds <= MAX_UNIX):
            raise ApiError(
                422, "invalid_input", f"{name}={shorter(text)} is not a time; give Unix seconds or ISO 8601"
            )
        return datetime.fromtimestamp(seconds, UTC)
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            422,
            "invalid_input",
            f"{name}={shorter(text)} is not a time; write ISO 8601 (2026-12-06T13:00:00Z) or Unix seconds",
        ) from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


MAX_UNIX = 253_402_300_799.0  # 9999-12-31: later times overflow a datetime


@router.get(
    "/runs/{run_id}", operation_id="getRun", response_model=RunInfo, responses=documented(404), tags=["runs"]
)
async def get_run(run_id: str, request: Request, principal: Reader) -> RunInfo:
    """A run with its steps (attempts, model versions, tokens, cost, errors in ``meta``).
    Errors carry type and message; tracebacks only when the server runs with ``--show-internals``."""
    state = state_of(request)
    return shown_run(await state.backend.describe(run_id), internals=state.settings.show_internals)


@router.get(
    "/runs/{run_id}/events",
    operation_id="streamEvents",
    tags=["runs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **documented(404)},
)
async def stream_events(run_id: str, request: Request, principal: Reader) -> StreamingResponse:
    """Server-sent events: ``status`` on every status change, ``step`` for every journaled or
    updated step (and ``running`` when a model stream starts), ``token`` for the text chunks
    of the run's model streams as they arrive (``{"seq", "text", "restart"}``; ``restart``:
    drop the text so far), and a final ``end`` with the outcome, after which the stream closes."""
    state = state_of(request)
    await state.backend.describe(run_id)  # 404 before the stream starts
    backend = state.backend
    capabilities = backend.capabilities
    poll = max(state.settings.poll_interval, capabilities.min_poll)  # a read may be a history fetch
    chunks = backend.chunks if capabilities.supports("token_streaming") else None
    return StreamingResponse(
        run_events(backend, run_id, poll=poll, internals=state.settings.show_internals, chunks=chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/runs/{run_id}/signals",
    operation_id="sendSignal",
    status_code=202,
    responses=documented(404, 409),
    tags=["runs"],
)
async def send_signal(run_id: str, body: SignalIn, request: Request, principal: Writer) -> dict[str, str]:
    """Deliver a signal to the run's ``bm.wait_for(name)`` (kept until the wait is reached)."""
    engine = state_of(request).backend
    await engine.describe(run_id)
    try:
        await engine.signal(run_id, body.name, body.payload)
    except UsageError as exc:
        raise ApiError(409, "run_finished", str(exc)) from exc
    return {"run_id": run_id, "signal": body.name, "status": "accepted"}


@router.post("/runs/{run_id}/cancel", operation_id="cancelRun", responses=documented(404), tags=["runs"])
async def cancel_run(run_id: str, request: Request, principal: Writer) -> dict[str, str]:
    """Cancel: at once when queued or waiting; a running run stops at its next await point."""
    engine = state_of(request).backend
    await engine.describe(run_id)
    status = await engine.cancel(run_id)
    return {"run_id": run_id, "status": status}


@router.get("/approvals", operation_id="listApprovals", response_model=list[Approval], tags=["approvals"])
async def list_approvals(
    request: Request,
    principal: Reader,
    status: Literal["pending", "decided", "all"] = "pending",
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Approval]:
    """Approvals, oldest first: pending ones by default."""
    desk = state_of(request).backend.approvals
    return await desk.list(status=None if status == "all" else status, name=name, limit=limit)


@router.post(
    "/approvals/{run_id}/decision",
    operation_id="decideApproval",
    response_model=Decision,
    responses=documented(400, 404, 409),
    tags=["approvals"],
)
async def decide(run_id: str, body: DecisionIn, request: Request, principal: Decider) -> Decision:
    """Decide the run's pending approval as the token's principal (checked against the
    approval's allow-list: 403 ``not_an_approver``; 409 ``already_decided``)."""
    state = state_of(request)
    try:
        decision = await state.backend.approvals.decide(
            run_id, body.action, by=principal.name, comment=body.comment, name=body.name
        )
    except UsageError as exc:
        finished = await _finished(state, run_id)
        if finished and not isinstance(exc, ApprovalNotFound):
            raise ApiError(409, "run_finished", str(exc)) from exc
        raise
    except (NotAuthorized, AlreadyDecided) as exc:
        TokenStore(state.store).audit(
            principal.name, "approval.refused", run_id, {"action": body.action, "why": type(exc).__name__}
        )
        raise
    TokenStore(state.store).audit(principal.name, "approval.decide", run_id, {"action": body.action})
    return decision


async def _finished(state: ServerState, run_id: str) -> bool:
    try:
        return (await state.backend.describe(run_id)).status in TERMINAL_STATUSES
    except RunNotFound:
        return False


@router.get(
    "/models",
    operation_id="listModels",
    response_model=list[AliasOut],
    responses=documented(404, 501),
    tags=["models"],
)
async def list_models(request: Request, principal: Reader) -> list[AliasOut]:
    """Aliases with versions, traffic weights, fallbacks and breaker states."""
    return [_alias_out(a) for a in await state_of(request).backend.models.describe()]


@router.get(
    "/models/{alias}",
    operation_id="getModel",
    response_model=AliasOut,
    responses=documented(404, 501),
    tags=["models"],
)
async def get_model(alias: str, request: Request, principal: Reader) -> AliasOut:
    desk = state_of(request).backend.models
    for state in await desk.describe():
        if state.alias == alias:
            return _alias_out(state, await desk.history(alias))
    raise ApiError(
        404, "unknown_alias", f"no alias {shorter(alias)} in the registry; GET /api/v1/models lists them"
    )


@router.put(
    "/models/{alias}",
    operation_id="changeModel",
    response_model=AliasOut,
    responses=documented(404, 501),
    tags=["models"],
)
async def change_model(alias: str, body: AliasChange, request: Request, principal: ModelAdmin) -> AliasOut:
    """Change versions and/or weights (validated against models.yaml; every worker adopts it
    within a second); audited with the principal."""
    state = state_of(request)
    desk = state.backend.models
    if body.versions is None and body.weights is None:
        raise ApiError(422, "invalid_input", "give versions and/or weights to change")
    changed = await desk.switch(alias, versions=body.versions, weights=body.weights, by=principal.name)
    TokenStore(state.store).audit(principal.name, "models.set", alias, body.model_dump(exclude_none=True))
    return _alias_out(changed, await desk.history(alias))


def _alias_out(state: AliasState, history: list[dict[str, Any]] | None = None) -> AliasOut:
    return AliasOut(
        alias=state.alias,
        versions=state.versions,
        weights=state.weights,
        fallback=state.fallback,
        breakers=state.breakers,
        history=history or [],
    )


@router.get(
    "/stats", operation_id="getStats", response_model=Stats, responses=documented(501), tags=["stats"]
)
async def stats(
    request: Request, principal: Reader, workflow: str | None = None, since: str | None = None
) -> Stats:
    """The journal statistics ``bandmaster stats --json`` prints (``bandmaster.observe.stats``):
    latency percentiles, failure, retry, fallback and cache rates per step; tokens and cost per
    model; runs by status, completion and cost per workflow; storage per day.
    ``since``: a duration (``30m``, ``24h``, ``7d``, ``2w``) or a Unix time.
    A backend without statistics answers 501 ``not_supported``, saying why."""
    found = await state_of(request).backend.stats(workflow=workflow, since=_since_seconds(since))
    return found.model_copy(update={"db": HIDDEN})  # the journal's path is the server's business


def _since_seconds(text: str | None) -> str | float | None:
    """``since`` as ``compute`` takes it. A duration passes through (``compute`` validates it:
    ``InvalidInput``, 422); a bare number is a Unix time, as this API has always read it,
    turned into seconds back from now."""
    if not text:
        return None
    try:
        stamp = float(text)
    except ValueError:
        return text
    now = time.time()
    if not math.isfinite(stamp) or stamp >= now:
        raise ApiError(
            422, "invalid_input", f"since={text!r} is not a past Unix time; give one, or a duration like 24h"
        )
    return now - stamp


class AuditOut(BaseModel):
    at: float
    principal: str | None
    action: str
    target: str | None
    detail: dict[str, Any] | None


@router.get("/audit", operation_id="listAudit", response_model=list[AuditOut], tags=["admin"])
async def audit(
    request: Request, principal: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[AuditOut]:
    """Administrative changes and decisions made through the server, newest first: who (the
    token's principal), what, on what."""
    rows = TokenStore(state_of(request).store).audit_log(limit)
    return [
        AuditOut(at=r.at, principal=r.principal, action=r.action, target=r.target, detail=r.detail)
        for r in rows
    ]
