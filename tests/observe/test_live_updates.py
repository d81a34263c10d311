"""``run_updates`` with step-start markers: a started step is told once, as running, and a
model stream that starts after its marker is still told as streaming, then its tokens."""

from __future__ import annotations

import time
from pathlib import Path

import bandmaster as bm
from bandmaster.observe._live import run_updates
from bandmaster.store._sqlite import SQLiteStore
from bandmaster.store._streams import ChunkPublisher, StepMarkers, chunks_after


@bm.workflow
async def queued(text: str) -> str:
    return text


async def test_a_marker_then_its_stream_are_both_told(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[queued], worker=False) as engine:
        run_id = (await engine.start(queued, "hi")).id  # stays queued: no worker
        writer = SQLiteStore(db)
        updates = run_updates(
            engine.describe, run_id, poll=0.01, chunks=lambda run, after: chunks_after(writer, run, after)
        )
        try:
            assert await anext(updates) == ("status", {"run_id": run_id, "status": "queued"})
            markers = StepMarkers(writer)
            markers.add(run_id, 1, "ask", "model", time.time())
            markers.add(run_id, 1, "ask", "model", time.time())  # a re-execution: told once
            markers.flush()
            writer.flush()
            running = {"seq": 1, "name": "ask", "kind": "model", "status": "running"}
            assert await anext(updates) == ("step", {**running, "marker": "started"})
            stream = ChunkPublisher(writer, run_id, 1, "ask")
            stream.add("Hel")
            stream.flush()
            writer.flush()
            assert await anext(updates) == ("step", running)
            assert await anext(updates) == ("token", {"seq": 1, "text": "Hel", "restart": False})
        finally:
            await updates.aclose()
            writer.close()
