"""``bandmaster.testing``: the scripted model, the fake clock, the temporary engine, and the
pytest plugin's fixtures (used here directly, and in a fresh pytest run through the
``pytest11`` entry point)."""

from __future__ import annotations

from typing import Any

import pytest

import bandmaster as bm
from bandmaster.policies._breaker import BreakerState
from bandmaster.testing import FakeClock, ScriptedModel, temp_engine

pytest_plugins = ["pytester"]


async def test_scripted_model_answers_from_a_script_and_records_requests() -> None:
    queue = ScriptedModel(["first", ("second", 0.4), bm.RateLimited("slow down", retry_after=0.01)], name="q")
    assert (await queue.request(bm.ModelRequest(input="a"))).output == "first"
    second = await queue.request(bm.ModelRequest(input="b"))
    assert (second.output, second.confidence, second.model) == ("second", 0.4, "q")
    with pytest.raises(bm.RateLimited):
        await queue.request(bm.ModelRequest(input="c"))
    with pytest.raises(bm.UsageError, match="no answer for request 'd'"):
        await queue.request(bm.ModelRequest(input="d"))
    assert queue.texts == ["a", "b", "c", "d"]

    table = ScriptedModel({"hi": "hello"}, default="?", cost=0.5)
    assert [(await table.request(bm.ModelRequest(input=t))).output for t in ("hi", "bye")] == ["hello", "?"]
    assert (await table.request(bm.ModelRequest(input="hi"))).cost == 0.5
    echo = ScriptedModel(lambda req: {"output": req.text().upper(), "cost": 0.1}, cost=9.0)
    answer = await echo.request(bm.ModelRequest(input="shout"))
    assert (answer.output, answer.cost, echo.calls) == ("SHOUT", 0.1, 1)


def test_fake_clock_drives_a_breaker() -> None:
    clock = FakeClock()
    breaker = bm.Breaker(failures=2, window=10, reset=30)
    state = BreakerState()
    state.fail(breaker, clock())
    clock.advance(1)
    state.fail(breaker, clock())
    assert state.admit(breaker, clock()) == "refused"
    clock.advance(30)
    assert state.admit(breaker, clock.now()) == "trial"  # half-open: one trial call
    with pytest.raises(bm.UsageError, match="backwards"):
        clock.advance(-1)


async def test_temp_engine_runs_workflows_and_cleans_up() -> None:
    @bm.workflow
    async def double(x: int) -> int:
        return x * 2

    async with temp_engine([double]) as engine:
        path = engine.path
        assert await (await engine.start(double, 21)).result(timeout=10) == 42
    assert not path.exists()


@bm.step
async def lookup(ticket: str) -> str:
    return f"history of {ticket}"


@bm.workflow
async def reviewed(ticket: str) -> dict[str, Any]:
    """Every kind of journaled operation: replayed from the recording, never re-executed."""
    started = bm.now()
    token = bm.uuid()
    history = await lookup(ticket)
    await bm.sleep(0.01)
    answer = await bm.call_model("writer", history)
    review = await bm.wait_for("review", timeout=30)
    return {"answer": answer.output, "review": review, "token": str(token), "at": started.isoformat()}


async def test_fixtures_record_then_replay(
    bm_engine: bm.Engine, scripted_model: Any, fake_clock: FakeClock, replay_runs: Any
) -> None:
    writer = scripted_model(["draft one", "draft two"], name="writer", cost=0.01)
    assert isinstance(writer, ScriptedModel)
    assert fake_clock() == FakeClock().now()
    bm_engine.registry.register("writer", writer)
    ids = []
    for ticket in ("T-1", "T-2"):
        handle = await bm_engine.start(reviewed, ticket)
        await handle.signal("review", {"ok": True})
        ids.append(handle.id)
    results = [await bm_engine.result(run_id, timeout=20) for run_id in ids]

    report = await replay_runs(reviewed, db=bm_engine.path)

    report.assert_no_changes()
    assert writer.calls == 2  # the recording answered the replay
    assert [run.output for run in report.runs] == results  # now/uuid/wait answered as recorded
    assert report.recorded_cost == pytest.approx(0.02)


def test_plugin_loads_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import pytest
        import bandmaster as bm

        @bm.workflow
        async def hello(name: str) -> str:
            answer = await bm.call_model("greeter", name)
            return answer.output

        @pytest.mark.asyncio
        async def test_user(bm_engine, scripted_model, replay_runs):
            greeter = scripted_model({"ann": "hi ann"}, name="greeter")
            bm_engine.registry.register("greeter", greeter)
            assert await (await bm_engine.start(hello, "ann")).result(timeout=10) == "hi ann"
            report = await replay_runs(hello, db=bm_engine.path)
            report.assert_no_changes()
            assert greeter.calls == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
