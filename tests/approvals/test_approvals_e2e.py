"""A pending approval outlives the worker process that opened it (SIGKILL), is decided from
the CLI while no worker is up, and the run resumes on a new worker; and a deadline that
passes while no worker is up applies the default as soon as one is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.harness import Journal, Workers, cli, wait_until

import bandmaster as bm

WF = Path(__file__).resolve().parent / "wf_approvals.py"
pytestmark = pytest.mark.e2e


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    manager = Workers(tmp_path, tmp_path / "journal.db", tmp_path / "effects.log")
    try:
        yield manager
    finally:
        manager.cleanup()


async def test_decision_after_sigkill_resumes_on_a_new_worker(workers: Workers, tmp_path: Path) -> None:
    db = workers.db
    journal = Journal(db)
    async with bm.Engine(db, worker=False) as client:
        decided = await client.start("reviewed", 60.0)
        lapsed = await client.start("reviewed", 1.5)
        first = workers.start(modules=(WF,))
        await wait_until(
            lambda: {journal.statuses().get(decided.id), journal.statuses().get(lapsed.id)} == {"waiting"},
            timeout=30,
            what="both runs to wait for their approval",
            watch=(first,),
        )
        first.kill()
        assert journal.run(decided.id)["lease_owner"] is None

        answer = await asyncio.to_thread(
            cli, "approvals", "approve", decided.id, "--by", "alice", "--db", db, cwd=tmp_path
        )
        assert answer.returncode == 0, answer.stderr
        deadline = (await client.approvals.get(lapsed.id)).deadline
        assert deadline is not None
        await asyncio.sleep(max(0.0, deadline.timestamp() + 0.1 - time.time()))
        assert journal.statuses()[decided.id] == "queued"  # woken, waiting for any worker
        assert journal.statuses()[lapsed.id] == "waiting"  # its deadline passed with no worker up

        second = workers.start(modules=(WF,))
        await wait_until(
            lambda: all(journal.statuses()[r.id] == "completed" for r in (decided, lapsed)),
            timeout=30,
            what="both runs to finish",
            watch=(second,),
        )
        assert await client.result(decided.id) == "approve by alice"
        assert await client.result(lapsed.id) == "approve by default"
        assert journal.run(decided.id)["claims"] == 2
