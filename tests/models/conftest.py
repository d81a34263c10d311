"""Fixtures: the scripted provider server (one real process per session, reset per test) and
engines bound to a model registry."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm

from .helpers import ScriptedServer, ask, scripted_server_process

START_TIMEOUT = 15.0


@pytest.fixture(scope="session")
def scripted_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedServer]:
    """``scripted_server.py`` as a separate process on 127.0.0.1. It binds port 0 (a free port
    chosen by the OS, so no race with other processes) and prints it; we wait until it answers
    and kill it at the end of the session."""
    # Tests reach it through the provider SDKs: without them, they skip here.
    pytest.importorskip("openai", reason="needs bandmaster[openai] (the scripted server's client)")
    pytest.importorskip("anthropic", reason="needs bandmaster[anthropic] (the scripted server's client)")
    log = tmp_path_factory.mktemp("scripted") / "server.err"
    with scripted_server_process(log, timeout=START_TIMEOUT) as server:
        yield server


@pytest.fixture
def server(scripted_process: ScriptedServer) -> ScriptedServer:
    """The scripted server with no script and zero counts."""
    scripted_process.reset()
    return scripted_process


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


EngineFactory = Callable[..., Awaitable[bm.Engine]]


@pytest.fixture
async def engine_for(db_path: Path) -> AsyncIterator[EngineFactory]:
    """``await engine_for(registry)``: an open engine on this test's journal serving ``ask``."""
    engines: list[bm.Engine] = []

    async def make(registry: bm.Registry | None, **options: Any) -> bm.Engine:
        options = {"poll_interval": 0.02, "lease": 2.0, **options}
        engine = bm.Engine(db_path, workflows=[ask], registry=registry, **options)
        await engine.open()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close(grace=1.0)
