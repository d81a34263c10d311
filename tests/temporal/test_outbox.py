"""The Temporal client's outbox with a real dev server that is stopped and started again:
starts and signals made while the frontend is down wait in a local file and are forwarded in
order, each exactly once, when it returns."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="needs bandmaster[temporal]")

import wf_outbox as wfs
from temporal_support import TemporalServer, free_port

import bandmaster as bm
from bandmaster.temporal import Outbox
from bandmaster.temporal._forwarding import send_signal

RUNS = 100


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TemporalServer]:
    """A dev server of this test's own, on a database file, so it can be stopped and restarted."""
    own = TemporalServer(tmp_path / "temporal.db", tmp_path / "temporal.log", free_port())
    own.start()
    try:
        yield own
    finally:
        own.stop()


def outbox_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bandmaster"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(exe), "outbox", *map(str, args)], capture_output=True, text=True, timeout=60, env=env
    )


async def executions(engine: bm.TemporalEngine, queue: str) -> int:
    found = await engine.client.count_workflows(f'TaskQueue = "{queue}" AND WorkflowType = "pay"')
    return found.count


async def test_runs_started_and_signalled_while_temporal_is_down_complete_once(
    server: TemporalServer, tmp_path: Path
) -> None:
    queue = f"outbox-{uuid.uuid4().hex[:8]}"
    outbox = tmp_path / "outbox.db"
    server.stop()
    client = bm.TemporalEngine(server.target, task_queue=queue, outbox=outbox)
    await client.open()  # the frontend is down: the engine opens anyway, with its outbox
    try:
        handles = []
        for i in range(RUNS):
            run_id = f"order-{i}" if i % 2 else None  # given ids and generated ones
            handles.append(await client.start(wfs.pay, f"o-{i}", run_id=run_id))
        assert {h.status for h in handles} == {"queued"}
        for i, handle in enumerate(handles):
            await client.signal(handle.id, "amount", i)

        waiting = outbox_cli("status", "--outbox", outbox, "--json")
        assert waiting.returncode == 0, waiting.stderr
        report = json.loads(waiting.stdout)
        assert report["counts"]["pending_start"] == RUNS
        assert report["counts"]["pending_signal"] == RUNS
        assert [e["kind"] for e in report["entries"][:2]] == ["start", "start"]

        server.start()
        async with bm.TemporalEngine(server.target, task_queue=queue, workflows=[wfs.pay]):
            assert await client.drain_outbox(timeout=120) == 0
            results = await asyncio.gather(*(client.result(h.id, timeout=120) for h in handles))
            assert results == [f"billed o-{i} {i}" for i in range(RUNS)]
            for handle in handles[:10]:
                steps = (await client.describe(handle.id)).steps
                assert [s.name for s in steps if s.kind == "step"] == ["bill"]
            for _ in range(100):  # visibility catches up with the starts
                if (count := await executions(client, queue)) >= RUNS:
                    break
                await asyncio.sleep(0.1)
            assert count == RUNS  # one execution per run: no start was forwarded twice
        empty = outbox_cli("status", "--outbox", outbox)
        assert "waiting: 0 starts, 0 signals; refused: 0 starts, 0 signals" in empty.stdout
    finally:
        await client.close()


async def test_a_signal_forwarded_twice_is_delivered_once(server: TemporalServer, tmp_path: Path) -> None:
    """A client that died after sending an entry and before deleting it sends it again: the
    signal's request id makes the second send a no-op, while two entries are two signals."""
    queue = f"outbox-{uuid.uuid4().hex[:8]}"
    box = Outbox(tmp_path / "outbox.db")
    async with bm.TemporalEngine(server.target, task_queue=queue, workflows=[wfs.twice]) as engine:
        resent, distinct = await engine.start(wfs.twice), await engine.start(wfs.twice)
        box.put("signal", resent.id, "n", 8)
        box.put("signal", distinct.id, "n", 7)
        box.put("signal", distinct.id, "n", 7)
        first, *others = box.entries()
        for entry in (first, first, *others):
            await send_signal(engine.client, entry.run_id, entry.name, entry.payload, entry.request_id)
        assert await engine.result(resent.id, timeout=30) == [8, -1]
        assert await engine.result(distinct.id, timeout=30) == [7, 7]
    box.close()


async def test_what_cannot_be_kept_is_refused_and_nothing_is_written(
    server: TemporalServer, tmp_path: Path
) -> None:
    queue = f"outbox-{uuid.uuid4().hex[:8]}"
    outbox = tmp_path / "outbox.db"
    server.stop()
    async with bm.TemporalEngine(server.target, task_queue=queue, outbox=outbox) as client:
        # A run this client did not start: its redaction is unknown here, so its signal is refused.
        with pytest.raises(bm.BackendUnavailable, match="was not started through this engine's outbox"):
            await client.signal("started-elsewhere", "amount", 1)
        with pytest.raises(bm.BackendUnavailable, match="has not answered since this engine opened"):
            await client.describe("anything")
        start = await client.start(wfs.pay, "x", run_id="kept")
        await client.signal(start.id, "[bold]amount[/bold]", 3)
    status = outbox_cli("status", "--outbox", outbox)
    assert "waiting: 1 starts, 1 signals" in status.stdout
    assert "[bold]amount[/bold]" in status.stdout  # a name is data, printed as it is
    assert "started-elsewhere" not in status.stdout

    with pytest.raises(bm.UsageError, match="is a directory"):
        await bm.TemporalEngine(server.target, outbox=tmp_path).open()
    missing = outbox_cli("status", "--outbox", tmp_path / "nope.db")
    assert missing.returncode == 2
    assert "no outbox at" in missing.stderr
    not_one = tmp_path / "other.db"
    not_one.write_bytes(b"not a database at all, just text" * 10)
    wrong = outbox_cli("status", "--outbox", not_one)
    assert wrong.returncode == 2
    assert "is not an outbox" in wrong.stderr
    flush = outbox_cli(
        "flush", "--outbox", outbox, "--target", server.target, "--task-queue", queue, "--timeout", "2"
    )
    assert flush.returncode == 1
    assert "2 entries still wait" in flush.stderr
