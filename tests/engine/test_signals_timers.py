"""Signals, durable timers and cancellation."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import bandmaster as bm
from bandmaster.testing import FakeClock

CALLS: Counter[str] = Counter()
EVENTS: list[str] = []


@pytest.fixture
def calls() -> Counter[str]:
    CALLS.clear()
    EVENTS.clear()
    return CALLS


class Approval(BaseModel):
    approved: bool
    by: str


async def eventually(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# --- signals ------------------------------------------------------------------------------


@bm.step
async def busy(seconds: float) -> str:
    CALLS["busy"] += 1
    await asyncio.sleep(seconds)
    return "busy done"


@bm.workflow
async def wf_busy_then_wait() -> list[Any]:
    done = await busy(0.5)
    return [done, await bm.wait_for("answer")]


async def test_signal_sent_before_the_wait_is_kept_and_delivered(
    engine: bm.Engine, calls: Counter[str]
) -> None:
    handle = await engine.start(wf_busy_then_wait)
    assert (await handle.describe()).status == "running"
    await handle.signal("answer", {"n": 42})
    assert await handle.result(timeout=10) == ["busy done", {"n": 42}]
    info = await handle.describe()
    assert info.claims == 1  # found at the wait: the run never had to suspend
    wait = info.steps[-1]
    assert (wait.kind, wait.name, wait.status, wait.output) == ("wait", "answer", "completed", {"n": 42})


@bm.workflow
async def wf_wait() -> Any:
    CALLS["wf_wait"] += 1
    return await bm.wait_for("answer")


async def test_signal_after_the_wait_resumes_a_waiting_run(
    clocked_engine: bm.Engine, clock: FakeClock, calls: Counter[str]
) -> None:
    engine = clocked_engine
    handle = await engine.start(wf_wait)
    await clock.settle()
    info = await handle.describe()
    assert info.status == "waiting"
    (wait,) = info.steps
    assert (wait.kind, wait.status, wait.meta) == ("wait", "waiting", {"signal": "answer", "deadline": None})
    assert info.lease_owner is None
    assert not engine._worker.active  # type: ignore[union-attr]  # holds no memory while waiting
    await clock.elapse(3600)
    info = await handle.describe()
    assert (info.status, info.claims) == ("waiting", 1)  # nothing wakes it but the signal
    await handle.signal("answer", "yes")
    assert await handle.result(timeout=10) == "yes"
    info = await handle.describe()
    assert (info.status, info.claims) == ("completed", 2)
    assert info.steps[0].status == "completed"
    assert calls["wf_wait"] == 2


@bm.workflow
async def wf_two_waits() -> list[Any]:
    return [await bm.wait_for("first"), await bm.wait_for("second")]


async def test_signals_may_arrive_in_any_order(engine: bm.Engine, until_status: Any) -> None:
    handle = await engine.start(wf_two_waits)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("second", 2)
    await handle.signal("first", 1)
    assert await handle.result(timeout=10) == [1, 2]


async def test_a_pending_signal_for_a_later_wait_does_not_spin_the_run(
    clocked_engine: bm.Engine, clock: FakeClock
) -> None:
    handle = await clocked_engine.start(wf_two_waits)
    await clock.settle()
    await handle.signal("second", 2)
    await clock.elapse(60)  # the worker polls at every stop of the clock (heartbeats)
    info = await handle.describe()
    assert (info.status, info.claims) == ("waiting", 1)


@bm.workflow
async def wf_gathered_waits() -> list[Any]:
    return sorted(await asyncio.gather(bm.wait_for("vote"), bm.wait_for("vote")))


async def test_two_waits_on_one_name_take_distinct_signals(engine: bm.Engine) -> None:
    handle = await engine.start(wf_gathered_waits)
    await handle.signal("vote", "no")
    await handle.signal("vote", "yes")
    assert await handle.result(timeout=10) == ["no", "yes"]


@bm.workflow
async def wf_wait_typed() -> list[Any]:
    approval = await bm.wait_for("approval", type=Approval)
    return [type(approval).__name__, approval.approved, approval.by]


async def test_signal_payload_is_validated_into_the_type(engine: bm.Engine, until_status: Any) -> None:
    handle = await engine.start(wf_wait_typed)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("approval", {"approved": True, "by": "ana"})
    assert await handle.result(timeout=10) == ["Approval", True, "ana"]


@bm.workflow
async def wf_wait_typed_sent_as_model() -> bool:
    approval = await bm.wait_for("approval", type=Approval)
    return isinstance(approval, Approval) and approval.by == "bo"


async def test_a_pydantic_payload_round_trips(engine: bm.Engine) -> None:
    handle = await engine.start(wf_wait_typed_sent_as_model)
    await handle.signal("approval", Approval(approved=False, by="bo"))
    assert await handle.result(timeout=10) is True


@bm.workflow
async def wf_wait_default() -> Any:
    return await bm.wait_for("answer", timeout=0.2, default="nobody answered")


async def test_wait_timeout_with_default_returns_the_default(
    clocked_engine: bm.Engine, clock: FakeClock
) -> None:
    handle = await clocked_engine.start(wf_wait_default)
    await clock.elapse(0.19)
    assert (await handle.describe()).status == "waiting"
    await clock.elapse(0.01)
    assert await handle.result(timeout=10) == "nobody answered"
    (wait,) = (await handle.describe()).steps
    assert (wait.status, wait.output) == ("completed", "nobody answered")
    assert wait.meta["timed_out"] is True
    assert wait.meta["signal"] == "answer"


@bm.workflow
async def wf_wait_model_default() -> list[Any]:
    answer = await bm.wait_for("approval", timeout=5.0, default=Approval(approved=False, by="default"))
    return [type(answer).__name__, answer.by]


async def test_a_pydantic_default_types_the_payload(engine: bm.Engine) -> None:
    handle = await engine.start(wf_wait_model_default)
    await handle.signal("approval", {"approved": True, "by": "cy"})
    assert await handle.result(timeout=10) == ["Approval", "cy"]


@bm.workflow
async def wf_wait_default_later() -> Any:
    # A timeout no stall of a loaded machine between start() and signal() can outlast.
    return await bm.wait_for("answer", timeout=30, default="nobody answered")


async def test_a_signal_before_the_timeout_wins(engine: bm.Engine) -> None:
    handle = await engine.start(wf_wait_default_later)
    await handle.signal("answer", "in time")
    assert await handle.result(timeout=10) == "in time"
    (wait,) = (await handle.describe()).steps
    assert "timed_out" not in wait.meta


@bm.workflow
async def wf_wait_no_default() -> str:
    try:
        await bm.wait_for("answer", timeout=0.1)
    except bm.WaitTimeout as exc:
        EVENTS.append(type(exc).__name__)
        return "gave up"
    return "answered"


async def test_wait_timeout_without_default_raises_wait_timeout(
    clocked_engine: bm.Engine, clock: FakeClock, calls: Counter[str]
) -> None:
    handle = await clocked_engine.start(wf_wait_no_default)
    await clock.elapse(0.1)
    assert await handle.result(timeout=10) == "gave up"
    assert EVENTS == ["WaitTimeout"]
    (wait,) = (await handle.describe()).steps
    assert wait.status == "failed"
    assert wait.error is not None
    assert wait.error["type"] == "bandmaster.errors.WaitTimeout"


@bm.workflow
async def wf_wait_no_default_uncaught() -> Any:
    return await bm.wait_for("answer", timeout=0.1)


async def test_uncaught_wait_timeout_fails_the_run(clocked_engine: bm.Engine, clock: FakeClock) -> None:
    handle = await clocked_engine.start(wf_wait_no_default_uncaught)
    await clock.elapse(0.1)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type == "bandmaster.errors.WaitTimeout"
    assert isinstance(info.value.__cause__, bm.WaitTimeout)
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_signal_to_an_unknown_run(engine: bm.Engine) -> None:
    with pytest.raises(bm.RunNotFound):
        await engine.signal("no-such-run", "answer", 1)


@bm.workflow
async def wf_quick() -> str:
    return "done"


async def test_signal_to_a_finished_run_is_refused(engine: bm.Engine) -> None:
    handle = await engine.start(wf_quick)
    assert await handle.result(timeout=10) == "done"
    with pytest.raises(bm.UsageError, match="completed"):
        await handle.signal("answer", 1)
    assert engine.store.pending_signals(handle.id, "answer") == []


async def test_wait_for_outside_a_workflow_is_a_usage_error() -> None:
    with pytest.raises(bm.UsageError):
        await bm.wait_for("anything")


# --- durable timers -----------------------------------------------------------------------


@bm.step
async def count(tag: str) -> str:
    CALLS[tag] += 1
    return tag


@bm.workflow
async def wf_sleepy(seconds: float) -> list[str]:
    before = await count("before")
    await bm.sleep(seconds)
    return [before, await count("after")]


async def test_short_sleep_stays_inline(
    clocked_engine: bm.Engine, clock: FakeClock, calls: Counter[str]
) -> None:
    handle = await clocked_engine.start(wf_sleepy, 0.2)
    await clock.elapse(0.19)
    assert (await handle.describe()).status == "running"
    assert calls == Counter(before=1)
    await clock.elapse(0.01)
    assert await handle.result(timeout=10) == ["before", "after"]
    info = await handle.describe()
    assert info.claims == 1  # never left memory
    sleep = info.steps[1]
    assert (sleep.kind, sleep.status) == ("sleep", "completed")
    assert "wake_at" in sleep.meta


async def test_long_sleep_evicts_the_run_then_completes(
    db_path: Path, clock: FakeClock, calls: Counter[str]
) -> None:
    async with bm.Engine(db_path, clock=clock, poll_interval=0.02, max_inline_sleep=0.1) as engine:
        started = clock.now()
        handle = await engine.start(wf_sleepy, 0.6)
        await clock.settle()
        info = await handle.describe()
        assert info.status == "waiting"
        assert not engine._worker.active  # type: ignore[union-attr]
        sleep = info.steps[1]
        assert (sleep.kind, sleep.status) == ("sleep", "waiting")
        assert sleep.meta["wake_at"] == started + 0.6
        await clock.elapse(0.59)
        assert (await handle.describe()).status == "waiting"
        await clock.elapse(0.01)
        assert await handle.result(timeout=10) == ["before", "after"]
        info = await handle.describe()
        assert info.ended_at is not None
        assert info.ended_at.timestamp() == sleep.meta["wake_at"]
        assert info.claims == 2
        assert info.steps[1].status == "completed"
    assert calls == Counter(before=1, after=1)


async def test_durable_sleep_survives_an_engine_restart(
    db_path: Path, clock: FakeClock, calls: Counter[str]
) -> None:
    async with bm.Engine(db_path, clock=clock, poll_interval=0.02, max_inline_sleep=0.1) as first:
        handle = await first.start(wf_sleepy, 0.8)
        await clock.settle()
        info = await first.describe(handle.id)
        assert info.status == "waiting"
        wake_at = info.steps[1].meta["wake_at"]
    # the first engine is gone; a new one on the same file finishes the run
    async with bm.Engine(
        db_path, workflows=[wf_sleepy], clock=clock, poll_interval=0.02, max_inline_sleep=0.1
    ) as second:
        await clock.elapse(0.79)
        assert (await second.describe(handle.id)).status == "waiting"
        await clock.elapse(0.01)
        assert await second.result(handle.id, timeout=10) == ["before", "after"]
        info = await second.describe(handle.id)
        assert info.ended_at is not None
        assert info.ended_at.timestamp() == wake_at
    assert calls == Counter(before=1, after=1)


async def test_sleep_outside_a_workflow_just_sleeps() -> None:
    started = time.monotonic()
    await bm.sleep(0.05)
    assert time.monotonic() - started >= 0.05


# --- cancellation ---------------------------------------------------------------------------


async def test_cancel_a_waiting_run(clocked_engine: bm.Engine, clock: FakeClock, calls: Counter[str]) -> None:
    engine = clocked_engine
    handle = await engine.start(wf_wait)
    await clock.settle()
    assert await engine.cancel(handle.id) == "cancelled"
    info = await handle.describe()
    assert info.status == "cancelled"
    assert info.ended_at is not None
    with pytest.raises(bm.RunCancelled) as raised:
        await handle.result(timeout=10)
    assert raised.value.run_id == handle.id
    with pytest.raises(bm.UsageError):
        await handle.signal("answer", "too late")
    await clock.elapse(3600)
    assert calls["wf_wait"] == 1  # never replayed


@bm.step
async def long_step() -> str:
    EVENTS.append("step started")
    await asyncio.sleep(30)
    return "never"


@bm.workflow
async def wf_cancellable() -> str:
    try:
        return await long_step()
    except bm.Cancelled:
        EVENTS.append("saw bm.Cancelled")
        raise
    finally:
        EVENTS.append("finally ran")


async def test_cancel_a_run_mid_step(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_cancellable)
    await eventually(lambda: "step started" in EVENTS)
    assert await engine.cancel(handle.id) == "running"
    with pytest.raises(bm.RunCancelled):
        await handle.result(timeout=10)
    assert EVENTS == ["step started", "saw bm.Cancelled", "finally ran"]
    info = await handle.describe()
    assert info.status == "cancelled"
    assert info.error is not None
    assert info.error["message"] == "cancelled"
    assert all(s.status != "completed" for s in info.steps)


@bm.workflow
async def wf_cancellable_sleep() -> str:
    try:
        EVENTS.append("sleeping")
        await bm.sleep(0.8)  # inline: shorter than max_inline_sleep
    except bm.Cancelled:
        EVENTS.append("saw bm.Cancelled")
        raise
    except asyncio.CancelledError:
        EVENTS.append("saw a plain CancelledError")
        raise
    return "woke"


async def test_cancel_during_an_inline_sleep_raises_bm_cancelled(
    clocked_engine: bm.Engine, clock: FakeClock, calls: Counter[str]
) -> None:
    engine = clocked_engine
    handle = await engine.start(wf_cancellable_sleep)
    await clock.elapse(0.5)  # in the middle of the sleep, which only the clock can end
    assert EVENTS == ["sleeping"]
    assert await engine.cancel(handle.id) == "running"
    with pytest.raises(bm.RunCancelled):
        await handle.result(timeout=10)
    assert EVENTS == ["sleeping", "saw bm.Cancelled"]


async def test_cancel_a_queued_run(db_path: Path) -> None:
    async with bm.Engine(db_path, worker=False) as client:
        handle = await client.start(wf_wait)
        assert (await handle.describe()).status == "queued"
        assert await client.cancel(handle.id) == "cancelled"
        with pytest.raises(bm.RunCancelled):
            await handle.result(timeout=5)


async def test_cancel_a_finished_run_changes_nothing(engine: bm.Engine) -> None:
    handle = await engine.start(wf_quick)
    assert await handle.result(timeout=10) == "done"
    assert await engine.cancel(handle.id) == "completed"
    assert await handle.result(timeout=10) == "done"


@bm.workflow
async def wf_swallows_exceptions() -> str:
    try:
        return await bm.wait_for("answer")
    except Exception:
        return "swallowed"


async def test_suspension_is_not_an_exception_a_workflow_can_swallow(
    engine: bm.Engine, until_status: Any
) -> None:
    handle = await engine.start(wf_swallows_exceptions)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("answer", "real answer")
    assert await handle.result(timeout=10) == "real answer"


@bm.workflow
async def wf_step_alongside_wait() -> list[Any]:
    return list(await asyncio.gather(busy(0.2), bm.wait_for("answer")))


async def test_suspension_lets_parallel_steps_finish_and_keeps_their_results(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_step_alongside_wait)
    info = await until_status(engine, handle.id, "waiting")
    step = next(s for s in info.steps if s.kind == "step")
    assert (step.seq, step.status, step.output) == (1, "completed", "busy done")
    await handle.signal("answer", 7)
    assert await handle.result(timeout=10) == ["busy done", 7]
    assert calls["busy"] == 1


@bm.workflow
async def wf_wait_typed_catches() -> str:
    try:
        await bm.wait_for("approval", type=Approval)
    except bm.InvalidInput as exc:
        return f"rejected: {'approval' in str(exc)}"
    return "accepted"


async def test_an_invalid_signal_payload_fails_the_wait_and_is_consumed(
    engine: bm.Engine, until_status: Any
) -> None:
    handle = await engine.start(wf_wait_typed_catches)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("approval", {"approved": "perhaps"})
    assert await handle.result(timeout=10) == "rejected: True"
    info = await engine.describe(handle.id)
    wait = next(s for s in info.steps if s.kind == "wait")
    assert wait.status == "failed"
    assert wait.error is not None
    assert wait.error["type"] == "bandmaster.errors.InvalidInput"
    assert engine.store.next_signal(handle.id, "approval") is None  # consumed, not left to spin


async def test_an_oversized_signal_payload_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    async with bm.Engine(tmp_path / "s.db", max_payload=100, poll_interval=0.02) as engine:
        handle = await engine.start(wf_wait_typed)
        with pytest.raises(bm.PayloadTooLarge, match="payload of signal 'approval'"):
            await handle.signal("approval", {"approved": True, "by": "x" * 500})
        assert engine.store.next_signal(handle.id, "approval") is None
        await handle.cancel()
