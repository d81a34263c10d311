"""The server's app with one route that fails unexpectedly, for the last-resort 500 test
(``uvicorn --factory tests.server.boom_app:create``); the journal path comes from BM_BOOM_DB."""

from __future__ import annotations

import os

from fastapi import FastAPI

from bandmaster.server import create_app


def create() -> FastAPI:
    app = create_app(os.environ["BM_BOOM_DB"])

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"a bug near {os.environ['BM_BOOM_DB']}")

    return app
