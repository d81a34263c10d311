"""Several worker processes on one journal: sharing the queue, taking over a frozen worker's
runs when its lease expires, and handing runs back on SIGTERM."""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType

import pytest

import bandmaster as bm

from .harness import Journal, Workers, all_finished, effect_counts, read_effects, wait_until

pytestmark = pytest.mark.e2e


async def test_two_workers_share_thirty_runs_without_executing_a_step_twice(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    steps, delay = 5, 0.01
    # A small concurrency each, so neither worker can take the whole queue in one claim.
    a = workers.start(lease=5, poll=0.02, concurrency=4)
    b = workers.start(lease=5, poll=0.02, concurrency=4)
    async with bm.Engine(db, worker=False) as client:
        handles = [await client.start(wf.chain, f"job-{i}", steps, delay) for i in range(30)]
        run_ids = [h.id for h in handles]
        started = time.monotonic()
        await wait_until(all_finished(journal, run_ids), timeout=60, what="30 runs to finish", watch=(a, b))
        print(f"\n[two workers] 30 runs x {steps} steps in {time.monotonic() - started:.2f}s")
        for i, handle in enumerate(handles):
            assert await handle.result(timeout=10) == {"tag": f"job-{i}", "total": wf.chain_total(steps)}

    assert set(journal.statuses().values()) == {"completed"}
    journal.assert_consistent(run_ids, steps)
    assert set(journal.claims().values()) == {1}, "a run was claimed twice with no crash"

    effects = read_effects(side_log)
    counts = effect_counts(effects)
    assert set(counts) == {(r, s) for r in run_ids for s in range(1, steps + 1)}
    assert set(counts.values()) == {1}, "a step ran twice with no crash"
    pids_per_run: dict[str, set[int]] = defaultdict(set)
    for effect in effects:
        pids_per_run[effect.run_id].add(effect.pid)
    assert all(len(p) == 1 for p in pids_per_run.values()), "a run moved between live workers"
    runs_per_worker = Counter(next(iter(p)) for p in pids_per_run.values())
    print(f"[two workers] runs per worker pid: {dict(runs_per_worker)}")
    assert set(runs_per_worker) == {a.pid, b.pid}, "one worker executed nothing"


async def test_surviving_peer_takes_over_a_killed_workers_runs(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    """Two workers share the runs; one is SIGKILLed. The survivor was already running, so it
    does not go through start-up recovery: it takes the runs over when their lease expires."""
    lease, steps, delay = 1.0, 20, 0.05
    a = workers.start(lease=lease, poll=0.05, concurrency=3)
    b = workers.start(lease=lease, poll=0.05, concurrency=3)
    async with bm.Engine(db, worker=False) as client:
        handles = [await client.start(wf.chain, f"peer-{i}", steps, delay) for i in range(6)]
        run_ids = [h.id for h in handles]
        await wait_until(
            lambda: len(c := journal.steps_per_run()) == 6 and min(c.values()) >= 3,
            timeout=30,
            what="every run to journal 3 steps",
            watch=(a, b),
        )
        effects = read_effects(side_log)
        victims = {e.run_id for e in effects if e.pid == a.pid}
        assert victims, "worker a took no run"
        a.kill()
        killed = time.monotonic()
        committed = journal.step_keys()
        effects_at_kill = read_effects(side_log)
        claims = journal.claims()
        await wait_until(
            lambda: all(journal.claims()[r] > claims[r] for r in victims),
            timeout=30,
            what="the survivor to take over the dead worker's runs",
            watch=(b,),
            interval=0.005,
        )
        print(
            f"\n[surviving peer] runs of the killed worker taken over after {time.monotonic() - killed:.2f}s"
        )
        await wait_until(all_finished(journal, run_ids), timeout=60, what="runs to finish", watch=(b,))
        for i, handle in enumerate(handles):
            assert await handle.result(timeout=10) == {"tag": f"peer-{i}", "total": wf.chain_total(steps)}

    journal.assert_consistent(run_ids, steps)
    counts = effect_counts(read_effects(side_log))
    assert max(counts.values()) <= 2
    assert all(counts[key] == 1 for key in committed)
    assert {k for k, n in counts.items() if n == 2} <= {(e.run_id, e.seq) for e in effects_at_kill}


@pytest.mark.parametrize("frozen_fate", ["killed", "resumed"])
async def test_frozen_worker_loses_its_runs_when_the_lease_expires(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType, frozen_fate: str
) -> None:
    """SIGSTOP keeps the pid alive, so the dead-pid shortcut must not fire: the second worker
    takes over only once the lease has expired. The frozen worker is then SIGKILLed, or
    SIGCONTed while the runs are executing elsewhere: its late writes must be fenced off."""
    lease, steps, delay = 1.0, 20, 0.05
    async with bm.Engine(db, worker=False) as client:
        handles = [await client.start(wf.chain, f"frozen-{i}", steps, delay) for i in range(3)]
        run_ids = [h.id for h in handles]
        frozen = workers.start(lease=lease, poll=0.05)
        await wait_until(
            lambda: len(c := journal.steps_per_run()) == 3 and min(c.values()) >= 3,
            timeout=30,
            what="every run to journal 3 steps",
            watch=(frozen,),
        )
        frozen.send(signal.SIGSTOP)
        stopped_at = time.time()
        committed = journal.step_keys()
        effects_at_stop = read_effects(side_log)
        lease_ends = {r: journal.run(r)["lease_expires"] for r in run_ids}
        assert all(end <= stopped_at + lease + 0.5 for end in lease_ends.values()), lease_ends

        restart = time.monotonic()
        second = workers.start(lease=lease, poll=0.05)
        assert frozen.alive()
        await wait_until(
            lambda: all(n >= 2 for n in journal.claims().values()),
            timeout=30,
            what="the second worker to take every run over",
            watch=(second,),
            interval=0.005,
        )
        took_over = time.time()
        print(
            f"\n[lease expiry] runs taken over {took_over - stopped_at:.2f}s after SIGSTOP "
            f"({time.monotonic() - restart:.2f}s after the second worker started; lease {lease:g}s)"
        )
        # Not before the frozen worker's leases ran out: a stopped process is not a dead one.
        assert took_over >= max(lease_ends.values())

        if frozen_fate == "resumed":
            frozen.send(signal.SIGCONT)  # its overdue timers fire at once: late commits, heartbeat
        await wait_until(all_finished(journal, run_ids), timeout=60, what="runs to finish", watch=(second,))
        if frozen_fate == "resumed":
            # A graceful stop flushes whatever the resumed worker still had to write.
            frozen.send(signal.SIGTERM)
            assert frozen.proc.wait(timeout=15) == 0, frozen.output()
        else:
            frozen.kill()
        for i, handle in enumerate(handles):
            assert await handle.result(timeout=10) == {"tag": f"frozen-{i}", "total": wf.chain_total(steps)}

    assert set(journal.statuses().values()) == {"completed"}
    journal.assert_consistent(run_ids, steps)
    counts = effect_counts(read_effects(side_log))
    assert set(counts) == {(r, s) for r in run_ids for s in range(1, steps + 1)}
    assert max(counts.values()) <= 2, {k: n for k, n in counts.items() if n > 2}
    for key in committed:
        assert counts[key] == 1, f"step {key} was journaled before SIGSTOP but ran {counts[key]} times"
    started_at_stop = {(e.run_id, e.seq) for e in effects_at_stop}
    assert {k for k, n in counts.items() if n == 2} <= started_at_stop


async def test_sigterm_drains_within_grace_and_hands_unfinished_runs_back(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    grace, steps, delay = 1.0, 20, 0.1  # a run needs > 2 s: none can finish in the grace period
    async with bm.Engine(db, worker=False) as client:
        handles = [await client.start(wf.chain, f"drain-{i}", steps, delay) for i in range(4)]
        run_ids = [h.id for h in handles]
        first = workers.start(lease=5, poll=0.05, grace=grace)
        await wait_until(
            lambda: len(c := journal.steps_per_run()) == 4 and min(c.values()) >= 3,
            timeout=30,
            what="every run to journal 3 steps",
            watch=(first,),
        )
        journaled_at_term = len(journal.step_keys())
        first.send(signal.SIGTERM)
        term = time.monotonic()
        rc = first.proc.wait(timeout=grace + 10)
        drained = time.monotonic() - term
        print(f"\n[SIGTERM] worker exited {rc} after {drained:.2f}s (grace {grace:g}s)")
        assert rc == 0, first.output()
        assert "draining" in first.output()
        assert drained < grace + 3

        # The runs kept going during the grace period, then went back to the queue, unowned.
        committed = journal.step_keys()
        assert len(committed) > journaled_at_term
        effects_at_exit = read_effects(side_log)
        for run_id in run_ids:
            row = journal.run(run_id)
            assert row["status"] in ("queued", "completed"), row
            if row["status"] == "queued":
                assert row["lease_owner"] is None
                assert row["ready_at"] is not None
        assert "queued" in journal.statuses().values()

        second = workers.start(lease=5, poll=0.05)
        await wait_until(all_finished(journal, run_ids), timeout=60, what="runs to finish", watch=(second,))
        for i, handle in enumerate(handles):
            assert await handle.result(timeout=10) == {"tag": f"drain-{i}", "total": wf.chain_total(steps)}

    journal.assert_consistent(run_ids, steps)
    counts = effect_counts(read_effects(side_log))
    assert max(counts.values()) <= 2
    for key in committed:
        assert counts[key] == 1, f"step {key} was journaled before the drain ended but ran again"
    assert {k for k, n in counts.items() if n == 2} <= {(e.run_id, e.seq) for e in effects_at_exit}


async def test_draining_worker_keeps_its_leases_during_the_grace_period(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    # Each run needs ~4.8 s: at SIGTERM every run has seconds of work left, several times the
    # 1 s lease, and all of it fits in the 10 s grace period.
    lease, grace, steps, delay = 1.0, 10.0, 12, 0.4
    async with bm.Engine(db, worker=False) as client:
        handles = [await client.start(wf.chain, f"keep-{i}", steps, delay) for i in range(3)]
        run_ids = [h.id for h in handles]
        draining = workers.start(lease=lease, poll=0.05, grace=grace)
        await wait_until(
            lambda: set(journal.claims().values()) == {1} and len(read_effects(side_log)) == 3,
            timeout=30,
            what="the first worker to start every run",
            watch=(draining,),
        )
        other = workers.start(lease=lease, poll=0.05)  # idle, ready to take over expired leases
        draining.send(signal.SIGTERM)
        rc = draining.proc.wait(timeout=grace + 10)
        assert rc == 0, draining.output()
        await wait_until(all_finished(journal, run_ids), timeout=30, what="runs to finish", watch=(other,))
        for handle in handles:
            await handle.result(timeout=10)

    journal.assert_consistent(run_ids, steps)
    effects = read_effects(side_log)
    stolen = {e.run_id for e in effects if e.pid == other.pid}
    counts = effect_counts(effects)
    # The drain had time to finish every run itself: nothing may run twice or move.
    assert not stolen, f"runs taken over from a live, draining worker: {sorted(stolen)}"
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n > 1}
    assert set(journal.claims().values()) == {1}
