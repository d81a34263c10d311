"""``bandmaster server``: the HTTP API and dashboard over a journal (needs the server extra)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from bandmaster.cli.loader import load_workflows
from bandmaster.errors import BandmasterError, UnsafeBind

err = Console(stderr=True)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    models: Annotated[
        str | None, typer.Option("--models", envvar="BANDMASTER_MODELS", help="models.yaml")
    ] = None,
    max_body: Annotated[int, typer.Option(min=1, help="Largest request body, bytes")] = 1_000_000,
    rate_limit: Annotated[float, typer.Option(min=0.001, help="Default requests/s per token")] = 50.0,
    insecure_cookies: Annotated[
        bool, typer.Option(help="Session cookie without Secure (plain HTTP on a non-loopback host)")
    ] = False,
) -> None:
    """Serve the JSON API (/api/v1, docs at /docs), the dashboard (/ui) and /metrics."""
    try:
        import uvicorn

        from bandmaster.models.registry import Registry
        from bandmaster.server import ServerSettings, create_app
        from bandmaster.store.sqlite import SQLiteStore, resolve_db_path
        from bandmaster.store.tokens import TokenStore
    except ImportError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    try:
        workflows = load_workflows(modules or [])
        registry = Registry.load(models) if models else None
        if host not in LOOPBACK:
            store = SQLiteStore(resolve_db_path(db))
            try:
                protected = TokenStore(store).any_live_token()
            finally:
                store.close()
            if not protected:
                raise UnsafeBind(
                    f"refusing to listen on {host}: no API token exists, so anyone who can reach this "
                    f"machine could read runs and decide approvals. Create one first "
                    f"(`bandmaster tokens create NAME --scope admin --db ...`) or listen on 127.0.0.1"
                )
        settings = ServerSettings(
            max_body=max_body, rate_limit=rate_limit, secure_cookies=not insecure_cookies
        )
        app = create_app(db, workflows=workflows, registry=registry, workers=workers, settings=settings)
    except BandmasterError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    err.print(f"bandmaster server on http://{host}:{port} (API /api/v1, docs /docs, dashboard /ui/runs)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
