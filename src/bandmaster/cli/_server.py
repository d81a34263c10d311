"""``bandmaster server``: the HTTP API and dashboard over a journal (needs the server extra)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bandmaster.cli import _backends as backends
from bandmaster.cli import _console as ui
from bandmaster.cli._console import missing_extra
from bandmaster.cli._loader import load_workflows
from bandmaster.cli._logs import LEVELS, LogJsonOption, LogLevelOption, setup_logging
from bandmaster.cli._temporal import (
    BackendOption,
    NamespaceOption,
    TargetOption,
    TaskQueueOption,
    check_backend,
)
from bandmaster.errors import BandmasterError, UnsafeBind

if TYPE_CHECKING:
    from fastapi import FastAPI

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONFIG_ENV = "BANDMASTER_SERVER_CONFIG"  # how --processes hands the options to each process


def build_app(
    modules: list[str],
    db: str | None,
    models: str | None,
    workers: int,
    settings: dict[str, Any],
    backend: dict[str, str] | None = None,
    hooks: str | None = None,
) -> FastAPI:
    """``backend``: where runs go (``backends.Where``: name, target, namespace, task queue);
    the embedded backend is the journal ``db`` itself. ``hooks``: the YAML file of the signed
    inbound webhooks (``bandmaster.triggers._hooks``)."""
    from bandmaster.models import Registry
    from bandmaster.server import ServerSettings, create_app
    from bandmaster.triggers import load_hooks

    workflows = load_workflows(modules)
    registry = Registry.load(models) if models else None
    inbound = load_hooks(hooks) if hooks else None
    where = backends.Where(**(backend or {}), db=db)
    engine = backends.build(
        where,
        workflows=workflows,
        registry=registry,
        worker=workers > 0,
        must_exist=False,
        embedded={"concurrency": max(workers, 1)},
    )
    return create_app(
        db, backend=engine, workers=workers, settings=ServerSettings(**settings), inbound=inbound
    )


def app_from_env() -> FastAPI:
    """The app of one of several server processes (uvicorn's factory, see --processes)."""
    config = json.loads(os.environ[CONFIG_ENV])
    setup_logging(**config.pop("logging"))  # each process sets up its own
    return build_app(**config)


async def _reachable(where: backends.Where) -> None:
    """Refuse to serve when the backend cannot be reached: a message and exit 2 here, rather
    than a traceback from every server process's startup."""
    async with backends.opened(where, must_exist=False):  # UsageError saying where and what to do
        pass


def _absolute(module: str) -> str:
    # Server processes import modules again; a file path must not depend on their cwd.
    return str(Path(module).resolve()) if module.endswith(".py") or "/" in module else module


def server(
    modules: Annotated[
        list[str] | None,
        typer.Argument(help="Modules or files with the @bm.workflow functions the API may start"),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Journal path [default: $BANDMASTER_DB or ./bandmaster.db]")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on; beyond 127.0.0.1 needs a token")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(min=0, help="Runs executed in-process at once (0: API only)")] = 0,
    processes: Annotated[int, typer.Option(min=1, help="Server processes sharing the port")] = 1,
    models: Annotated[
        str | None, typer.Option("--models", envvar="BANDMASTER_MODELS", help="models.yaml")
    ] = None,
    max_body: Annotated[int, typer.Option(min=1, help="Largest request body, bytes")] = 1_000_000,
    rate_limit: Annotated[float, typer.Option(min=0.001, help="Default requests/s per token")] = 50.0,
    insecure_cookies: Annotated[
        bool, typer.Option(help="Session cookie without Secure (plain HTTP on a non-loopback host)")
    ] = False,
    show_internals: Annotated[
        bool,
        typer.Option(help="Show clients run tracebacks (server file paths) and worker hosts; off by default"),
    ] = False,
    hooks: Annotated[
        str | None,
        typer.Option(
            "--hooks", help="YAML of signed inbound webhooks, POST /hooks/{name} (secrets from env vars)"
        ),
    ] = None,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
    log_level: LogLevelOption = "warning",
    log_json: LogJsonOption = False,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log each request (method, path, status) at info level")
    ] = False,
) -> None:
    """Serve the JSON API (/api/v1, docs at /docs), the dashboard (/ui) and /metrics.

    With --backend temporal (or BANDMASTER_BACKEND=temporal) runs go to a Temporal cluster and
    --db keeps only the server's own tables (tokens, sessions, audit)."""
    try:
        import uvicorn

        from bandmaster.store import SQLiteStore, TokenStore, resolve_db_path
    except ImportError as exc:
        raise ui.fail(missing_extra("bandmaster server", "server", exc)) from exc
    config: dict[str, Any] = {
        "modules": [_absolute(m) for m in modules or []],
        "db": str(resolve_db_path(db).resolve()),
        "models": str(Path(models).resolve()) if models else None,
        "workers": workers,
        "hooks": str(Path(hooks).resolve()) if hooks else None,
        "backend": {"backend": backend, "target": target, "namespace": namespace, "task_queue": task_queue},
        "settings": {
            "max_body": max_body,
            "rate_limit": rate_limit,
            "secure_cookies": not insecure_cookies,
            "processes": processes,
            "show_internals": show_internals,
        },
    }
    try:
        check_backend(backend)
        store = SQLiteStore(config["db"])  # a journal it can use, checked before any process starts
        try:
            store.require_sound()  # a damaged journal is not served with holes
            protected = host in LOOPBACK or TokenStore(store).any_live_token()
        finally:
            store.close()
        if not protected:
            raise UnsafeBind(
                f"refusing to listen on {host}: no API token exists, so anyone who can reach this "
                f"machine could read runs and decide approvals. Create one first "
                f"(`bandmaster tokens create NAME --scope admin --db ...`) or listen on 127.0.0.1"
            )
        app = build_app(**config)  # also checks modules and models.yaml before any process starts
        asyncio.run(_reachable(backends.Where(**config["backend"], db=config["db"])))
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    ui.line(
        f"bandmaster server on http://{host}:{port} (API /api/v1, docs /docs, dashboard /ui/runs)", err=True
    )
    setup_logging(log_level, log_json)
    # uvicorn's loggers go through ours (log_config=None), so --log-json covers them too. Its
    # access log is at info level: --access-log lowers uvicorn's own loggers to info.
    uvicorn_level = "info" if access_log and LEVELS.index(log_level) > LEVELS.index("info") else log_level
    served: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "log_level": uvicorn_level,
        "access_log": access_log,
    }
    if processes == 1:
        uvicorn.run(app, **served)
        return
    os.environ[CONFIG_ENV] = json.dumps({**config, "logging": {"level": log_level, "json_logs": log_json}})
    uvicorn.run("bandmaster.cli._server:app_from_env", factory=True, workers=processes, **served)
