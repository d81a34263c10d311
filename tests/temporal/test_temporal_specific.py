"""Temporal-only behaviour: mistakes get specific errors that say what to do; engine-wide local
activities keep the timeline and retries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_workflows as wfs

import bandmaster as bm
from conftest import TemporalServer, free_port

pytestmark = pytest.mark.timeout(90)


def make_local_step() -> bm.Step[[], str]:
    @bm.step
    async def nested() -> str:
        return "never"

    return nested


nested_step = make_local_step()


@bm.workflow
async def calls_nested_step() -> str:
    return await nested_step()


@bm.workflow
async def passes_a_retry_object() -> str:
    response = await bm.call_model("shout", "x", retry=bm.Retry(attempts=2))
    return str(response.output)


@bm.workflow
async def passes_a_guard() -> str:
    response = await bm.call_model("shout", "x", guard=[bm.MaxTokens(100)])
    return str(response.output)


async def test_guards_on_temporal_fail_the_run_with_advice(temporal_server: TemporalServer) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-guard", workflows=[passes_a_guard], registry=wfs.registry()
    ) as engine:
        handle = await engine.start(passes_a_guard)
        with pytest.raises(bm.RunFailed, match=r"guards are Python objects") as failed:
            await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.UsageError)


async def test_a_step_defined_inside_a_function_fails_the_run_with_advice(
    temporal_server: TemporalServer,
) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-nested", workflows=[calls_nested_step]
    ) as e:
        handle = await e.start(calls_nested_step)
        with pytest.raises(bm.RunFailed, match="must be module-level") as failed:
            await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.UsageError)


async def test_call_model_policy_objects_belong_in_the_registry(temporal_server: TemporalServer) -> None:
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue="err-retry",
        workflows=[passes_a_retry_object],
        registry=wfs.registry(),
    ) as engine:
        handle = await engine.start(passes_a_retry_object)
        with pytest.raises(bm.RunFailed, match=r"alias policy of models\.yaml") as failed:
            await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.UsageError)


async def test_a_workflow_no_worker_hosts_fails_with_workflow_not_found(
    temporal_server: TemporalServer,
) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-unknown", workflows=[wfs.sleeper]
    ) as engine:
        handle = await engine.start("no_such_workflow", 1)
        with pytest.raises(bm.RunFailed, match="no workflow named 'no_such_workflow'") as failed:
            await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.WorkflowNotFound)


async def test_an_unreachable_server_is_a_usage_error_naming_the_target() -> None:
    target = f"127.0.0.1:{free_port()}"
    engine = bm.TemporalEngine(target, worker=False)
    with pytest.raises(bm.UsageError, match=re.escape(f"cannot reach the Temporal server at {target}")):
        await engine.open()


async def test_signal_to_a_finished_run_is_a_usage_error(temporal_server: TemporalServer) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-signal", workflows=[wfs.sleeper]
    ) as engine:
        handle = await engine.start(wfs.sleeper, 0.01)
        await handle.result(timeout=30)
        with pytest.raises(bm.UsageError, match="already completed"):
            await engine.signal(handle.id, "late", 1)


async def test_an_invalid_signal_payload_fails_the_wait_with_invalid_input(
    temporal_server: TemporalServer,
) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-payload", workflows=[wfs.typed_wait]
    ) as e:
        handle = await e.start(wfs.typed_wait)
        await e.signal(handle.id, "ticket", {"id": 1})
        with pytest.raises(bm.RunFailed, match="payload of signal 'ticket'") as failed:
            await handle.result(timeout=30)
        (wait,) = (await e.describe(handle.id)).steps
    assert isinstance(failed.value.__cause__, bm.InvalidInput)
    assert wait.status == "failed"


async def test_bad_inputs_are_rejected_before_reaching_temporal(temporal_server: TemporalServer) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-input", workflows=[wfs.review]
    ) as engine:
        with pytest.raises(bm.InvalidInput, match="input of workflow 'review'"):
            await engine.start(wfs.review, wfs.Ticket(id="T", text="x"), "not a number")
        handle = await engine.start(wfs.review, wfs.Ticket(id="T", text="x"), 60.0)
        with pytest.raises(bm.InvalidInput, match="payload of signal 'review' is not JSON-serialisable"):
            await engine.signal(handle.id, "review", object())
        with pytest.raises(bm.PayloadTooLarge):
            await engine.signal(handle.id, "review", "x" * (3 * 1024 * 1024))
        await engine.signal(handle.id, "review", "ok")  # the run is unharmed
        assert await handle.result(timeout=30) == "T:ok"


async def test_engine_wide_local_activities_keep_the_timeline(
    temporal_server: TemporalServer, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue="local-all",
        workflows=[wfs.ordered, wfs.retrying],
        local_activities=True,
    ) as engine:
        handle = await engine.start(wfs.ordered, log)
        assert await handle.result(timeout=30) == ["a", "b", "c"]
        info = await engine.describe(handle.id)
        retried = await engine.start(wfs.retrying, log, "retryable", 1)
        assert await retried.result(timeout=30) == "ok after 2"
        (flaky,) = (await engine.describe(retried.id)).steps
    assert [(s.seq, s.name, s.status, s.output) for s in info.steps] == [
        (1, "record", "completed", "a"),
        (2, "record", "completed", "b"),
        (3, "record", "completed", "c"),
    ]
    assert (flaky.status, flaky.attempts) == ("completed", 2)


def test_graph_workflows_are_refused_with_the_reason() -> None:
    from bandmaster.graph import End, Graph, Step

    graph = Graph(
        "shouting", [Step("shout", call="shout", next="done"), End("done")], steps={"shout": wfs.shout}
    )
    with pytest.raises(bm.UsageError, match="graphs do not run on the Temporal backend yet"):
        bm.TemporalEngine("localhost:7233", workflows=[graph.as_workflow()])


def test_two_workflows_with_one_name_are_refused() -> None:
    @bm.workflow(name="ordered")
    async def impostor(log: str) -> list[str]:
        return []

    with pytest.raises(bm.UsageError, match="two workflows are named 'ordered'"):
        bm.TemporalEngine("localhost:7233", workflows=[wfs.ordered, impostor])
