"""Stats rollups across a crash: SIGKILL a worker mid-run, resume the runs in another worker;
the worker's periodic rollup pass (no stats call) adds every journaled step once (a step that
ran twice is journaled once), and the rollups agree with the journal rows before and after."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import ModuleType

import pytest
from tests.observe.test_stats_rollup import assert_same

import bandmaster as bm
from bandmaster.observe.stats import compute

from .harness import Journal, Workers, all_finished, wait_until

pytestmark = pytest.mark.e2e

RUNS = 4
STEPS = 10
DELAY = 0.08  # a run takes > 0.8 s: the kill lands mid-run for every run
PASSES = ("--rollup-every", "0.3")


def _rolled(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT COUNT(*) FROM runs WHERE rolled_up = 1").fetchone()[0]
        rows = conn.execute("SELECT COALESCE(SUM(n), 0) FROM step_rollup").fetchone()[0]
    return runs, rows


async def test_sigkill_mid_run_then_resume_counts_every_step_once(
    workers: Workers, journal: Journal, db: Path, wf: ModuleType
) -> None:
    async with bm.Engine(db, worker=False) as client:
        run_ids = [(await client.start(wf.chain, f"run-{i}", STEPS, DELAY)).id for i in range(RUNS)]
        first = workers.start(lease=1.0, poll=0.05, extra=PASSES)
        await wait_until(
            lambda: len(done := journal.steps_per_run()) == RUNS and min(done.values()) >= 3,
            timeout=30,
            what="every run to journal 3 steps",
            watch=(first,),
        )
        first.kill()
        committed = len(journal.step_keys())

        # Mid-crash: nothing ended, so nothing is in the rollups; stats read the rows.
        assert _rolled(db) == (0, 0)
        mid = compute(db)
        assert_same(mid, compute(db, exact=True))
        [effect] = [s for s in mid.step_stats if s.name == "effect"]
        assert effect.calls == committed

        second = workers.start(lease=1.0, poll=0.05, extra=PASSES)
        await wait_until(
            all_finished(journal, run_ids), timeout=60, what="all runs to finish", watch=(second,)
        )
        # The worker's own pass rolls the ended runs up; nobody reads stats meanwhile.
        await wait_until(
            lambda: _rolled(db) == (RUNS, RUNS * STEPS),
            timeout=30,
            what="the worker's rollup pass to add the ended runs",
            watch=(second,),
        )
        for run_id in run_ids:
            assert (await client.result(run_id, timeout=10))["total"] == wf.chain_total(STEPS)

    assert set(journal.statuses().values()) == {"completed"}
    stats = compute(db)
    assert_same(stats, compute(db, exact=True))
    [effect] = [s for s in stats.step_stats if s.name == "effect"]
    assert effect.calls == RUNS * STEPS  # re-executed steps are journaled, and counted, once
