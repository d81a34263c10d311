"""The headline guarantee: SIGKILL a worker in the middle of its runs, start another, and every
run completes with the right result, every step is journaled exactly once, and a step's side
effect runs again only if its journal row had not been committed when the worker died."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

import bandmaster as bm

from .harness import (
    Journal,
    Workers,
    all_finished,
    effect_counts,
    read_effects,
    wait_until,
)

pytestmark = pytest.mark.e2e

RUNS = 6
STEPS = 20
# Per step: a run takes > 1.6 s, so the kill (once each run has 4 steps) lands mid-run for
# every run, even when a loaded machine lets the fastest run get well ahead of the slowest.
DELAY = 0.08


@pytest.mark.parametrize(
    "lease",
    [
        pytest.param(1.0, id="lease-1s"),
        # A lease far longer than the test: completion can only come from the new worker
        # seeing the dead pid at start-up, never from waiting the lease out.
        pytest.param(60.0, id="lease-60s"),
    ],
)
async def test_sigkill_mid_run_then_new_worker_completes_every_run_exactly_once(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType, lease: float
) -> None:
    async with bm.Engine(db, worker=False) as client:
        handles = []
        for i in range(RUNS):
            if i % 2:  # by Workflow object (input encoded with its signature)...
                handles.append(await client.start(wf.chain, f"run-{i}", STEPS, DELAY))
            else:  # ...and by name, from a client that does not import the workflow code
                handles.append(await client.start("chain", f"run-{i}", STEPS, DELAY))
        run_ids = [h.id for h in handles]
        assert set(journal.statuses().values()) == {"queued"}

        first = workers.start(lease=lease, poll=0.05)
        # Kill once every run has journaled a few steps (none can have finished by then).
        await wait_until(
            lambda: len(counts := journal.steps_per_run()) == RUNS and min(counts.values()) >= 4,
            timeout=30,
            what="every run to journal 4 steps",
            watch=(first,),
        )
        first.kill()
        assert first.proc.returncode == -9

        # The journal as the dead worker left it: these steps must never run again.
        committed = journal.step_keys()
        effects_at_kill = read_effects(side_log)
        statuses_at_kill = journal.statuses()
        claims_at_kill = journal.claims()
        assert set(statuses_at_kill.values()) == {"running"}, statuses_at_kill
        per_run = Counter(run_id for run_id, _ in committed)
        assert all(4 <= per_run[r] < STEPS for r in run_ids), per_run
        assert {e.pid for e in effects_at_kill} == {first.pid}

        restart = time.monotonic()
        second = workers.start(lease=lease, poll=0.05)
        ready = time.monotonic() - restart
        await wait_until(
            lambda: all(n > claims_at_kill[r] for r, n in journal.claims().items()),
            timeout=30,
            what="the new worker to claim every run",
            watch=(second,),
            interval=0.005,
        )
        takeover = time.monotonic() - restart
        await wait_until(
            all_finished(journal, run_ids), timeout=60, what="all runs to finish", watch=(second,)
        )
        done = time.monotonic() - restart
        print(
            f"\n[crash recovery, lease {lease:g}s] new worker ready after {ready:.2f}s, "
            f"all {RUNS} runs taken over after {takeover:.2f}s, completed after {done:.2f}s"
        )
        if lease > 30:
            # Taken over at start-up (dead pid on this host), not after the lease ran out.
            assert takeover < 10, f"takeover took {takeover:.2f}s"

        for i, handle in enumerate(handles):
            assert await client.result(handle.id, timeout=10) == {
                "tag": f"run-{i}",
                "total": wf.chain_total(STEPS),
            }

    assert set(journal.statuses().values()) == {"completed"}
    journal.assert_consistent(run_ids, STEPS)

    effects = read_effects(side_log)
    counts = effect_counts(effects)
    expected = {(r, s) for r in run_ids for s in range(1, STEPS + 1)}
    assert set(counts) == expected, "a step never ran"
    assert max(counts.values()) <= 2, {k: n for k, n in counts.items() if n > 2}
    for key in committed:
        assert counts[key] == 1, f"step {key} was journaled before the kill but ran {counts[key]} times"
    # A sequential workflow has at most one step in flight per run: at most one re-execution
    # per run, and only of a step the dead worker had started but not journaled.
    started_at_kill = {(e.run_id, e.seq) for e in effects_at_kill}
    twice = {key for key, n in counts.items() if n == 2}
    assert twice <= started_at_kill - committed
    assert Counter(run_id for run_id, _ in twice) <= Counter(set(run_ids))
    for effect in effects:
        key = (effect.run_id, effect.seq)
        if key not in started_at_kill:
            assert effect.pid == second.pid, f"{key} ran in {effect.pid} after the kill"


async def test_two_replacement_workers_race_for_a_dead_workers_runs(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    steps, delay = 12, 0.05
    async with bm.Engine(db, worker=False) as client:
        handles = [await client.start(wf.chain, f"race-{i}", steps, delay) for i in range(8)]
        run_ids = [h.id for h in handles]
        dead = workers.start(lease=60, poll=0.05)
        await wait_until(
            lambda: len(c := journal.steps_per_run()) == len(run_ids) and min(c.values()) >= 2,
            timeout=30,
            what="every run to journal 2 steps",
            watch=(dead,),
        )
        dead.kill()
        committed = journal.step_keys()
        # Both start at once: both see the dead pid, both try to claim the same runs.
        racers = [workers.start(lease=60, poll=0.02, wait_ready=False) for _ in range(2)]
        for racer in racers:
            workers.wait_ready(racer)
        await wait_until(
            all_finished(journal, run_ids), timeout=60, what="runs to finish", watch=tuple(racers)
        )
        for i, handle in enumerate(handles):
            assert await handle.result(timeout=10) == {"tag": f"race-{i}", "total": wf.chain_total(steps)}

    journal.assert_consistent(run_ids, steps)
    assert set(journal.claims().values()) == {2}, "each run is taken over exactly once"
    effects = read_effects(side_log)
    counts = effect_counts(effects)
    assert max(counts.values()) <= 2
    assert all(counts[key] == 1 for key in committed)
    racer_pids = {r.pid for r in racers}
    for run_id in run_ids:  # after the kill, a run moved to one racer only
        assert len({e.pid for e in effects if e.run_id == run_id and e.pid in racer_pids}) == 1


async def test_a_killed_bandmaster_run_command_is_finished_by_a_worker(
    workers: Workers, journal: Journal, db: Path, side_log: Path, tmp_path: Path, wf: ModuleType
) -> None:
    """``bandmaster run`` executes in its own process; if that process dies, the run is not
    lost: a worker started later takes it over at once (its owner's pid is dead)."""
    steps = 20
    runner = workers.spawn(
        "run",
        f"{wf.__file__}:chain",
        "--input",
        f'["cli", {steps}, 0.05]',
        "--run-id",
        "cli-run",
        "--db",
        str(db),
    )
    await wait_until(
        lambda: journal.steps_per_run().get("cli-run", 0) >= 4,
        timeout=30,
        what="the run command to journal 4 steps",
        watch=(runner,),
    )
    runner.kill()
    committed = journal.step_keys()
    assert journal.statuses() == {"cli-run": "running"}

    restart = time.monotonic()
    worker = workers.start(lease=10, poll=0.05)
    await wait_until(
        all_finished(journal, ["cli-run"]), timeout=30, what="the run to finish", watch=(worker,)
    )
    print(f"\n[killed run command] finished by a worker {time.monotonic() - restart:.2f}s after it started")
    assert time.monotonic() - restart < 10, "taken over at start-up, not after the 10 s lease"
    assert json.loads(journal.run("cli-run")["output"]) == {"tag": "cli", "total": wf.chain_total(steps)}
    journal.assert_consistent(["cli-run"], steps)
    counts = effect_counts(read_effects(side_log))
    assert max(counts.values()) <= 2
    assert all(counts[key] == 1 for key in committed)
