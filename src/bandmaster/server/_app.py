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

from bandmaster.engine import Engine, Workflow
from bandmaster.engine.backend import Backend
from bandmaster.errors import UsageError
from bandmaster.models import Registry
from bandmaster.server import _api as api
from bandmaster.server import _errors as errors
from bandmaster.server import _hooks as hooks
from bandmaster.server import _runs_ui as runs_ui
from bandmaster.server import _schedules as schedules
from bandmaster.server import _schedules_ui as schedules_ui
from bandmaster.server import _stats_ui as stats_ui
from bandmaster.server import _ui as ui
from bandmaster.server._deps import ServerState
from bandmaster.server._journal import reading
from bandmaster.server._limits import RateLimiter, SizeLimits
from bandmaster.server._metrics import HttpMetrics
from bandmaster.server._settings import ServerSettings
from bandmaster.store import SCHEMA_VERSION, resolve_db_path

if TYPE_CHECKING:
    from bandmaster.triggers import InboundHook

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("bandmaster.server")


def create_app(
    db: str | os.PathLike[str] | None,
    *,
    workflows: Iterable[Workflow[..., Any]] = (),
    registry: Registry | None = None,
    workers: int = 0,
    settings: ServerSettings | None = None,
    backend: Backend | None = None,
    inbound: Mapping[str, InboundHook] | None = None,
    temporal: Backend | None = None,
) -> FastAPI:
    """The server application over the journal ``db``.

    ``workflows`` are the ones the API may start (their input is validated here). ``workers=0``:
    the server only enqueues and reads, and separate ``bandmaster worker`` processes execute;
    ``workers=N``: it also executes runs in-process, up to N at a time. ``registry`` serves the
    models endpoints and pages (and ``bm.call_model`` in in-process runs).

    ``backend``: another ``Backend`` (e.g. a ``bm.TemporalEngine`` with the workflows,
    ``worker=False``) that runs, approvals, models, stats and schedules go to instead; ``db``
    then keeps only the server's own tables (tokens, sessions, audit). What that backend cannot
    do answers 501 ``not_supported`` with why (``backend.capabilities``). ``temporal=`` is the
    older name of ``backend=``.
    """
    if workers < 0:
        raise UsageError(f"create_app(workers={workers}): give 0 (no in-process worker) or more")
    backend = backend if backend is not None else temporal
    chosen = settings or ServerSettings()
    engine: Engine
    if isinstance(backend, Engine) and backend.path == resolve_db_path(db):
        engine = backend  # the server's own journal is the backend (the embedded server)
    else:
        if backend is not None:
            _check_backend(backend, workflows, workers, registry)
        engine = Engine(
            db,
            workflows=workflows if backend is None else (),
            worker=workers > 0,
            concurrency=max(workers, 1),
            registry=registry,
        )
    served: Backend = backend if backend is not None else engine
    hooks_by_name = dict(inbound or {})
    _check_hooks(hooks_by_name, served.workflows)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.open()
        try:
            if served is not engine:
                await served.open()
            app.state.bandmaster = ServerState(
                engine, served, chosen, RateLimiter(chosen.burst_seconds), hooks=hooks_by_name
            )
            yield
        finally:
            if served is not engine:
                await served.close()
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
    ui.install(app)
    app.add_middleware(SizeLimits, max_body=chosen.max_body, max_headers=chosen.max_headers)
    app.add_middleware(HttpMetrics)
    # Added last: the outermost of ours. After an unexpected failure it asks the backend's health.
    app.add_middleware(errors.LastResort, diagnose=served.health)
    app.include_router(api.router)
    app.include_router(schedules.router)
    app.include_router(hooks.router)
    app.include_router(ui.router)
    app.include_router(runs_ui.router)
    app.include_router(stats_ui.router)
    app.include_router(schedules_ui.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/runs", status_code=303)

    @app.get(
        "/healthz", operation_id="health", tags=["health"], responses=errors.documented(*errors.EVERY_REQUEST)
    )
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        operation_id="readiness",
        tags=["health"],
        responses=errors.documented(*errors.EVERY_REQUEST, 503),
    )
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
        name = served.capabilities.name
        problem = await served.health()
        if problem is not None:
            log.error("readiness: the %s backend: %s", name, problem)
            return errors.error_response(
                503, "backend_unavailable", f"the {name} backend does not answer; the server log says why"
            )
        return JSONResponse({"status": "ready", "schema": version, "backend": name})

    @app.get(
        "/metrics",
        operation_id="prometheusMetrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses=errors.documented(*errors.EVERY_REQUEST),
    )
    async def metrics() -> Response:
        """Prometheus text format: whatever is registered in the default registry."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def _check_hooks(hooks: Mapping[str, InboundHook], workflows: Mapping[str, Workflow[..., Any]]) -> None:
    for hook in hooks.values():
        if hook.workflow not in workflows:
            raise UsageError(
                f"hook {hook.name!r} starts workflow {hook.workflow!r}, which this server does not have "
                f"(known: {', '.join(sorted(workflows)) or 'none'}); pass the module that defines it"
            )


def _check_backend(
    backend: Backend, workflows: Iterable[Workflow[..., Any]], workers: int, registry: Registry | None
) -> None:
    """A server over another backend only starts and reads runs: the backend has the workflows,
    its own workers execute them, and its registry serves the models."""
    name = backend.capabilities.name
    if list(workflows):
        raise UsageError(
            f"create_app(backend=...): pass the workflows to the {name} backend (e.g. "
            "bm.TemporalEngine(workflows=[...])), not to create_app (the server starts runs there)"
        )
    if workers:
        raise UsageError(
            f"create_app(workers={workers}, backend=...): on the {name} backend, runs execute in its "
            f"workers; start `bandmaster worker --backend {name} MODULE` processes and give the "
            "server workers=0"
        )
    if registry is not None:
        raise UsageError(f"create_app(registry=..., backend=...): give the registry to the {name} backend")
    if getattr(backend, "run_worker", False):  # both engines say whether they host a worker
        raise UsageError(
            f"create_app(backend=...): give a client, e.g. bm.TemporalEngine(..., worker=False); {name} "
            f"workers run as `bandmaster worker --backend {name}` processes"
        )
