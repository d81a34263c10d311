"""Errors and bad input: what is refused before anything is written, what a failed run
reports, and the client API's lookups."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm

CALLS: Counter[str] = Counter()


@pytest.fixture
def calls() -> Counter[str]:
    CALLS.clear()
    return CALLS


def run_rows(db_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT id, workflow, status FROM runs").fetchall()


@bm.workflow
async def wf_echo(value):  # type: ignore[no-untyped-def]  # unannotated: any JSON value
    CALLS["wf_echo"] += 1
    return value


# --- input ----------------------------------------------------------------------------------


async def test_unserialisable_input_is_refused_before_anything_is_written(
    engine: bm.Engine, db_path: Path, calls: Counter[str]
) -> None:
    with pytest.raises(bm.InvalidInput, match="input of workflow 'wf_echo'") as info:
        await engine.start(wf_echo, object())
    assert isinstance(info.value, ValueError)
    assert run_rows(db_path) == []
    assert await engine.list() == []
    assert calls["wf_echo"] == 0


async def test_oversized_input_is_refused(db_path: Path, calls: Counter[str]) -> None:
    async with bm.Engine(db_path, max_payload=1000, poll_interval=0.02) as engine:
        with pytest.raises(bm.PayloadTooLarge) as info:
            await engine.start(wf_echo, "x" * 2000)
        assert info.value.limit == 1000
        assert info.value.size > 1000
        assert "max_payload" in str(info.value)
        assert isinstance(info.value, bm.InvalidInput)
        assert run_rows(db_path) == []
        handle = await engine.start(wf_echo, "x" * 900)  # under the limit is fine
        assert await handle.result(timeout=10) == "x" * 900


async def test_wrong_arguments_are_invalid_input(engine: bm.Engine, db_path: Path) -> None:
    with pytest.raises(bm.InvalidInput, match="wf_echo"):
        await engine.start(wf_echo, 1, 2)
    with pytest.raises(bm.InvalidInput):
        await engine.start(wf_echo, nope=1)
    assert run_rows(db_path) == []


@bm.workflow
async def wf_typed(count: int, label: str = "x") -> str:
    return f"{label}{count}"


async def test_input_binds_keywords_and_defaults(engine: bm.Engine) -> None:
    handle = await engine.start(wf_typed, count=3)
    assert await handle.result(timeout=10) == "x3"
    assert (await handle.describe()).input == [3, "x"]


# --- step and workflow output -----------------------------------------------------------------


@bm.step
async def bad_output():  # type: ignore[no-untyped-def]
    CALLS["bad_output"] += 1
    return object()


@bm.workflow
async def wf_bad_output() -> Any:
    return await bad_output()


async def test_unserialisable_step_output_fails_the_step(engine: bm.Engine, calls: Counter[str]) -> None:
    handle = await engine.start(wf_bad_output)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type == "bandmaster.errors.InvalidInput"
    assert "'bad_output'" in info.value.message
    assert "not JSON-serialisable" in info.value.message
    assert isinstance(info.value.__cause__, bm.InvalidInput)
    (step,) = (await handle.describe()).steps
    assert (step.name, step.status, step.output) == ("bad_output", "failed", None)
    assert step.error is not None
    assert step.error["type"] == "bandmaster.errors.InvalidInput"
    assert "'bad_output'" in step.error["message"]
    assert calls["bad_output"] == 1


@bm.step
async def huge_output() -> str:
    return "y" * 5000


@bm.workflow
async def wf_huge_output() -> str:
    try:
        return await huge_output()
    except bm.PayloadTooLarge as exc:
        return f"too large: {exc.size} > {exc.limit}"


async def test_oversized_step_output_fails_the_step(db_path: Path) -> None:
    async with bm.Engine(db_path, max_payload=1000, poll_interval=0.02) as engine:
        handle = await engine.start(wf_huge_output)
        result = await handle.result(timeout=10)
        assert result.startswith("too large: ")
        assert result.endswith(" > 1000")
        (step,) = (await handle.describe()).steps
        assert step.status == "failed"
        assert step.error is not None
        assert step.error["type"] == "bandmaster.errors.PayloadTooLarge"


@bm.workflow
async def wf_bad_result() -> Any:
    return {1, 2, object()}


async def test_unserialisable_workflow_result_fails_the_run(engine: bm.Engine) -> None:
    handle = await engine.start(wf_bad_result)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type == "bandmaster.errors.InvalidInput"
    assert "result of workflow 'wf_bad_result'" in info.value.message


# --- failed runs ----------------------------------------------------------------------------------


class LedgerMismatch(Exception):
    def __init__(self, account: str, delta: int) -> None:
        super().__init__(f"{account} is off by {delta}")
        self.account, self.delta = account, delta


@bm.workflow
async def wf_raises_value_error(n: int) -> int:
    raise ValueError(f"boom {n}")


@bm.workflow
async def wf_raises_custom() -> int:
    raise LedgerMismatch("acct-9", 3)


async def test_failed_run_reports_type_message_traceback_and_cause(engine: bm.Engine) -> None:
    handle = await engine.start(wf_raises_value_error, 42)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    failed = info.value
    assert failed.run_id == handle.id
    assert failed.error_type == "builtins.ValueError"
    assert failed.message == "boom 42"
    assert "ValueError: boom 42" in failed.traceback
    assert "wf_raises_value_error" in failed.traceback
    assert f"run {handle.id} failed: builtins.ValueError: boom 42" == str(failed)
    cause = failed.__cause__
    assert type(cause) is ValueError
    assert str(cause) == "boom 42"
    info_ = await handle.describe()
    assert info_.status == "failed"
    assert info_.error is not None
    assert info_.error["type"] == "builtins.ValueError"


async def test_failed_run_cause_is_the_users_own_exception_type(engine: bm.Engine) -> None:
    handle = await engine.start(wf_raises_custom)
    with pytest.raises(bm.RunFailed) as info:
        await handle.result(timeout=10)
    assert info.value.error_type.endswith("LedgerMismatch")
    assert info.value.message == "acct-9 is off by 3"
    assert type(info.value.__cause__) is LedgerMismatch
    assert str(info.value.__cause__) == "acct-9 is off by 3"


async def test_failed_run_is_reported_the_same_by_another_engine(engine: bm.Engine, db_path: Path) -> None:
    handle = await engine.start(wf_raises_value_error, 7)
    with pytest.raises(bm.RunFailed):
        await handle.result(timeout=10)
    async with bm.Engine(db_path, worker=False) as client:
        with pytest.raises(bm.RunFailed, match="boom 7") as info:
            await client.result(handle.id, timeout=5)
        assert type(info.value.__cause__) is ValueError


# --- lookups -------------------------------------------------------------------------------------


async def test_unknown_workflow_name(engine: bm.Engine, db_path: Path) -> None:
    with pytest.raises(bm.WorkflowNotFound, match="nope") as info:
        await engine.start("nope")
    assert isinstance(info.value, LookupError)
    assert run_rows(db_path) == []


async def test_start_by_registered_name(db_path: Path) -> None:
    async with bm.Engine(db_path, workflows=[wf_typed], poll_interval=0.02) as engine:
        handle = await engine.start("wf_typed", 5, "n")
        assert await handle.result(timeout=10) == "n5"


async def test_unknown_run_id(engine: bm.Engine) -> None:
    with pytest.raises(bm.RunNotFound):
        await engine.describe("missing")
    with pytest.raises(bm.RunNotFound):
        await engine.result("missing", timeout=1)
    with pytest.raises(bm.RunNotFound):
        await engine.cancel("missing")
    with pytest.raises(bm.RunNotFound):
        await engine.signal("missing", "go")


async def test_result_timeout_raises_timeout_error(engine: bm.Engine) -> None:
    @bm.workflow
    async def wf_forever() -> None:
        await bm.wait_for("never")

    handle = await engine.start(wf_forever)
    with pytest.raises(TimeoutError):
        await handle.result(timeout=0.2)


# --- idempotent start, one-shot run, listing --------------------------------------------------------


async def test_start_with_the_same_run_id_is_idempotent(
    engine: bm.Engine, db_path: Path, calls: Counter[str]
) -> None:
    first = await engine.start(wf_echo, "one", run_id="order-1")
    second = await engine.start(wf_echo, "one", run_id="order-1")
    assert first.id == second.id == "order-1"
    assert (first.created, second.created) == (True, False)
    assert await second.result(timeout=10) == "one"  # the existing run, not a new one
    assert run_rows(db_path) == [("order-1", "wf_echo", "completed")]
    assert calls["wf_echo"] == 1
    third = await engine.start(wf_echo, "one", run_id="order-1")  # after it finished, too
    assert await third.result(timeout=10) == "one"
    assert calls["wf_echo"] == 1
    with pytest.raises(bm.IdempotencyConflict, match="another input"):  # another request, same id
        await engine.start(wf_echo, "two", run_id="order-1")
    assert calls["wf_echo"] == 1


async def test_a_run_id_used_by_another_workflow_is_refused(engine: bm.Engine, db_path: Path) -> None:
    await engine.start(wf_echo, "one", run_id="shared")
    with pytest.raises(bm.IdempotencyConflict, match="wf_echo"):
        await engine.start(wf_typed, 1, run_id="shared")
    assert [(r[0], r[1]) for r in run_rows(db_path)] == [("shared", "wf_echo")]


def test_bm_run_one_shot(db_path: Path, calls: Counter[str]) -> None:
    assert bm.run(wf_typed, 2, label="y", db=db_path) == "y2"
    assert bm.run(wf_echo, {"k": [1, 2]}, db=db_path, run_id="once") == {"k": [1, 2]}
    assert bm.run(wf_echo, {"k": [1, 2]}, db=db_path, run_id="once") == {"k": [1, 2]}
    with pytest.raises(bm.IdempotencyConflict):
        bm.run(wf_echo, "another input", db=db_path, run_id="once")
    assert calls["wf_echo"] == 1
    assert len(run_rows(db_path)) == 2


def test_bm_run_raises_run_failed(db_path: Path) -> None:
    with pytest.raises(bm.RunFailed, match="boom 1"):
        bm.run(wf_raises_value_error, 1, db=db_path)


@bm.workflow
async def wf_waits() -> Any:
    return await bm.wait_for("go")


async def test_list_filters_by_status_and_workflow(engine: bm.Engine, until_status: Any) -> None:
    done = [await engine.start(wf_echo, i) for i in range(3)]
    for handle in done:
        await handle.result(timeout=10)
    waiting = await engine.start(wf_waits)
    await until_status(engine, waiting.id, "waiting")
    failed = await engine.start(wf_raises_value_error, 1)
    with pytest.raises(bm.RunFailed):
        await failed.result(timeout=10)

    everything = await engine.list()
    assert len(everything) == 5
    assert everything[0].id == failed.id  # newest first
    assert all(info.steps == [] for info in everything)
    assert {r.id for r in await engine.list(status="completed")} == {h.id for h in done}
    assert [r.id for r in await engine.list(status="waiting")] == [waiting.id]
    assert [r.id for r in await engine.list(workflow="wf_waits")] == [waiting.id]
    assert {r.id for r in await engine.list(workflow="wf_echo", status="completed")} == {h.id for h in done}
    assert await engine.list(workflow="wf_echo", status="failed") == []
    assert len(await engine.list(limit=2)) == 2
    assert [r.id for r in await engine.list(limit=2, offset=4)] == [done[0].id]


# --- definition and usage mistakes -------------------------------------------------------------------


def test_workflow_definition_mistakes() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(bm.UsageError, match="async"):
        bm.workflow(not_async)  # type: ignore[arg-type]

    async def star_args(*items: Any) -> None:
        pass

    with pytest.raises(bm.UsageError, match=r"\*args"):
        bm.workflow(star_args)

    named = bm.workflow(name="triage", version="2")(wf_echo.fn)
    assert (named.name, named.version) == ("triage", "2")


async def test_engine_usage_mistakes(db_path: Path) -> None:
    with pytest.raises(bm.UsageError):
        bm.Engine(db_path, concurrency=0)
    engine = bm.Engine(db_path)
    with pytest.raises(bm.UsageError, match="not open"):
        await engine.describe("x")
    with pytest.raises(bm.UsageError):
        engine.register(lambda: None)  # type: ignore[arg-type]
    engine.register(wf_echo)
    engine.register(wf_echo)  # the same workflow twice is fine
    clash = bm.workflow(name="wf_echo")(wf_typed.fn)
    with pytest.raises(bm.UsageError, match="two workflows"):
        engine.register(clash)
    async with bm.Engine(db_path, worker=False) as client:
        with pytest.raises(bm.UsageError):
            await client.recover()


async def test_close_is_idempotent_and_open_twice_is_harmless(db_path: Path) -> None:
    engine = bm.Engine(db_path, poll_interval=0.02)
    await engine.open()
    await engine.open()
    handle = await engine.start(wf_echo, "ok")
    assert await handle.result(timeout=10) == "ok"
    await engine.close()
    await engine.close()
    await asyncio.sleep(0)


# --- the exception tree ----------------------------------------------------------------------------


def test_exception_tree() -> None:
    assert issubclass(bm.Cancelled, BaseException)
    assert not issubclass(bm.Cancelled, Exception)
    assert issubclass(bm.Cancelled, asyncio.CancelledError)
    for usage in (
        bm.InvalidInput,
        bm.PayloadTooLarge,
        bm.WorkflowNotFound,
        bm.RunNotFound,
        bm.NonDeterminismError,
    ):
        assert issubclass(usage, bm.UsageError)
    assert issubclass(bm.InvalidInput, ValueError)
    assert issubclass(bm.StepTimeout, bm.RetryableError)
    assert issubclass(bm.StepTimeout, TimeoutError)
    assert issubclass(bm.RateLimited, bm.RetryableError)
    assert issubclass(bm.ProviderUnavailable, bm.RetryableError)
    assert not issubclass(bm.InvalidRequest, bm.RetryableError)
    assert issubclass(bm.WaitTimeout, TimeoutError)
    for error in (bm.UsageError, bm.StepError, bm.RunFailed, bm.RunCancelled, bm.StoreError, bm.WaitTimeout):
        assert issubclass(error, bm.BandmasterError)


def test_errors_carry_their_data() -> None:
    exhausted = bm.RetriesExhausted("classify", [bm.StepTimeout("a"), bm.RateLimited("b", retry_after=2.0)])
    assert exhausted.step == "classify"
    assert [str(e) for e in exhausted.errors] == ["a", "b"]
    assert "2 attempts" in str(exhausted)
    assert "RateLimited: b" in str(exhausted)
    assert bm.RateLimited(retry_after=1.5).retry_after == 1.5
    failed = bm.RunFailed("r1", {"type": "builtins.KeyError", "message": "'k'", "traceback": "tb"})
    assert (failed.run_id, failed.error_type, failed.message, failed.traceback) == (
        "r1",
        "builtins.KeyError",
        "'k'",
        "tb",
    )


def test_a_sync_function_is_not_a_workflow() -> None:
    def not_async(x: int) -> int:
        return x

    with pytest.raises(bm.UsageError, match="needs an async function"):
        bm.workflow(not_async)  # type: ignore[arg-type]


def test_star_args_cannot_be_journaled() -> None:
    async def variadic(*items: int) -> int:
        return len(items)

    with pytest.raises(bm.UsageError, match="cannot be journaled"):
        bm.workflow(variadic)


def test_two_workflows_with_one_name_are_refused() -> None:
    @bm.workflow(name="same")
    async def first() -> None: ...

    @bm.workflow(name="same")
    async def second() -> None: ...

    with pytest.raises(bm.UsageError, match="two workflows are named 'same'"):
        bm.Engine(":memory:", workflows=[first, second])


def test_bad_step_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        bm.step(timeout=0)(lambda: None)
