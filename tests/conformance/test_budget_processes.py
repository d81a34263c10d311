"""Budgets across worker processes, on both backends: a tenant's daily budget shared by three
``bandmaster worker`` processes racing for it (overshoot at most one call's cost: here none,
since each call costs exactly its estimate), and spend that survives a SIGKILLed worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import wf_budgets as wfs
from conformance_support import BACKENDS, skip_without_temporal

import bandmaster as bm
from bandmaster.engine.backend import Backend

pytestmark = [pytest.mark.timeout(240), pytest.mark.e2e]

HERE = Path(__file__).parent
MODELS = HERE / "budgets.yaml"
WORKFLOWS = HERE / "wf_budgets.py"
REPO = HERE.parent.parent


class Workers:
    """``bandmaster worker`` processes of one backend; all killed and reaped at teardown."""

    def __init__(self, backend: str, folder: Path, *, db: Path, target: str, task_queue: str) -> None:
        self.backend, self.folder, self.db, self.target, self.task_queue = (
            backend,
            folder,
            db,
            target,
            task_queue,
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])
        args = [
            str(Path(sys.executable).parent / "bandmaster"),
            "worker",
            str(WORKFLOWS),
            "--models",
            str(MODELS),
        ]
        if self.backend == "embedded":
            args += ["--db", str(self.db), "--poll", "0.02", "--lease", "2"]
        else:
            env.update(BANDMASTER_BACKEND="temporal", BANDMASTER_TEMPORAL_TARGET=self.target)
            args += ["--task-queue", self.task_queue]
        log = self.folder / f"worker-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("worker-*.log")))

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(params=BACKENDS)
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    skip_without_temporal(request.param)
    target = ""
    if request.param == "temporal":
        target = request.getfixturevalue("temporal_dev_server").target
    procs = Workers(
        request.param,
        tmp_path,
        db=tmp_path / "journal.db",
        target=target,
        task_queue=f"bud-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield procs
    finally:
        procs.cleanup()


@pytest.fixture
async def client(workers: Workers) -> AsyncIterator[Backend]:
    engine: Any
    if workers.backend == "embedded":
        engine = bm.Engine(workers.db, workflows=wfs.WORKFLOWS, worker=False, poll_interval=0.05)
    else:
        engine = bm.TemporalEngine(
            workers.target, task_queue=workers.task_queue, workflows=wfs.WORKFLOWS, worker=False
        )
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


def spend_workflow(workers: Workers) -> Any:
    return wfs.spend if workers.backend == "embedded" else wfs.spend_in_step


async def test_three_workers_share_a_tenant_budget(workers: Workers, client: Backend) -> None:
    for _ in range(3):
        workers.start()
    handles = [await client.start(spend_workflow(workers), {"tenant": "acme", "calls": 1}) for _ in range(8)]
    results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
    answered = [r for r in results if r["answers"]]
    refused = [r for r in results if r["exceeded"]]
    assert len(answered) == 2, f"$2.50 a day fits two $1 calls, whichever worker sends them: {results}"
    assert len(refused) == 6
    assert all(r["exceeded"] == "tenant:acme" for r in refused)
    if workers.backend == "embedded":
        with sqlite3.connect(workers.db) as conn:
            spent, held = conn.execute(
                "SELECT spent, held FROM budget_spend WHERE scope = 'tenant:acme'"
            ).fetchone()
        assert spent == pytest.approx(2.0)
        assert held == pytest.approx(0.0), "every hold was settled"


async def test_a_killed_worker_does_not_reset_spend(
    workers: Workers, client: Backend, tmp_path: Path
) -> None:
    pause = tmp_path / "pause"
    pause.touch()
    first = workers.start()
    handle = await client.start(
        wfs.spend_across_steps, {"budget": 2.5, "tenant": "acme", "calls": 3, "pause_file": str(pause)}
    )
    deadline = asyncio.get_running_loop().time() + 60
    reached = Path(str(pause) + ".reached")
    while not await asyncio.to_thread(reached.exists):  # one $1 call made, now standing still
        assert first.poll() is None, workers.logs()
        assert asyncio.get_running_loop().time() < deadline, workers.logs()
        await asyncio.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    pause.unlink()
    workers.start()
    result = await handle.result(timeout=120)
    assert result["answers"] == ["big", "big"], (
        f"$1 before the kill + $1 after fill $2.50 but for a third $1: {result}; {workers.logs()}"
    )
    assert result["exceeded"] is not None
    assert "$2.000000 spent of $2.500000" in result["error"]
