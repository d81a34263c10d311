"""Durable timers across processes: a sleep that outlives the worker that set it, a signal
wait whose deadline passes while no worker is up; and inputs of runs started by name."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType

import pytest

import bandmaster as bm

from .harness import (
    Journal,
    Workers,
    all_finished,
    read_effects,
    wait_until,
)

pytestmark = pytest.mark.e2e


async def test_durable_sleep_survives_a_worker_kill(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    # Over the worker's 1 s max_inline_sleep: the run leaves memory while it sleeps. Long enough
    # that a loaded machine still kills the worker before the timer is due.
    nap = 4.0
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start(wf.napper, nap)
        first = workers.start(lease=1, poll=0.05)
        await wait_until(
            lambda: journal.statuses().get(handle.id) == "waiting",
            timeout=30,
            what="the run to wait on its timer",
            watch=(first,),
        )
        first.kill()
        waiting = journal.run(handle.id)
        assert waiting["lease_owner"] is None  # a sleeping run holds no lease
        timer = journal.steps(handle.id)[1]
        assert (timer["seq"], timer["kind"], timer["status"]) == (2, "sleep", "waiting")
        wake_at = json.loads(timer["meta"])["wake_at"]
        assert waiting["ready_at"] == pytest.approx(wake_at)
        assert time.time() < wake_at, "the kill came after the timer fired: the test proves nothing"

        second = workers.start(lease=1, poll=0.05)
        await wait_until(
            all_finished(journal, [handle.id]), timeout=30, what="the run to finish", watch=(second,)
        )
        assert await handle.result(timeout=5) == ["before", "after"]

    run = journal.run(handle.id)
    steps = journal.steps(handle.id)
    print(f"\n[durable sleep] resumed {run['ended_at'] - wake_at:.3f}s after the timer was due")
    assert [(s["seq"], s["kind"], s["status"]) for s in steps] == [
        (1, "step", "completed"),
        (2, "sleep", "completed"),
        (3, "step", "completed"),
    ]
    assert steps[1]["ended_at"] >= wake_at
    assert run["ended_at"] >= wake_at
    assert run["claims"] == 2
    effects = read_effects(side_log)
    assert [(e.seq, e.name, e.pid) for e in effects] == [(1, "before", first.pid), (3, "after", second.pid)]


async def test_signal_wait_deadline_passes_while_no_worker_is_up(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    timeout = 4.0  # a loaded machine still kills the worker before the deadline
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start(wf.deadline, "T-9", timeout)
        first = workers.start(lease=1, poll=0.05)
        await wait_until(
            lambda: journal.statuses().get(handle.id) == "waiting",
            timeout=30,
            what="the run to wait for its signal",
            watch=(first,),
        )
        first.kill()
        wait_row = journal.steps(handle.id)[1]
        due = json.loads(wait_row["meta"])["deadline"]
        assert journal.run(handle.id)["ready_at"] == pytest.approx(due)  # woken by the deadline
        assert time.time() < due, "the kill came after the deadline: the test proves nothing"

        second = workers.start(lease=1, poll=0.05)
        await wait_until(
            all_finished(journal, [handle.id]), timeout=30, what="the run to finish", watch=(second,)
        )
        assert await handle.result(timeout=5) == {
            "ticket": "T-9",
            "decision": {"ok": False, "default": True},
        }

    steps = journal.steps(handle.id)
    assert [(s["seq"], s["kind"], s["status"]) for s in steps] == [
        (1, "step", "completed"),
        (2, "wait", "completed"),
        (3, "step", "completed"),
    ]
    assert json.loads(steps[1]["meta"])["timed_out"] is True
    assert steps[1]["ended_at"] >= due
    effects = read_effects(side_log)
    assert [(e.seq, e.name, e.pid) for e in effects] == [(1, "asked", first.pid), (3, "went-on", second.pid)]


async def test_run_started_by_name_gets_the_workflow_defaults(
    workers: Workers, journal: Journal, db: Path, wf: ModuleType
) -> None:
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start("chain", "defaults")  # steps=20, delay=0.04 by default
        worker = workers.start(lease=1, poll=0.05)
        await wait_until(
            all_finished(journal, [handle.id]), timeout=30, what="the run to finish", watch=(worker,)
        )
        assert await handle.result(timeout=5) == {"tag": "defaults", "total": wf.chain_total(20)}
