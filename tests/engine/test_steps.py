"""Steps: journaling, sync/async, pydantic results, deterministic numbering, timeouts,
retries and the attempts they leave in the journal."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

import bandmaster as bm

CALLS: Counter[str] = Counter()
SEEN: list[Any] = []


@pytest.fixture
def calls() -> Counter[str]:
    CALLS.clear()
    SEEN.clear()
    return CALLS


class Verdict(BaseModel):
    label: str
    score: float


# --- plain steps -----------------------------------------------------------------------


@bm.step
def add_sync(a: int, b: int) -> int:
    CALLS["add_sync"] += 1
    return a + b


@bm.step
async def add_async(a: int, b: int) -> int:
    CALLS["add_async"] += 1
    await asyncio.sleep(0)
    return a + b


@bm.workflow
async def wf_add(a: int, b: int) -> int:
    x = await add_sync(a, b)
    return await add_async(x, b)


async def test_sync_and_async_steps_are_journaled(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_add, 2, 3)
    assert await handle.result(timeout=10) == 8
    info = await handle.describe()
    assert info.status == "completed"
    assert info.input == [2, 3]
    assert info.output == 8
    assert [(s.seq, s.name, s.kind, s.status, s.output, s.attempts) for s in info.steps] == [
        (1, "add_sync", "step", "completed", 5, 1),
        (2, "add_async", "step", "completed", 8, 1),
    ]
    assert all(s.duration is not None and s.duration >= 0 for s in info.steps)
    assert calls == Counter(add_sync=1, add_async=1)


async def test_a_step_outside_a_workflow_just_runs(db_path: Any, calls: Counter[str]) -> None:
    assert add_sync(1, 2) == 3  # the plain function: not even a coroutine
    assert await add_async(1, 2) == 3
    assert calls == Counter(add_sync=1, add_async=1)
    assert not db_path.exists()  # nothing touched a journal


@bm.workflow
async def wf_add_async_only(a: int, b: int) -> int:
    return await add_async(await add_async(a, b), b)


async def test_a_workflow_called_directly_runs_without_a_journal(db_path: Any, calls: Counter[str]) -> None:
    assert await wf_add_async_only(1, 1) == 3
    assert calls == Counter(add_async=2)
    assert not db_path.exists()


async def test_a_workflow_with_sync_steps_called_directly(calls: Counter[str]) -> None:
    assert await wf_add(1, 1) == 3
    assert calls == Counter(add_sync=1, add_async=1)


def test_step_decorator_forms_and_validation() -> None:
    assert isinstance(add_sync, bm.Step)
    assert add_sync.name == "add_sync"
    assert add_sync.__name__ == "add_sync"
    named = bm.step(name="renamed", timeout=1.5)(lambda: 1)
    assert (named.name, named.timeout) == ("renamed", 1.5)
    assert named.retry.attempts == 1  # no retry unless asked
    with pytest.raises(ValueError, match="timeout"):
        bm.step(timeout=0)(lambda: 1)


# --- results come back as the annotated type --------------------------------------------


@bm.step
async def classify(text: str) -> Verdict:
    CALLS["classify"] += 1
    return Verdict(label=text.upper(), score=0.9)


@bm.step
async def classify_as_dict(text: str) -> Verdict:
    return {"label": text, "score": "0.5"}  # type: ignore[return-value]


@bm.workflow
async def wf_models(text: str) -> Verdict:
    SEEN.append(type(await classify_as_dict(text)))
    return await classify(text)


async def test_pydantic_results_are_models_live_and_in_result(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_models, "spam")
    result = await handle.result(timeout=10)
    assert isinstance(result, Verdict)
    assert result == Verdict(label="SPAM", score=0.9)
    # a dict returned where a model is declared is validated into the model, live too
    assert [Verdict] == SEEN
    info = await handle.describe()
    assert info.steps[0].output == {"label": "spam", "score": 0.5}
    assert info.steps[1].output == {"label": "SPAM", "score": 0.9}


@bm.workflow
async def wf_classify_then_wait(text: str) -> dict[str, Any]:
    CALLS["wf_classify_then_wait"] += 1
    verdict = await classify(text)
    SEEN.append(verdict)
    go = await bm.wait_for("go")
    return {"label": verdict.label, "go": go}


async def test_replayed_step_returns_recorded_model_without_rerunning(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_classify_then_wait, "ham")
    await until_status(engine, handle.id, "waiting")
    assert calls["classify"] == 1
    await handle.signal("go", "yes")
    assert await handle.result(timeout=10) == {"label": "HAM", "go": "yes"}
    assert calls["wf_classify_then_wait"] == 2  # the coroutine was evicted and replayed
    assert calls["classify"] == 1  # ... but the recorded step was not executed again
    assert len(SEEN) == 2
    assert all(type(v) is Verdict for v in SEEN)
    assert SEEN[0] == SEEN[1]


async def test_describe_from_a_second_engine_on_the_same_file(engine: bm.Engine, db_path: Any) -> None:
    handle = await engine.start(wf_models, "eggs")
    await handle.result(timeout=10)
    async with bm.Engine(db_path, worker=False) as other:
        info = await other.describe(handle.id)
        assert info.status == "completed"
        assert [s.name for s in info.steps] == ["classify_as_dict", "classify"]
        assert info.output == {"label": "EGGS", "score": 0.9}
        # without the workflow registered, the client returns plain JSON
        assert await other.result(handle.id, timeout=5) == {"label": "EGGS", "score": 0.9}
        assert await other.result(handle.id, timeout=5, workflow=wf_models) == Verdict(
            label="EGGS", score=0.9
        )


# --- deterministic numbering ------------------------------------------------------------


@bm.step
async def echo_after(tag: str, delay: float) -> str:
    CALLS[f"echo_after:{tag}"] += 1
    await asyncio.sleep(delay)
    return tag


@bm.workflow
async def wf_gather() -> list[str]:
    tags = await asyncio.gather(echo_after("a", 0.15), echo_after("b", 0.0), echo_after("c", 0.05))
    await bm.wait_for("go")
    return [*tags, await echo_after("d", 0.0)]


async def test_gather_numbers_steps_by_call_order(
    engine: bm.Engine, calls: Counter[str], until_status: Any
) -> None:
    handle = await engine.start(wf_gather)
    info = await until_status(engine, handle.id, "waiting")
    steps = [s for s in info.steps if s.kind == "step"]
    assert [(s.seq, s.output) for s in steps] == [(1, "a"), (2, "b"), (3, "c")]
    assert steps[1].ended_at is not None
    assert steps[0].ended_at is not None
    assert steps[1].ended_at < steps[0].ended_at  # b finished first, yet kept seq 2
    await handle.signal("go")
    assert await handle.result(timeout=10) == ["a", "b", "c", "d"]
    info = await handle.describe()
    assert [(s.seq, s.kind, s.name) for s in info.steps] == [
        (1, "step", "echo_after"),
        (2, "step", "echo_after"),
        (3, "step", "echo_after"),
        (4, "wait", "go"),
        (5, "step", "echo_after"),
    ]
    assert set(calls.values()) == {1}  # replay re-ran none of a, b, c


# --- step context -----------------------------------------------------------------------


@bm.step
async def key_async() -> list[Any]:
    ctx = bm.current_step()
    assert ctx is not None
    return [ctx.idempotency_key, ctx.seq, ctx.name, ctx.attempt]


@bm.step
def key_sync() -> list[Any]:
    ctx = bm.current_step()  # a sync step runs in a thread that sees the context too
    assert ctx is not None
    return [ctx.idempotency_key, ctx.seq, ctx.name, ctx.attempt]


@bm.step(retry=bm.Retry(attempts=3, initial=0.0))
async def key_second_attempt() -> list[Any]:
    ctx = bm.current_step()
    assert ctx is not None
    SEEN.append(ctx.idempotency_key)
    if ctx.attempt == 1:
        raise bm.ProviderUnavailable("first attempt fails")
    return [ctx.idempotency_key, ctx.attempt]


@bm.workflow
async def wf_keys() -> list[Any]:
    assert bm.current_step() is None
    return [await key_async(), await key_sync(), await key_second_attempt()]


async def test_current_step_and_idempotency_key(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_keys)
    run_id = handle.id
    assert await handle.result(timeout=10) == [
        [f"{run_id}:1", 1, "key_async", 1],
        [f"{run_id}:2", 2, "key_sync", 1],
        [f"{run_id}:3", 2],  # second attempt, same key
    ]
    assert [f"{run_id}:3", f"{run_id}:3"] == SEEN  # stable across retries
    assert bm.current_step() is None


# --- nested steps -------------------------------------------------------------------------


@bm.step
async def inner_async(x: int) -> int:
    CALLS["inner_async"] += 1
    ctx = bm.current_step()
    SEEN.append(ctx.name if ctx else None)
    return x * 10


@bm.step
async def outer_async(x: int) -> int:
    return await inner_async(x) + await inner_async(x + 1)


@bm.step
def inner_sync(x: int) -> int:
    CALLS["inner_sync"] += 1
    return x + 1


@bm.step
def outer_sync(x: int) -> int:
    return inner_sync(inner_sync(x))


@bm.workflow
async def wf_nested(x: int) -> list[int]:
    return [await outer_async(x), await outer_sync(x)]


async def test_nested_step_calls_are_not_journaled(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_nested, 1)
    assert await handle.result(timeout=10) == [30, 3]
    info = await handle.describe()
    assert [(s.seq, s.name) for s in info.steps] == [(1, "outer_async"), (2, "outer_sync")]
    assert calls == Counter(inner_async=2, inner_sync=2)
    assert SEEN == ["outer_async", "outer_async"]  # the inner call runs as part of the outer step


# --- timeouts and retries -----------------------------------------------------------------


@bm.step(timeout=0.05, retry=bm.Retry(attempts=3, initial=0.01, jitter=False))
async def always_hangs() -> str:
    CALLS["always_hangs"] += 1
    await asyncio.sleep(30)
    return "never"


@bm.workflow
async def wf_hangs() -> dict[str, Any]:
    try:
        await always_hangs()
    except bm.RetriesExhausted as exc:
        return {
            "step": exc.step,
            "errors": [type(e).__name__ for e in exc.errors],
            "cause": type(exc.__cause__).__name__,
        }
    return {}


async def test_timeouts_raise_step_timeout_and_are_retried_until_exhausted(
    engine: bm.Engine, calls: Counter[str]
) -> None:
    handle = await engine.start(wf_hangs)
    assert await handle.result(timeout=10) == {
        "step": "always_hangs",
        "errors": ["StepTimeout", "StepTimeout", "StepTimeout"],
        "cause": "StepTimeout",
    }
    assert calls["always_hangs"] == 3
    (step,) = (await handle.describe()).steps
    assert (step.status, step.attempts) == ("failed", 3)
    assert step.error is not None
    assert step.error["type"] == "bandmaster.errors.RetriesExhausted"
    assert [e["type"] for e in step.error["errors"]] == ["bandmaster.errors.StepTimeout"] * 3
    assert len(step.meta["attempt_errors"]) == 3
    assert all(e.startswith("StepTimeout: ") and "always_hangs" in e for e in step.meta["attempt_errors"])


@bm.step(timeout=0.05, retry=bm.Retry(attempts=3, initial=0.0))
async def slow_then_fast() -> str:
    CALLS["slow_then_fast"] += 1
    if CALLS["slow_then_fast"] == 1:
        await asyncio.sleep(30)
    return "fast"


@bm.workflow
async def wf_slow_then_fast() -> str:
    return await slow_then_fast()


async def test_a_timed_out_attempt_is_retried_and_recorded(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_slow_then_fast)
    assert await handle.result(timeout=10) == "fast"
    (step,) = (await handle.describe()).steps
    assert (step.status, step.attempts, step.output) == ("completed", 2, "fast")
    (error,) = step.meta["attempt_errors"]
    assert error.startswith("StepTimeout: ")
    assert "slow_then_fast" in error
    assert "attempt 1" in error


@bm.step(timeout=0.05)
async def hangs_once() -> str:
    await asyncio.sleep(30)
    return "never"


@bm.workflow
async def wf_hangs_once() -> str:
    return await hangs_once()


async def test_timeout_without_retry_fails_the_run_with_step_timeout(engine: bm.Engine) -> None:
    handle = await engine.start(wf_hangs_once)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type == "bandmaster.errors.StepTimeout"
    assert isinstance(info.value.__cause__, bm.StepTimeout)
    assert isinstance(info.value.__cause__, TimeoutError)


@bm.step(retry=bm.Retry(attempts=4, initial=0.0))
async def flaky() -> str:
    CALLS["flaky"] += 1
    if CALLS["flaky"] < 3:
        raise bm.ProviderUnavailable(f"down {CALLS['flaky']}")
    return "up"


@bm.workflow
async def wf_flaky() -> str:
    return await flaky()


async def test_retryable_errors_are_retried_and_attempt_errors_recorded(
    engine: bm.Engine, calls: Counter[str]
) -> None:
    handle = await engine.start(wf_flaky)
    assert await handle.result(timeout=10) == "up"
    (step,) = (await handle.describe()).steps
    assert (step.status, step.attempts) == ("completed", 3)
    assert step.meta["attempt_errors"] == ["ProviderUnavailable: down 1", "ProviderUnavailable: down 2"]
    # When each failed attempt ended and the wait after it: a timeline places the retries there.
    failures = step.meta["attempt_failures"]
    assert len(failures) == 2
    assert step.ended_at is not None
    assert step.started_at.timestamp() <= failures[0][0] <= failures[1][0] <= step.ended_at.timestamp()
    assert all(delay >= 0 for _, delay in failures)
    assert calls["flaky"] == 3


@bm.step(retry=bm.Retry(attempts=5, initial=0.0))
async def rejected() -> str:
    CALLS["rejected"] += 1
    raise bm.InvalidRequest("422: bad schema")


@bm.workflow
async def wf_rejected() -> str:
    return await rejected()


async def test_non_retryable_error_fails_after_one_attempt(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_rejected)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type == "bandmaster.errors.InvalidRequest"
    assert info.value.message == "422: bad schema"
    assert calls["rejected"] == 1
    (step,) = (await handle.describe()).steps
    assert (step.status, step.attempts) == ("failed", 1)
    assert step.error is not None
    assert step.error["type"] == "bandmaster.errors.InvalidRequest"
    assert step.meta["attempt_errors"] == ["InvalidRequest: 422: bad schema"]
    assert len(step.meta["attempt_failures"]) == 1


@bm.step(retry=bm.Retry(attempts=5, initial=0.0))
async def transient_then_fatal() -> str:
    CALLS["transient_then_fatal"] += 1
    if CALLS["transient_then_fatal"] == 1:
        raise bm.RateLimited("slow down", retry_after=0.01)
    raise bm.AuthenticationFailed("401")


@bm.workflow
async def wf_transient_then_fatal() -> str:
    return await transient_then_fatal()


async def test_a_non_retryable_error_after_retries_is_raised_as_itself(
    engine: bm.Engine, calls: Counter[str]
) -> None:
    handle = await engine.start(wf_transient_then_fatal)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type == "bandmaster.errors.AuthenticationFailed"
    assert calls["transient_then_fatal"] == 2
    (step,) = (await handle.describe()).steps
    assert step.attempts == 2
    assert step.meta["attempt_errors"] == ["RateLimited: slow down", "AuthenticationFailed: 401"]


@bm.step(retry=bm.Retry(attempts=2, initial=0.0))
def sync_flaky() -> str:
    CALLS["sync_flaky"] += 1
    if CALLS["sync_flaky"] == 1:
        raise ConnectionError("reset by peer")
    return "ok"


@bm.workflow
async def wf_sync_flaky() -> str:
    return await sync_flaky()


async def test_sync_steps_are_retried_too(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_sync_flaky)
    assert await handle.result(timeout=10) == "ok"
    (step,) = (await handle.describe()).steps
    assert step.attempts == 2
    assert step.meta["attempt_errors"] == ["ConnectionError: reset by peer"]
    assert len(step.meta["attempt_failures"]) == 1
