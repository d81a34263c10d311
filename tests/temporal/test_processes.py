"""Crashes on Temporal: a SIGKILLed ``bandmaster worker --backend temporal`` process, and a
Temporal server restarted on the same database file. Real processes, nothing mocked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_workflows as wfs
from temporal_support import TemporalServer, free_port

import bandmaster as bm

pytestmark = [pytest.mark.timeout(180), pytest.mark.e2e]

WORKFLOWS = Path(wfs.__file__).resolve()
GRAPH_APP = WORKFLOWS.with_name("graph_app.py")


def bandmaster_exe() -> str:
    return str(Path(sys.executable).parent / "bandmaster")


class WorkerProcs:
    """``bandmaster worker --backend temporal`` processes; all killed and reaped at teardown."""

    def __init__(self, folder: Path, target: str, task_queue: str) -> None:
        self.folder, self.target, self.task_queue = folder, target, task_queue
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, module: Path = WORKFLOWS) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker-{len(self.procs)}.log"
        env = {**os.environ, "BANDMASTER_BACKEND": "temporal", "BANDMASTER_TEMPORAL_TARGET": self.target}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [bandmaster_exe(), "worker", str(module), "--task-queue", self.task_queue],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def worker_procs(tmp_path: Path, temporal_server: TemporalServer) -> Iterator[WorkerProcs]:
    procs = WorkerProcs(tmp_path, temporal_server.target, f"e2e-{uuid.uuid4().hex[:8]}")
    try:
        yield procs
    finally:
        procs.cleanup()


async def _completed_steps(engine: bm.TemporalEngine, run_id: str) -> set[str]:
    info = await engine.describe(run_id)
    return {s.output for s in info.steps if s.status == "completed"}


async def test_sigkill_of_a_worker_mid_run(
    worker_procs: WorkerProcs, temporal_server: TemporalServer, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    first = worker_procs.start()
    async with bm.TemporalEngine(temporal_server.target, task_queue=worker_procs.task_queue) as client:
        handle = await client.start("chain", log, 6, 0.4)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(done := await _completed_steps(client, handle.id)) < 3:
            assert first.poll() is None, (tmp_path / "worker-0.log").read_text()
            assert loop.time() < deadline, "the worker made no progress"
            await asyncio.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        worker_procs.start()
        assert await handle.result(timeout=90) == [f"s{i}" for i in range(6)]
    for name in done:  # finished before the kill: never executed again
        assert wfs.count(log, name) == 1, name
    for i in range(6):  # at least once; the one in flight at the kill may have run twice
        assert wfs.count(log, f"s{i}") >= 1


async def test_a_running_workflow_survives_a_server_restart(tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    server = TemporalServer(tmp_path / "temporal.db", tmp_path / "server.log", free_port())
    server.start()
    try:
        async with bm.TemporalEngine(server.target, workflows=[wfs.waits_then_steps]) as engine:
            handle = await engine.start(wfs.waits_then_steps, log)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (await engine.describe(handle.id)).status != "waiting":
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
        server.stop()
        server.start()  # same port, same database file
        async with bm.TemporalEngine(server.target, workflows=[wfs.waits_then_steps]) as engine:
            assert (await engine.describe(handle.id)).status == "waiting"
            await engine.signal(handle.id, "go")
            assert await engine.result(handle.id, timeout=60) == "after-go"
            kinds = [(s.kind, s.name, s.status) for s in (await engine.describe(handle.id)).steps]
        assert kinds == [("wait", "go", "completed"), ("step", "record", "completed")]
        assert wfs.count(log, "after-go") == 1
    finally:
        server.stop()


async def test_cli_reads_and_steers_runs_on_temporal(temporal_server: TemporalServer, tmp_path: Path) -> None:
    queue = f"cli-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BANDMASTER_BACKEND": "temporal",
        "BANDMASTER_TEMPORAL_TARGET": temporal_server.target,
        "BANDMASTER_TEMPORAL_TASK_QUEUE": queue,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([bandmaster_exe(), *args], capture_output=True, text=True, env=env, timeout=60)

    async with bm.TemporalEngine(temporal_server.target, task_queue=queue, workflows=[wfs.review]) as engine:
        handle = await engine.start(wfs.review, wfs.Ticket(id="T-9", text="hi"), 60.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (await engine.describe(handle.id)).status != "waiting":
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        sent = await asyncio.to_thread(cli, "signal", handle.id, "review", '"hold"')
        assert sent.returncode == 0, sent.stderr
        assert await handle.result(timeout=30) == "T-9:hold"
        shown = await asyncio.to_thread(cli, "runs", "show", handle.id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"status": "completed"' in shown.stdout
    assert '"kind": "wait"' in shown.stdout
    missing = await asyncio.to_thread(cli, "runs", "show", "no-such-run")
    assert missing.returncode == 2
    assert "no run 'no-such-run'" in missing.stderr


def test_unknown_backend_is_a_usage_error() -> None:
    env = {**os.environ, "BANDMASTER_BACKEND": "kafka"}
    result = subprocess.run(
        [bandmaster_exe(), "runs", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "backend 'kafka' is unknown" in result.stderr


async def test_a_graph_runs_on_worker_processes_that_host_it(
    worker_procs: WorkerProcs, temporal_server: TemporalServer
) -> None:
    """The client hosts nothing: the graph's steps and registry are found by reference in the
    worker processes, each of which compiled the graph itself."""
    for _ in range(2):
        worker_procs.start(GRAPH_APP)
    async with bm.TemporalEngine(temporal_server.target, task_queue=worker_procs.task_queue) as client:
        handle = await client.start("triage_graph", {"text": "I was charged twice"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (await client.describe(handle.id)).status != "waiting":
            logs = [p.read_text() for p in sorted(worker_procs.folder.glob("worker-*.log"))]
            assert all(proc.poll() is None for proc in worker_procs.procs), logs
            assert loop.time() < deadline, logs
            await asyncio.sleep(0.1)
        await client.signal(handle.id, "approve", "refund")
        assert await handle.result(timeout=60) == "billing:19:refund"
        info = await client.describe(handle.id)
    assert [(s.name, s.kind, s.status) for s in info.steps] == [
        ("classifier", "model", "completed"),
        ("measure", "step", "completed"),
        ("route", "route", "completed"),
        ("approve", "wait", "completed"),
        ("finish", "step", "completed"),
    ]
