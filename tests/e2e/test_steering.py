"""Steering runs from other processes: signals and cancellation sent by the CLI or a client to
runs that a worker process executes (or will execute once one is up)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from types import ModuleType

import pytest

import bandmaster as bm

from .harness import (
    Journal,
    Workers,
    all_finished,
    cli,
    effect_counts,
    one_line,
    read_effects,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("worker_during_signal", ["running", "down"])
async def test_signal_from_the_cli_resumes_a_waiting_run_in_a_worker(
    workers: Workers,
    journal: Journal,
    db: Path,
    side_log: Path,
    tmp_path: Path,
    wf: ModuleType,
    worker_during_signal: str,
) -> None:
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start(wf.approval, "T-1")
        worker = workers.start(lease=1, poll=0.05)
        await wait_until(
            lambda: journal.statuses().get(handle.id) == "waiting",
            timeout=30,
            what="the run to wait for its signal",
            watch=(worker,),
        )
        info = await client.describe(handle.id)
        assert info.status == "waiting"
        assert [(s.seq, s.kind, s.status) for s in info.steps] == [
            (1, "step", "completed"),
            (2, "wait", "waiting"),
        ]
        if worker_during_signal == "down":
            worker.kill()  # the signal is kept in the journal until some worker resumes the run

        sent = cli("signal", handle.id, "approve", '{"ok": true}', "--db", str(db), cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert f"signal 'approve' sent to {handle.id}" in one_line(sent.stdout)
        if worker_during_signal == "down":
            assert journal.statuses()[handle.id] == "queued"  # ready for whichever worker comes

        if worker_during_signal == "down":
            worker = workers.start(lease=1, poll=0.05)
        await wait_until(
            all_finished(journal, [handle.id]), timeout=30, what="the run to finish", watch=(worker,)
        )
        assert await handle.result(timeout=5) == {"ticket": "T-1", "decision": {"ok": True}}

    steps = journal.steps(handle.id)
    assert [(s["seq"], s["kind"], s["status"]) for s in steps] == [
        (1, "step", "completed"),
        (2, "wait", "completed"),
        (3, "step", "completed"),
    ]
    assert json.loads(steps[1]["output"]) == {"ok": True}
    assert journal.query("SELECT name, consumed_seq FROM signals WHERE run_id = ?", (handle.id,)) == [
        ("approve", 2)
    ]
    counts = effect_counts(read_effects(side_log))
    assert counts == {(handle.id, 1): 1, (handle.id, 3): 1}


async def test_a_signal_sent_before_the_wait_is_reached_is_kept(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start(wf.approval, "T-2", 1.0)  # first step takes 1 s
        worker = workers.start(lease=1, poll=0.05)
        await wait_until(
            lambda: read_effects(side_log), timeout=30, what="the first step to start", watch=(worker,)
        )
        await client.signal(handle.id, "approve", {"ok": "early"})
        assert journal.statuses()[handle.id] == "running", "signal not sent while the step was running"
        await wait_until(
            all_finished(journal, [handle.id]), timeout=30, what="the run to finish", watch=(worker,)
        )
        assert await handle.result(timeout=5) == {"ticket": "T-2", "decision": {"ok": "early"}}
    # Delivered at the wait itself: the run never suspended, so it was never claimed again.
    assert journal.run(handle.id)["claims"] == 1
    assert journal.query("SELECT consumed_seq FROM signals") == [(2,)]


async def test_cli_cancel_of_a_run_executing_in_a_worker(
    workers: Workers, journal: Journal, db: Path, side_log: Path, tmp_path: Path, wf: ModuleType
) -> None:
    # 1000 steps of 0.1 s: the chain outlasts a CLI start on a loaded machine (that can take
    # over 10 s) by far, and costs nothing since the cancel ends it.
    lease, steps = 1.0, 1000
    async with bm.Engine(db, worker=False) as client:
        victim = await client.start(wf.chain, "victim", steps, 0.1)
        bystander = await client.start(wf.chain, "bystander", 5, 0.1)
        worker = workers.start(lease=lease, poll=0.05)
        await wait_until(
            lambda: journal.steps_per_run().get(victim.id, 0) >= 3,
            timeout=30,
            what="the run to journal 3 steps",
            watch=(worker,),
        )
        proc = cli("cancel", victim.id, "--db", db, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert one_line(proc.stdout) == f"run {victim.id}: running (cancel requested)"
        # Timed from the request being in the journal, not from the CLI's start (which is the
        # interpreter's start-up, seconds on a loaded machine): this is the worker's reaction.
        requested = time.monotonic()
        await wait_until(
            lambda: journal.statuses()[victim.id] == "cancelled",
            timeout=10,
            what="the worker to cancel the run",
            watch=(worker,),
        )
        latency = time.monotonic() - requested
        print(f"\n[cancel] running run cancelled {latency:.2f}s after `bandmaster cancel` returned")
        assert latency < lease + 3, "a running run is cancelled within about one heartbeat"
        with pytest.raises(bm.RunCancelled):
            await victim.result(timeout=5)
        await wait_until(
            all_finished(journal, [bystander.id]), timeout=30, what="the other run", watch=(worker,)
        )
        assert await bystander.result(timeout=5) == {"tag": "bystander", "total": wf.chain_total(5)}
        # A graceful stop flushes anything the worker still had to write about the victim.
        worker.send(signal.SIGTERM)
        assert worker.proc.wait(timeout=15) == 0, worker.output()

    run = journal.run(victim.id)
    assert run["status"] == "cancelled"
    assert run["lease_owner"] is None
    assert json.loads(run["error"])["message"] == "cancelled"
    journaled = journal.steps(victim.id)
    assert 3 <= len(journaled) < steps
    assert all(s["ended_at"] <= run["ended_at"] for s in journaled)
    # Nothing ran after the step that was interrupted.
    ran = sorted(seq for (run_id, seq) in effect_counts(read_effects(side_log)) if run_id == victim.id)
    assert ran == list(range(1, len(ran) + 1))
    assert len(ran) <= len(journaled) + 1


async def test_cli_cancel_of_a_queued_run_means_no_worker_ever_runs_it(
    workers: Workers, journal: Journal, db: Path, side_log: Path, tmp_path: Path, wf: ModuleType
) -> None:
    async with bm.Engine(db, worker=False) as client:
        doomed = await client.start(wf.chain, "doomed", 3, 0.01)
        proc = cli("cancel", doomed.id, "--db", db, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert one_line(proc.stdout) == f"run {doomed.id}: cancelled"
        worker = workers.start(lease=1, poll=0.05)
        # A run queued after the cancelled one completes: the worker has polled the queue.
        later = await client.start(wf.chain, "later", 3, 0.01)
        await wait_until(all_finished(journal, [later.id]), timeout=30, what="the later run", watch=(worker,))
        with pytest.raises(bm.RunCancelled):
            await doomed.result(timeout=5)
    assert journal.run(doomed.id)["claims"] == 0
    assert journal.steps(doomed.id) == []
    assert {e.run_id for e in read_effects(side_log)} == {later.id}


async def test_a_signal_for_a_later_wait_does_not_make_the_run_spin(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    async with bm.Engine(db, worker=False) as client:
        gates = await client.start(wf.two_gates, "T-3")  # waits for "first", then "second"
        # Sleeps, then waits "approve". The nap must outlast the checks below (which end with a
        # 0.5 s watch of the waiting runs) even when a loaded machine makes them slow.
        napper = await client.start(wf.nap_then_gate, "T-4", 5.0)
        run_ids = [gates.id, napper.id]
        worker = workers.start(lease=1, poll=0.05)

        def all_waiting() -> bool:
            statuses = journal.statuses()
            return all(statuses[r] == "waiting" for r in run_ids)

        await wait_until(all_waiting, timeout=30, what="both runs to wait", watch=(worker,))
        await client.signal(gates.id, "second", "early")  # kept until its wait is reached
        await client.signal(napper.id, "approve", "early")  # kept until the sleep is over
        # Kept pending, without waking the runs (at most one replay to look at it is fine).
        await wait_until(all_waiting, timeout=4, what="both runs to wait again", watch=(worker,))
        claims = journal.claims()
        rest = time.monotonic() + 0.5
        while time.monotonic() < rest:  # ten polls of the worker
            assert all_waiting(), journal.statuses()
            await asyncio.sleep(0.02)
        assert journal.claims() == claims, "runs were replayed with nothing to do"

        await client.signal(gates.id, "first", "now")
        await wait_until(all_finished(journal, run_ids), timeout=30, what="runs to finish", watch=(worker,))
        assert await gates.result(timeout=5) == {"ticket": "T-3", "first": "now", "second": "early"}
        assert await napper.result(timeout=5) == {"ticket": "T-4", "decision": "early"}


async def test_cancel_requested_just_before_the_run_suspends_is_not_lost(
    workers: Workers, journal: Journal, db: Path, side_log: Path, wf: ModuleType
) -> None:
    # Heartbeat every 5 s: the run suspends before the worker hears of the cancel. The 1.5 s
    # step leaves a loaded machine time to send the cancel while it runs.
    lease = 15.0
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start(wf.approval, "T-5", 1.5)  # 1.5 s step, then wait_for
        worker = workers.start(lease=lease, poll=0.05)
        await wait_until(
            lambda: read_effects(side_log), timeout=30, what="the first step to start", watch=(worker,)
        )
        assert await client.cancel(handle.id) == "running"  # requested; the worker must act on it
        await wait_until(
            lambda: journal.statuses()[handle.id] in ("waiting", "cancelled"),
            timeout=30,
            what="the run to settle",
            watch=(worker,),
        )
        # A lost cancel leaves the run waiting forever (its wait has no timeout): a generous
        # deadline still tells the two apart on a loaded machine.
        await wait_until(
            lambda: journal.statuses()[handle.id] == "cancelled",
            timeout=15,
            what="the cancel to take effect",
            watch=(worker,),
        )
        with pytest.raises(bm.RunCancelled):
            await handle.result(timeout=5)
