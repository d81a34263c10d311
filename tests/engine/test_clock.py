"""``Engine(clock=FakeClock())``: timers, deadlines, leases, retries and step timeouts move
only when the test moves the clock, so "not yet" is asserted at a fixed time, not after a
real wait that a slow machine could stretch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
import bandmaster.testing
from bandmaster.engine import Clock, SystemClock
from bandmaster.testing import FakeClock, temp_engine

START = 1_000_000.0
EVENTS: list[str] = []


@pytest.fixture
def clock() -> FakeClock:
    EVENTS.clear()
    return FakeClock(START)


@pytest.fixture
async def engine(db_path: Path, clock: FakeClock) -> AsyncIterator[bm.Engine]:
    async with bm.Engine(db_path, clock=clock, poll_interval=0.02, lease=10.0) as eng:
        yield eng


async def status(engine: bm.Engine, run_id: str) -> str:
    return (await engine.describe(run_id)).status


def test_both_clocks_are_clocks() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


def test_an_engine_refuses_something_that_is_not_a_clock(db_path: Path) -> None:
    with pytest.raises(bm.UsageError, match="FakeClock"):
        bm.Engine(db_path, clock=lambda: 0.0)  # type: ignore[arg-type]


async def test_time_goes_only_forwards(clock: FakeClock) -> None:
    with pytest.raises(bm.UsageError, match="backwards"):
        await clock.elapse(-1)
    assert await clock.elapse(0.5) == START + 0.5


# --- durable timers ---------------------------------------------------------------------


@bm.step
async def mark(tag: str) -> str:
    EVENTS.append(tag)
    return tag


@bm.workflow
async def wf_sleep(seconds: float) -> list[str]:
    before = await mark("before")
    await bm.sleep(seconds)
    return [before, await mark("after")]


async def test_a_long_sleep_waits_exactly_its_time(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_sleep, 300)
    await clock.settle()
    info = await handle.describe()
    assert (info.status, info.created_at.timestamp()) == ("waiting", START)
    assert info.steps[1].meta["wake_at"] == START + 300
    await clock.elapse(299.9)
    assert (await status(engine, handle.id), EVENTS) == ("waiting", ["before"])
    await clock.elapse(0.1)
    assert await handle.result(timeout=5) == ["before", "after"]
    info = await handle.describe()
    assert (info.claims, info.steps[1].status) == (2, "completed")
    assert info.ended_at is not None
    assert info.ended_at.timestamp() == START + 300


async def test_an_inline_sleep_waits_on_the_clock_too(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_sleep, 0.5)  # under max_inline_sleep: stays in memory
    await clock.elapse(0.4)
    assert (await status(engine, handle.id), EVENTS) == ("running", ["before"])
    await clock.elapse(0.1)
    assert await handle.result(timeout=5) == ["before", "after"]
    assert (await handle.describe()).claims == 1


@bm.workflow
async def wf_two_sleeps() -> float:
    await bm.sleep(100)
    await bm.sleep(100)
    return (bm.now()).timestamp()


async def test_elapse_stops_at_every_timer_on_the_way(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_two_sleeps)
    await clock.elapse(200)  # the second timer is set at 100 and due at 200: both fire
    assert await handle.result(timeout=5) == START + 200


@bm.workflow
async def wf_wait_default() -> Any:
    return await bm.wait_for("answer", timeout=60, default="nobody answered")


async def test_a_wait_timeout_fires_at_its_deadline(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_wait_default)
    await clock.elapse(59)
    assert await status(engine, handle.id) == "waiting"
    await clock.elapse(1)
    assert await handle.result(timeout=5) == "nobody answered"
    (wait,) = (await handle.describe()).steps
    assert (wait.meta["timed_out"], wait.meta["deadline"]) == (True, START + 60)


@bm.workflow
async def wf_wait() -> Any:
    return await bm.wait_for("answer")


async def test_a_waiting_run_is_not_replayed_while_time_passes(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_wait)
    await clock.elapse(3600)
    info = await handle.describe()
    assert (info.status, info.claims) == ("waiting", 1)  # nothing wakes it but the signal
    await handle.signal("answer", "yes")
    assert await handle.result(timeout=5) == "yes"


# --- approvals ----------------------------------------------------------------------------


@bm.workflow
async def wf_approval() -> bm.Decision:
    return await bm.approval("refund", {"amount": 40}, timeout=300, default="approve")


async def test_the_timed_default_applies_at_the_deadline(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_approval)
    await clock.elapse(299)
    (pending,) = await engine.approvals.list()
    assert pending.time_left == 1.0
    assert pending.deadline is not None
    assert pending.deadline.timestamp() == START + 300
    await clock.elapse(1)
    decision = await handle.result(timeout=5)
    assert (decision.action, decision.by, decision.timed_out) == ("approve", None, True)
    assert decision.at.timestamp() == START + 300
    (audit,) = await engine.approvals.audit(handle.id)
    assert (audit.event, audit.default_fired, audit.at.timestamp()) == ("default", True, START + 300)


async def test_a_decision_before_the_deadline_wins(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_approval)
    await clock.elapse(299)
    await engine.approvals.decide(handle.id, "reject", by="alice")
    decision = await handle.result(timeout=5)
    assert (decision.action, decision.by, decision.timed_out) == ("reject", "alice", False)
    await clock.elapse(10)  # the deadline passes: the decision stands
    with pytest.raises(bm.AlreadyDecided):
        await engine.approvals.decide(handle.id, "approve", by="bob")


# --- retries and step timeouts ------------------------------------------------------------


@bm.step(retry=bm.Retry(attempts=3, initial=10.0, multiplier=2.0, max_delay=60.0, jitter=False))
async def flaky() -> str:
    EVENTS.append("attempt")
    if len(EVENTS) < 3:
        raise bm.RetryableError("not yet")
    return "ok"


@bm.workflow
async def wf_flaky() -> str:
    return await flaky()


async def test_retry_delays_wait_on_the_clock(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_flaky)
    await clock.elapse(9.9)
    assert EVENTS == ["attempt"]
    await clock.elapse(0.1)
    assert EVENTS == ["attempt", "attempt"]
    await clock.elapse(19.9)
    assert EVENTS == ["attempt", "attempt"]
    await clock.elapse(0.1)
    assert await handle.result(timeout=5) == "ok"


@bm.step(timeout=5.0)
async def stuck() -> str:
    EVENTS.append("started")
    await asyncio.Event().wait()
    return "never"


@bm.workflow
async def wf_stuck() -> str:
    try:
        return await stuck()
    except bm.StepTimeout:
        return f"timed out at {bm.now().timestamp() - START}"


async def test_a_step_timeout_is_on_the_clock(engine: bm.Engine, clock: FakeClock) -> None:
    handle = await engine.start(wf_stuck)
    await clock.elapse(4.9)
    assert (await status(engine, handle.id), EVENTS) == ("running", ["started"])
    await clock.elapse(0.1)
    assert await handle.result(timeout=5) == "timed out at 5.0"


# --- leases -------------------------------------------------------------------------------


@bm.workflow
async def wf_quick() -> str:
    return "done"


async def test_a_run_of_a_silent_worker_is_taken_over_when_its_lease_expires(
    db_path: Path, clock: FakeClock
) -> None:
    async with bm.Engine(db_path, worker=False, clock=clock) as client:
        handle = await client.start(wf_quick)
        # Claimed by a worker on another host that then goes silent (no heartbeat).
        (claimed,) = client.store.claim_runs(
            "elsewhere/1/ab", ["wf_quick@"], {"wf_quick": None}, 1, lease=30.0
        )
        assert claimed.lease_expires == START + 30
    async with bm.Engine(db_path, workflows=[wf_quick], clock=clock, lease=10.0) as worker:
        await clock.elapse(29.9)
        info = await worker.describe(handle.id)
        assert (info.status, info.lease_owner) == ("running", "elsewhere/1/ab")
        await clock.elapse(0.2)
        assert await worker.result(handle.id, timeout=5) == "done"
        assert (await worker.describe(handle.id)).claims == 2


@bm.step
async def held(gate: str) -> str:
    EVENTS.append("holding")
    while "open" not in EVENTS:
        await bm.sleep(1)  # inside a step: a plain sleep on the engine's clock
    return gate


@bm.workflow
async def wf_held() -> str:
    return await held("released")


async def test_heartbeats_keep_a_busy_run_from_being_taken_over(db_path: Path, clock: FakeClock) -> None:
    async with (
        bm.Engine(db_path, workflows=[wf_held], clock=clock, lease=3.0) as first,
        bm.Engine(db_path, workflows=[wf_held], clock=clock, lease=3.0) as second,
    ):
        handle = await first.start(wf_held)
        await clock.elapse(100)  # 33 leases: renewed every second by the first engine
        info = await second.describe(handle.id)
        assert (info.status, info.lease_owner, info.claims) == ("running", first.owner, 1)
        EVENTS.append("open")
        await clock.elapse(1)
        assert await first.result(handle.id, timeout=5) == "released"
    assert EVENTS.count("holding") == 1


# --- the pytest plugin's engine, and temp_engine ------------------------------------------


async def test_temp_engine_takes_a_clock(clock: FakeClock) -> None:
    async with temp_engine([wf_sleep], clock=clock, lease=60.0) as engine:
        handle = await engine.start(wf_sleep, 3600)
        await clock.elapse(3600)
        assert await handle.result(timeout=5) == ["before", "after"]


# --- schedules ----------------------------------------------------------------------------


@bm.workflow
async def wf_report(region: str) -> str:
    return f"report for {region}"


async def test_schedule_ticks_come_on_the_clock(db_path: Path) -> None:
    clock = FakeClock(1_700_000_100.0)  # 2023-11-14T22:15:00Z, on a five-minute tick, in the past
    every_5_min = bm.Schedule("reports", "*/5 * * * *", "wf_report", "skip", input="eu")
    async with bm.Engine(
        db_path, workflows=[wf_report], schedules=[every_5_min], clock=clock, lease=60.0
    ) as engine:
        await clock.elapse(299)
        assert await engine.list() == []
        await clock.elapse(1)
        (run,) = await engine.list()
        assert (run.id, run.created_at.timestamp()) == ("reports@20231114T222000Z", clock.now())
        assert await engine.result(run.id, timeout=5) == "report for eu"
        (schedule,) = await engine.schedules.list()
        assert schedule.next_tick is not None
        assert schedule.next_tick.timestamp() == clock.now() + 300
        await clock.elapse(600)
        assert len(await engine.list()) == 3


# --- the fake clock itself ----------------------------------------------------------------


async def test_sleepers_wake_in_order_at_their_own_times(clock: FakeClock) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now() - START))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3.0), ("a", 1.0), ("b", 2.0))]
    await clock.elapse(2.5)
    assert woke == [("a", 1.0), ("b", 2.0)]
    tasks[0].cancel()  # a cancelled sleeper is gone from the clock
    await clock.elapse(10)
    assert woke == [("a", 1.0), ("b", 2.0)]
    assert clock.now() == START + 12.5


async def test_advance_jumps_and_fires_what_is_due(clock: FakeClock) -> None:
    task = asyncio.create_task(clock.sleep(5))
    await clock.settle()
    assert clock.advance(4) == START + 4
    await clock.settle()
    assert not task.done()
    clock.advance(1)
    await clock.settle()
    assert task.done()


async def test_timeouts_expire_on_the_clock(clock: FakeClock) -> None:
    async def wait_forever(seconds: float | None) -> bool:
        try:
            async with clock.timeout(seconds) as scope:
                await asyncio.Event().wait()
        except TimeoutError:
            return scope.expired()
        return False

    five, unlimited = asyncio.create_task(wait_forever(5)), asyncio.create_task(wait_forever(None))
    await clock.elapse(4.9)
    assert not five.done()
    await clock.elapse(0.1)
    assert five.done()
    assert await five is True
    assert await wait_forever(0) is True  # no time at all: expires at once
    await clock.elapse(3600)
    assert not unlimited.done()
    unlimited.cancel()


async def test_poll_returns_when_the_clock_moves_or_the_event_is_set(clock: FakeClock) -> None:
    wake = asyncio.Event()
    moved = asyncio.create_task(clock.poll(wake, 3600))
    await clock.settle()
    assert not moved.done()
    await clock.elapse(0.001)
    assert moved.done()
    poked = asyncio.create_task(clock.poll(wake, 3600))
    await clock.settle()
    wake.set()
    await clock.settle()
    assert poked.done()
    assert clock.now() == START + 0.001  # setting the event moved no time


async def test_settle_says_which_task_keeps_it_busy(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bandmaster.testing, "_SETTLE_TURNS", 200)

    async def spin() -> None:
        while True:  # noqa: ASYNC110  # busy on purpose: the bug settle() reports
            await asyncio.sleep(0)

    spinner = asyncio.create_task(spin())
    try:
        with pytest.raises(bm.UsageError, match="loops without awaiting a timer or an event"):
            await clock.settle()
    finally:
        spinner.cancel()
