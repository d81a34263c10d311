"""Fixtures: the scripted provider server (one real process per session, reset per test) and
engines bound to a model registry."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm

from .helpers import SCRIPTED_SERVER, ScriptedServer, ask

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
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTED_SERVER), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"scripted server did not start: {line!r} {log.read_text()}"
        server = ScriptedServer(int(line.split()[1]))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                server.stats()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, f"scripted server exited: {log.read_text()}"
                assert time.monotonic() < deadline, "scripted server does not answer"
                time.sleep(0.02)
        yield server
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


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
