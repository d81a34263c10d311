"""Several versions of a workflow on every backend: runs stay on the version they started on
through a rolling upgrade with real worker processes, and runs of a version no worker hosts
wait, visibly, and never fail for it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import wf_triage_v1 as v1
import wf_triage_v2 as v2
from conformance_support import Where, opened

import bandmaster as bm
from bandmaster.engine.backend import Backend

pytestmark = [pytest.mark.timeout(240), pytest.mark.e2e]


async def wait_status(client: Backend, run_id: str, wanted: set[str], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        info = await client.describe(run_id)
        if info.status in wanted:
            return info
        assert info.status not in ("failed", "cancelled"), info
        assert time.monotonic() < deadline, f"run {run_id} is {info.status}, not {wanted}"
        await asyncio.sleep(0.1)


async def pending_review(client: Backend, run_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await client.approvals.list(run_id=run_id):
        assert time.monotonic() < deadline, f"run {run_id} never asked for its review"
        await asyncio.sleep(0.1)


async def test_a_rolling_upgrade_keeps_every_run_on_its_version(where: Where, tmp_path: Path) -> None:
    """v1 runs wait on reviews; v2 workers start and take new runs; the v1 worker stops, then a
    v1 worker returns: every v1 run finishes on v1 and no run fails."""
    async with (
        opened(where.client(v1.WORKFLOWS)) as old_client,
        opened(where.client(v2.WORKFLOWS)) as new_client,
    ):
        with where.worker(10, tmp_path / "v1-a.log", "wf_triage_v1"):
            old = [(await old_client.start("triage", f"charge {i}")).id for i in range(4)]
            for run_id in old:
                await pending_review(old_client, run_id)
            with where.worker(10, tmp_path / "v2.log", "wf_triage_v2"):
                new = [(await new_client.start("triage", f"charge {i}")).id for i in range(3)]
                for run_id in new:
                    await pending_review(new_client, run_id)
        # the first v1 worker has stopped; the v2 worker too: now only v2 comes back
        with where.worker(10, tmp_path / "v2-b.log", "wf_triage_v2"):
            for run_id in new:
                await new_client.approvals.approve(run_id, by="alice")
            for run_id in new:
                await wait_status(new_client, run_id, {"completed"})
            if where.name == "embedded":  # decided while no worker hosts v1: they wait for one
                await old_client.approvals.approve(old[0], by="alice")
                info = await wait_status(old_client, old[0], {"queued"})
                assert info.version == "1"
                labels = [u.label for u in await old_client.unserved()]
                assert labels == ["no worker for triage@1"], labels
            with where.worker(10, tmp_path / "v1-b.log", "wf_triage_v1"):
                for run_id in old[1 if where.name == "embedded" else 0 :]:
                    await old_client.approvals.approve(run_id, by="alice")
                for run_id in old:
                    await wait_status(old_client, run_id, {"completed"})
        results = {run_id: await old_client.result(run_id, timeout=30) for run_id in old + new}
    for i, run_id in enumerate(old):
        assert results[run_id] == {"version": "1", "reply": f"v1:charge {i}:approve"}
    for i, run_id in enumerate(new):
        assert results[run_id] == {"version": "2", "reply": f"v2:billing:charge {i}:approve"}


async def test_runs_of_a_version_nobody_hosts_wait_and_say_so(where: Where, tmp_path: Path) -> None:
    v3 = bm.workflow(name="triage", version="3")(v2.triage.fn)
    async with opened(where.client([v3])) as client:
        with where.worker(10, tmp_path / "v2.log", "wf_triage_v2"):
            hosted = await client.start(v2.triage, "charge twice")
            orphan = await client.start("triage", "charge once")  # the client's default: v3
            await pending_review(client, hosted.id)
            info = await client.describe(orphan.id)
            assert (info.status, info.version) in (("queued", "3"), ("running", "3"))
            unserved = await client.unserved()
            assert [(u.label, u.runs) for u in unserved] == [("no worker for triage@3", 1)]
            assert [u.label for u in (await client.stats()).unserved] == ["no worker for triage@3"]
            await asyncio.sleep(1.0)
            assert (await client.describe(orphan.id)).status in ("queued", "running")  # not failed


async def test_a_run_started_by_name_without_the_code_runs_on_the_workers_version(
    where: Where, tmp_path: Path
) -> None:
    """The client knows no version: the run is pinned by the worker that first takes it (on
    Temporal, continued on that version's task queue with the signal that came before)."""
    async with opened(where.client([])) as client:
        handle = await client.start("greet", "Ada")
        await client.signal(handle.id, "go", "hello")
        with where.worker(10, tmp_path / "v2.log", "wf_triage_v2"):
            assert await client.result(handle.id, timeout=60) == {"version": "2", "greeting": "hello Ada"}
        assert (await client.describe(handle.id)).version == "2"
        assert [r.id for r in await client.list(workflow="greet")] == [handle.id]  # listed once
