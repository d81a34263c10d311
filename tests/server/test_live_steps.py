"""Step starts published by a worker process with ``--live-steps``: seen by ``bandmaster runs
watch`` and on the server's SSE endpoint while the step runs, and never written without it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore
from bandmaster.store._streams import BATCH_INTERVAL

from .conftest import Server, start_server, stop, wait_healthy
from .wf_live_steps import gated

HERE = Path(__file__).parent
MODULE = str(HERE / "wf_live_steps.py")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bandmaster.cli", *args]


def start_worker(tmp: Path, db: Path, *options: str) -> subprocess.Popen[bytes]:
    with open(tmp / "worker.log", "wb") as out:
        return subprocess.Popen(
            cli("worker", MODULE, "--db", str(db), "--poll", "0.05", *options),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )


def start_gated(db: Path, gate: Path) -> str:
    async def start() -> str:
        async with bm.Engine(db, workflows=[gated], worker=False) as engine:
            return (await engine.start(gated, str(gate))).id

    return asyncio.run(start())


def chunk_rows(db: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq, name, step_kind FROM stream_chunks ORDER BY id").fetchall()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Server]:
    """A server (API only) and a worker process with ``--live-steps`` on one journal."""
    db = tmp_path / "journal.db"
    store = SQLiteStore(db)
    secret = create_token(store, "alice", ["admin"], rate_limit=1000.0).secret
    store.close()
    worker = start_worker(tmp_path, db, "--live-steps")
    proc, url, log = start_server(tmp_path, db, MODULE)
    try:
        wait_healthy(proc, url, log)
        yield Server(url, db, log, {"alice": secret})
    finally:
        stop(proc)
        stop(worker)


def test_runs_watch_shows_a_step_start_before_its_end(live_server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run_id = start_gated(live_server.db, gate)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    watch = subprocess.Popen(
        cli("runs", "watch", run_id, "--db", str(live_server.db)), stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert watch.stdout is not None
        lines: list[str] = []
        for line in watch.stdout:  # bounded: the step ends by itself after wf_live_steps.LIMIT
            lines.append(line.rstrip("\n"))
            if line.startswith("started wait_for_file"):
                break
        # The step is still waiting on its gate: its start was seen while it runs.
        assert lines[-1] == "started wait_for_file (seq 1)", lines
        gate.touch()
        rest, _ = watch.communicate(timeout=60)
    finally:
        watch.kill()
    lines += rest.splitlines()
    assert watch.returncode == 0, lines
    ended = next(
        i for i, line in enumerate(lines) if line.startswith("step 1 wait_for_file (step) completed")
    )
    assert lines.index("started wait_for_file (seq 1)") < ended
    # A step that ends within one poll (shout) is told once, as it ended.
    assert any(line.startswith("step 2 shout (step) completed") for line in lines)
    assert lines[-1] == "output: RELEASED"


def test_sse_carries_a_running_event_for_an_ordinary_step(live_server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run_id = start_gated(live_server.db, gate)
    events: list[tuple[str, dict[str, object]]] = []
    with live_server.client("alice") as http, http.stream("GET", f"/api/v1/runs/{run_id}/events") as sse:
        assert sse.status_code == 200
        kind = ""
        for line in sse.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if kind == "step" and events[-1][1]["name"] == "wait_for_file":
                    gate.touch()  # seen running: let it end
    steps = [e for k, e in events if k == "step"]
    assert steps[0] == {
        "seq": 1,
        "name": "wait_for_file",
        "kind": "step",
        "status": "running",
        "marker": "started",
    }
    seq1 = [s["status"] for s in steps if s["seq"] == 1]
    assert seq1 == ["running", "completed"]
    assert [s["status"] for s in steps if s["seq"] == 2][-1] == "completed"
    assert events[-1][0] == "end"
    assert events[-1][1]["output"] == "RELEASED"


async def wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(600):  # 30 s at most
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("live_steps", [False, True])
def test_markers_are_written_only_with_live_steps(tmp_path: Path, live_steps: bool) -> None:
    db = tmp_path / "journal.db"
    gate = tmp_path / "gate"

    async def run() -> None:
        async with bm.Engine(db, workflows=[gated], live_steps=live_steps) as engine:
            handle = await engine.start(gated, str(gate))
            await wait_for(Path(f"{gate}.entered").exists)  # the step runs
            if live_steps:
                await wait_for(lambda: chunk_rows(db) == [(1, "wait_for_file", "step")])
            else:
                await asyncio.sleep(10 * BATCH_INTERVAL)  # time to write one, if it would
                assert chunk_rows(db) == []
            gate.touch()
            assert await handle.result(timeout=30) == "RELEASED"
        assert chunk_rows(db) == [], "a run's markers go when it ends"

    asyncio.run(run())
