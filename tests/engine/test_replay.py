"""Replay: recorded operations come back without re-running, and code that no longer matches
the journal is refused with NonDeterminismError."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.engine._context import RunContext
from bandmaster.store._base import StepRow
from bandmaster.testing import FakeClock

CALLS: Counter[str] = Counter()
SEEN: list[Any] = []
FLAGS: dict[str, str] = {}


@pytest.fixture
def calls() -> Counter[str]:
    CALLS.clear()
    SEEN.clear()
    FLAGS.clear()
    FLAGS["branch"] = "first"
    return CALLS


# --- non-determinism ---------------------------------------------------------------------


@bm.step
async def branch_a() -> str:
    CALLS["branch_a"] += 1
    return "a"


@bm.step
async def branch_b() -> str:
    CALLS["branch_b"] += 1
    return "b"


@bm.workflow
async def wf_branchy() -> str:
    picked = await branch_a() if FLAGS["branch"] == "first" else await branch_b()
    await bm.wait_for("go")
    return picked


async def test_changed_code_path_raises_non_determinism_error(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_branchy)
    await until_status(engine, handle.id, "waiting")
    FLAGS["branch"] = "second"  # "deploy" a changed workflow while the run waits
    await handle.signal("go")
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    failed = info.value
    assert failed.error_type == "bandmaster.errors.NonDeterminismError"
    assert handle.id in failed.message
    assert "seq 1" in failed.message
    assert "'step branch_a'" in failed.message  # recorded
    assert "'step branch_b'" in failed.message  # called
    assert isinstance(failed.__cause__, bm.NonDeterminismError)
    assert isinstance(failed.__cause__, bm.UsageError)
    assert calls == Counter(branch_a=1)  # the mismatched step never ran
    assert (await handle.describe()).status == "failed"


async def test_unchanged_code_path_replays_cleanly(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_branchy)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("go")
    assert await handle.result(timeout=10) == "a"
    assert calls == Counter(branch_a=1)


def _context(recorded: dict[int, StepRow]) -> RunContext:
    return RunContext(
        run_id="run-1",
        workflow="wf",
        owner="me",
        store=None,  # type: ignore[arg-type]  # replayed() never touches the store
        recorded=recorded,
        max_payload=1000,
        max_inline_sleep=1.0,
    )


def test_non_determinism_error_names_run_seq_and_both_operations() -> None:
    now = time.time()
    ctx = _context({3: StepRow("run-1", 3, "classify", "step", "completed", '"x"', None, 1, now, now, None)})
    assert ctx.replayed(3, "classify", "step") is not None
    assert ctx.replayed(4, "anything", "step") is None  # not recorded: runs live
    with pytest.raises(bm.NonDeterminismError) as info:
        ctx.replayed(3, "scan_phi", "step")
    error = info.value
    assert (error.run_id, error.seq, error.recorded, error.called) == (
        "run-1",
        3,
        "step classify",
        "step scan_phi",
    )
    assert "run-1" in str(error)
    assert "seq 3" in str(error)
    with pytest.raises(bm.NonDeterminismError, match="'sleep sleep'"):
        ctx.replayed(3, "sleep", "sleep")  # same seq, different kind


async def test_run_failed_cause_keeps_the_error_data(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_branchy)
    await until_status(engine, handle.id, "waiting")
    FLAGS["branch"] = "second"
    await handle.signal("go")
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    cause = info.value.__cause__
    assert isinstance(cause, bm.NonDeterminismError)
    assert (cause.run_id, cause.seq, cause.recorded, cause.called) == (
        handle.id,
        1,
        "step branch_a",
        "step branch_b",
    )


# --- what is replayed ----------------------------------------------------------------------


class Rejected(Exception):
    pass


@bm.step
async def always_rejects(n: int) -> str:
    CALLS["always_rejects"] += 1
    raise Rejected(f"bad {n}")


@bm.workflow
async def wf_recorded_failure() -> str:
    try:
        await always_rejects(1)
    except Rejected as exc:
        SEEN.append(str(exc))
    return await bm.wait_for("go")


async def test_recorded_step_failure_is_raised_again_on_replay_without_rerunning(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_recorded_failure)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("go", "done")
    assert await handle.result(timeout=10) == "done"
    assert calls == Counter(always_rejects=1)
    assert SEEN == ["bad 1", "bad 1"]  # the same exception type and message both times


@bm.workflow
async def wf_deterministic_sources() -> list[str]:
    values = [bm.now().isoformat(), str(bm.uuid()), repr(bm.random())]
    SEEN.append(values)
    await bm.wait_for("go")
    return values


async def test_now_uuid_random_are_recorded_and_replayed(
    clocked_engine: bm.Engine, clock: FakeClock, calls: Counter[str]
) -> None:
    started = clock.now()
    handle = await clocked_engine.start(wf_deterministic_sources)
    await clock.settle()
    info = await handle.describe()
    assert [(s.seq, s.kind) for s in info.steps] == [(1, "now"), (2, "uuid"), (3, "random"), (4, "wait")]
    await clock.elapse(60)  # a replay a minute later must still see the recorded time
    await handle.signal("go")
    result = await handle.result(timeout=10)
    assert len(SEEN) == 2
    assert SEEN[0] == SEEN[1] == result
    assert result[0] == datetime.fromtimestamp(started, UTC).isoformat()


def test_now_uuid_random_outside_a_workflow_are_plain() -> None:
    assert bm.now().tzinfo is not None
    assert bm.uuid() != bm.uuid()
    assert 0.0 <= bm.random() < 1.0


@bm.step
async def remember(tag: str) -> str:
    CALLS[f"remember:{tag}"] += 1
    return tag


@bm.workflow
async def wf_restartable() -> list[str]:
    first = await remember("before")
    signalled = await bm.wait_for("go")
    return [first, signalled, await remember("after")]


async def test_a_new_engine_on_the_same_file_resumes_by_replay(
    db_path: Path, calls: Counter[str], until_status: Any
) -> None:
    async with bm.Engine(db_path, poll_interval=0.02, lease=2.0) as first:
        handle = await first.start(wf_restartable)
        await until_status(first, handle.id, "waiting")
    async with bm.Engine(db_path, workflows=[wf_restartable], poll_interval=0.02, lease=2.0) as second:
        await second.signal(handle.id, "go", "signalled")
        assert await second.result(handle.id, timeout=10) == ["before", "signalled", "after"]
        info = await second.describe(handle.id)
        assert info.claims == 2
    assert calls == Counter({"remember:before": 1, "remember:after": 1})


@bm.step
async def stamp_inside_step() -> str:
    return bm.now().isoformat()  # time read *inside* a step: part of the step, not the workflow


@bm.workflow
async def wf_now_inside_step() -> str:
    stamped = await stamp_inside_step()
    await bm.wait_for("go")
    return stamped


async def test_deterministic_sources_inside_a_step_do_not_break_replay(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_now_inside_step)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("go")
    stamped = await handle.result(timeout=10)
    assert isinstance(stamped, str)


@bm.step(timeout=0.02, retry=bm.Retry(attempts=2, initial=0.0))
async def times_out_twice() -> str:
    CALLS["times_out_twice"] += 1
    await asyncio.sleep(30)
    return "never"


@bm.workflow
async def wf_inspects_exhausted() -> str:
    try:
        await times_out_twice()
    except bm.RetriesExhausted as exc:
        summary = f"{exc.step}: {len(exc.errors)} x {type(exc.errors[-1]).__name__}"
    else:
        summary = "no error"
    await bm.wait_for("go")
    return summary


async def test_replayed_step_error_keeps_its_attributes(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_inspects_exhausted)
    await until_status(engine, handle.id, "waiting")
    await handle.signal("go")
    assert await handle.result(timeout=10) == "times_out_twice: 2 x StepTimeout"
    assert calls["times_out_twice"] == 2


@bm.step
async def side_effect_step(seconds: float) -> str:
    ctx = bm.current_step()
    assert ctx is not None
    SEEN.append(ctx.idempotency_key)
    CALLS["side_effect_step"] += 1
    await asyncio.sleep(seconds if CALLS["side_effect_step"] == 1 else 0)
    return "effect"


@bm.workflow
async def wf_interrupted() -> str:
    return await side_effect_step(30)


async def test_a_step_interrupted_by_shutdown_runs_again_with_the_same_key(
    db_path: Path, calls: Counter[str]
) -> None:
    async with bm.Engine(db_path, poll_interval=0.02, lease=2.0) as first:
        handle = await first.start(wf_interrupted)
        deadline = time.monotonic() + 10
        while not SEEN:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await first.close(grace=0.1)  # the step is cut short: the run goes back to the queue
    async with bm.Engine(db_path, worker=False) as client:
        info = await client.describe(handle.id)
        assert (info.status, info.lease_owner, info.steps) == ("queued", None, [])
    async with bm.Engine(db_path, workflows=[wf_interrupted], poll_interval=0.02, lease=2.0) as second:
        assert await second.result(handle.id, timeout=10) == "effect"
    assert calls["side_effect_step"] == 2  # at-least-once ...
    assert [f"{handle.id}:1", f"{handle.id}:1"] == SEEN  # ... with a stable idempotency key


@bm.step
async def counted(n: int) -> int:
    CALLS[f"counted:{n}"] += 1
    await asyncio.sleep(0.01)
    return n * n


@bm.workflow
async def wf_counted(n: int) -> int:
    return await counted(n)


async def test_competing_workers_run_each_step_once(db_path: Path, calls: Counter[str]) -> None:
    options: dict[str, Any] = {"workflows": [wf_counted], "poll_interval": 0.02, "lease": 2.0}
    async with (
        bm.Engine(db_path, worker=False) as client,
        bm.Engine(db_path, **options) as worker_a,
        bm.Engine(db_path, **options) as worker_b,
    ):
        handles = [await client.start(wf_counted, n) for n in range(20)]
        results = [await client.result(h.id, timeout=15, workflow=wf_counted) for h in handles]
        assert results == [n * n for n in range(20)]
        infos = [await client.describe(h.id) for h in handles]
        assert {info.claims for info in infos} == {1}
        assert worker_a.owner != worker_b.owner
    assert calls == Counter({f"counted:{n}": 1 for n in range(20)})


# --- a step's return type changed between the crash and the resume ---------------------------


@bm.step(name="score")
async def score_v1() -> dict[str, float]:
    CALLS["score"] += 1
    return {"value": 0.9}


@bm.step(name="score")
async def score_v2() -> int:  # the deploy changed the return type
    CALLS["score"] += 1
    return 1


@bm.workflow
async def wf_scoring() -> object:
    value = await (score_v1() if FLAGS["branch"] == "first" else score_v2())
    await bm.wait_for("go")
    return value


async def test_changed_step_return_type_names_run_seq_and_step(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_scoring)
    await until_status(engine, handle.id, "waiting")
    FLAGS["branch"] = "second"  # "deploy" the new return type while the run waits
    await handle.signal("go")
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    failed = info.value
    assert failed.error_type == "bandmaster.errors.ReplayTypeMismatch"
    assert handle.id in failed.message
    assert "seq 1" in failed.message
    assert "'score'" in failed.message
    assert "int" in failed.message
    assert "\n" not in failed.message  # one line, not pydantic's multi-line dump
    cause = failed.__cause__
    assert isinstance(cause, bm.NonDeterminismError)
    assert (cause.run_id, cause.seq) == (handle.id, 1)
    assert calls == Counter(score=1)  # the recorded step was not run again


@bm.workflow(name="typed_input")
async def typed_input_v1(text: str) -> str:
    await bm.wait_for("go")
    return text


@bm.workflow(name="typed_input")
async def typed_input_v2(count: int) -> str:  # the deploy changed the parameter's type
    return str(count)


async def test_an_input_the_changed_signature_rejects_names_the_run(db_path: Path, until_status: Any) -> None:
    async with bm.Engine(db_path, workflows=[typed_input_v1], poll_interval=0.02) as old:
        handle = await old.start(typed_input_v1, "not a number")
        await until_status(old, handle.id, "waiting")
    async with bm.Engine(db_path, workflows=[typed_input_v2], poll_interval=0.02) as new:
        await new.signal(handle.id, "go")
        with pytest.raises(bm.RunFailed) as info:
            await new.result(handle.id, timeout=10)
    assert info.value.error_type == "bandmaster.errors.InvalidInput"
    assert f"input of workflow 'typed_input' (run {handle.id})" in info.value.message
