"""``create_app``: the FastAPI application of ``bandmaster server`` (API, dashboard, health,
metrics) over one journal."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bandmaster.calls import bind_store
from bandmaster.engine.runtime import Engine
from bandmaster.engine.workflow import Workflow
from bandmaster.errors import UsageError
from bandmaster.models.registry import Registry
from bandmaster.server import api, backend, errors, hooks, schedules, schedules_ui, ui
from bandmaster.server.deps import ServerState
from bandmaster.server.journal import reading
from bandmaster.server.limits import RateLimiter, SizeLimits
from bandmaster.server.metrics import HttpMetrics
from bandmaster.server.settings import ServerSettings
from bandmaster.store.schema import SCHEMA_VERSION
from bandmaster.store.streams import chunks_after
from bandmaster.triggers.desk import ScheduleDesk, Schedules

if TYPE_CHECKING:
    from bandmaster.observe.live import ChunkReader
    from bandmaster.temporal.engine import TemporalEngine
    from bandmaster.triggers.hooks import InboundHook

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("bandmaster.server")


def create_app(
    db: str | os.PathLike[str] | None,
    *,
    workflows: Iterable[Workflow[..., Any]] = (),
    registry: Registry | None = None,
    workers: int = 0,
    settings: ServerSettings | None = None,
    temporal: TemporalEngine | None = None,
    inbound: Mapping[str, InboundHook] | None = None,
) -> FastAPI:
    """The server application over the journal ``db``.

    ``workflows`` are the ones the API may start (their input is validated here). ``workers=0``:
    the server only enqueues and reads, and separate ``bandmaster worker`` processes execute;
    ``workers=N``: it also executes runs in-process, up to N at a time. ``registry`` serves the
    models endpoints and pages (and ``bm.call_model`` in in-process runs).

    ``temporal``: a ``bm.TemporalEngine`` (with the workflows, ``worker=False``) that runs,
    approvals and events go to instead; ``db`` then keeps only the server's own tables (tokens,
    sessions, audit, registry changes), and routes that read the embedded journal answer 501.
    """
    if workers < 0:
        raise UsageError(f"create_app(workers={workers}): give 0 (no in-process worker) or more")
    if temporal is not None:
        _check_temporal(temporal, workflows, workers)
    chosen = settings or ServerSettings()
    engine = Engine(
        db,
        workflows=workflows,
        worker=workers > 0,
        concurrency=max(workers, 1),
        registry=registry,
    )
    hooks_by_name = dict(inbound or {})
    _check_hooks(hooks_by_name, temporal.workflows if temporal is not None else engine.workflows)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.open()
        try:
            if temporal is not None:
                await temporal.open()
            hub = bind_store(registry, engine.store) if registry is not None else None
            app.state.bandmaster = ServerState(
                engine,
                hub,
                chosen,
                RateLimiter(chosen.burst_seconds),
                temporal=temporal,
                hooks=hooks_by_name,
                schedules=_schedules(engine, temporal),
                chunks=_chunks(engine, temporal),
            )
            yield
        finally:
            if temporal is not None:
                await temporal.close()
            await engine.close()

    app = FastAPIOffline(  # a FastAPI app whose /docs and /redoc assets are served locally
        title="bandmaster",
        version="1",
        summary="Durable AI-workflow orchestration: runs, approvals, models, stats",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry spans and metrics stay on (they appear once a provider is
        # configured); its log records of validation failures would carry request values,
        # which may hold PII, so they are off.
        telemetry={"logs": False},
    )
    errors.install(app)
    if temporal is not None:
        backend.install(app, temporal)
    ui.install(app)
    app.add_middleware(SizeLimits, max_body=chosen.max_body, max_headers=chosen.max_headers)
    app.add_middleware(HttpMetrics)
    app.add_middleware(errors.LastResort)  # added last: the outermost of ours
    app.include_router(api.router)
    app.include_router(schedules.router)
    app.include_router(hooks.router)
    app.include_router(ui.router)
    app.include_router(schedules_ui.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/runs", status_code=303)

    @app.get("/healthz", tags=["health"], responses=errors.documented(*errors.EVERY_REQUEST))
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=errors.documented(*errors.EVERY_REQUEST, 503))
    async def readyz(request: Request) -> JSONResponse:
        """The journal is reachable and its schema is this version's. Unauthenticated, so it
        names no path or address: the server log has them."""
        try:
            with reading(engine.path) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            log.error("readiness: the journal %s cannot be read: %s", engine.path, exc)
            return errors.error_response(
                503, "journal_unavailable", "the journal cannot be read; the server log says why"
            )
        if version != SCHEMA_VERSION:
            return errors.error_response(
                503,
                "migrations_pending",
                f"journal schema is {version}, this server needs {SCHEMA_VERSION}; restart it to migrate",
            )
        if temporal is not None:
            problem = await backend.temporal_ready(temporal)
            if problem is not None:
                log.error("readiness: the Temporal cluster at %s: %s", temporal.target, problem)
                return errors.error_response(
                    503,
                    "backend_unavailable",
                    "the Temporal cluster does not answer; the server log says why",
                )
            return JSONResponse({"status": "ready", "schema": version, "backend": "temporal"})
        return JSONResponse({"status": "ready", "schema": version, "backend": "embedded"})

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses=errors.documented(*errors.EVERY_REQUEST),
    )
    async def metrics() -> Response:
        """Prometheus text format: whatever is registered in the default registry."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def _schedules(engine: Engine, temporal: TemporalEngine | None) -> ScheduleDesk:
    """The schedules the routes list, pause and resume: Temporal Schedules on Temporal."""
    if temporal is not None:
        from bandmaster.temporal.schedules import TemporalSchedules

        return TemporalSchedules(temporal)
    return Schedules(engine.store)


def _chunks(engine: Engine, temporal: TemporalEngine | None) -> ChunkReader | None:
    """Where the event stream reads model streams' token chunks: the embedded journal's side
    table; Temporal activities publish none."""
    if temporal is not None:
        return None
    store = engine.store
    return lambda run_id, after: chunks_after(store, run_id, after)


def _check_hooks(hooks: Mapping[str, InboundHook], workflows: Mapping[str, Workflow[..., Any]]) -> None:
    for hook in hooks.values():
        if hook.workflow not in workflows:
            raise UsageError(
                f"hook {hook.name!r} starts workflow {hook.workflow!r}, which this server does not have "
                f"(known: {', '.join(sorted(workflows)) or 'none'}); pass the module that defines it"
            )


def _check_temporal(temporal: TemporalEngine, workflows: Iterable[Workflow[..., Any]], workers: int) -> None:
    if list(workflows):
        raise UsageError(
            "create_app(temporal=...): pass the workflows to bm.TemporalEngine(workflows=[...]), not to "
            "create_app (the server starts runs on Temporal)"
        )
    if workers:
        raise UsageError(
            f"create_app(workers={workers}, temporal=...): on Temporal, runs execute in Temporal workers; "
            "start `bandmaster worker --backend temporal MODULE` processes and give the server workers=0"
        )
    if temporal.run_worker:
        raise UsageError(
            "create_app(temporal=...): give a client, bm.TemporalEngine(..., worker=False); Temporal workers "
            "run as `bandmaster worker --backend temporal` processes"
        )
