"""``bm.patched`` across a deploy, on both backends: a run started under the old code and
waiting past the patch point keeps the old branch under the new code; a new run takes the new
branch; a deprecated patch still resumes the runs that took it. (On Temporal these are
``workflow.patched`` / ``workflow.deprecate_patch``.)"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="needs bandmaster[temporal]")

import wf_patches as wfs
from temporal_support import TemporalServer

import bandmaster as bm

Deploy = Callable[[bm.Workflow[..., Any]], Any]


@pytest.fixture(params=["embedded", "temporal"])
async def deploy(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deploy]:
    """``await deploy(wf)``: an engine hosting ``wf`` on the same journal / task queue as the
    previous deploy of this test, which it replaces (closed first)."""
    opened: list[Any] = []
    queue = f"patches-{uuid.uuid4().hex[:8]}"

    async def make(wf: bm.Workflow[..., Any]) -> Any:
        if opened:
            await opened.pop().close()
        if request.param == "embedded":
            engine: Any = bm.Engine(tmp_path / "journal.db", workflows=[wf], poll_interval=0.02, lease=2.0)
        else:
            server: TemporalServer = request.getfixturevalue("temporal_server")
            engine = bm.TemporalEngine(server.target, task_queue=queue, workflows=[wf])
        await engine.open()
        opened.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in opened:
            await engine.close()


def journal(request: pytest.FixtureRequest, tmp_path: Path, run_id: str) -> list[tuple[int, str, str]] | None:
    """(seq, kind, name) of the run's journal rows on the embedded engine; None on Temporal."""
    if request.node.callspec.params["deploy"] != "embedded":
        return None
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        rows = conn.execute("SELECT seq, kind, name FROM steps WHERE run_id = ? ORDER BY seq", (run_id,))
        return [(seq, kind, name) for seq, kind, name in rows]


async def past_first_step(engine: Any, run_id: str) -> None:
    """Until the run has done its first step and sits at its wait."""
    for _ in range(600):
        info = await engine.describe(run_id)
        if any(s.name == "first" and s.status == "completed" for s in info.steps):
            await asyncio.sleep(0.3)  # the workflow task that reaches the wait completes too
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never finished its first step")


async def test_old_runs_keep_the_old_branch_new_runs_take_the_new(
    deploy: Deploy, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    engine = await deploy(wfs.v1)
    old = await engine.start(wfs.v1, "old")
    await past_first_step(engine, old.id)

    engine = await deploy(wfs.v2)
    new = await engine.start(wfs.v2, "new")
    await past_first_step(engine, new.id)
    for run in (old, new):
        await engine.signal(run.id, "go")
    assert await engine.result(old.id, timeout=60) == ["first old", "last old"]
    assert await engine.result(new.id, timeout=60) == ["first new", "extra new", "last new"]
    if (rows := journal(request, tmp_path, old.id)) is not None:
        assert rows == [(1, "step", "first"), (2, "wait", "go"), (3, "step", "last")]
        # The marker has a seq of its own below zero: the operations keep 1, 2, 3, 4.
        assert journal(request, tmp_path, new.id) == [
            (-1, "patch", "extra-check"),
            (1, "step", "first"),
            (2, "step", "extra"),
            (3, "wait", "go"),
            (4, "step", "last"),
        ]

    taken = await engine.start(wfs.v2, "taken")
    await past_first_step(engine, taken.id)
    engine = await deploy(wfs.v3)  # the patch deprecated: a run that took it still resumes
    await engine.signal(taken.id, "go")
    assert await engine.result(taken.id, timeout=60) == ["first taken", "extra taken", "last taken"]
    fresh = await engine.start(wfs.v3, "fresh")
    await past_first_step(engine, fresh.id)
    await engine.signal(fresh.id, "go")
    assert await engine.result(fresh.id, timeout=60) == ["first fresh", "extra fresh", "last fresh"]
    if (rows := journal(request, tmp_path, fresh.id)) is not None:
        assert [kind for _, kind, _ in rows] == ["step", "step", "wait", "step"]  # no marker


async def test_a_run_reaching_the_patch_after_the_deploy_takes_the_new_branch(deploy: Deploy) -> None:
    engine = await deploy(wfs.v1)
    waiting = await engine.start(wfs.v1, "w")
    await past_first_step(engine, waiting.id)
    engine = await deploy(wfs.v2_after_wait)
    await engine.signal(waiting.id, "go")
    assert await engine.result(waiting.id, timeout=60) == ["first w", "extra w", "last w"]
