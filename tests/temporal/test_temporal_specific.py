"""Temporal-only behaviour: mistakes get specific errors that say what to do; engine-wide local
activities keep the timeline and retries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_workflows as wfs
from temporal_support import TemporalServer, free_port

import bandmaster as bm

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
    response = await bm.call_model("shout", "x", retry=bm.Retry(attempts=2, retry_on=lambda exc: True))
    return str(response.output)


class LocalGuard(bm.Guard):
    name = "local"


def make_local_guard() -> bm.Guard:
    class Nested(bm.Guard):
        def to_config(self) -> dict[str, object]:
            return {}

    return Nested()


nested_guard = make_local_guard()


@bm.workflow
async def passes_a_guard_without_config() -> str:
    response = await bm.call_model("shout", "x", guard=[LocalGuard()])
    return str(response.output)


@bm.workflow
async def passes_a_nested_guard_class() -> str:
    response = await bm.call_model("shout", "x", guard=[nested_guard])
    return str(response.output)


@bm.workflow
async def passes_a_lambda_classifier() -> str:
    response = await bm.call_model("shout", "x", guard=[bm.BannedTopics(classifier=lambda text: 0.0)])
    return str(response.output)


@pytest.mark.parametrize(
    ("workflow", "advice"),
    [
        (passes_a_guard_without_config, r"give LocalGuard a to_config\(\) method"),
        (passes_a_nested_guard_class, r"is not defined at module level"),
        (passes_a_lambda_classifier, r"config 'classifier'.*is not defined at module level"),
    ],
)
async def test_guards_that_cannot_travel_fail_the_run_with_advice(
    temporal_server: TemporalServer, workflow: bm.Workflow[[], str], advice: str
) -> None:
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue=f"err-{workflow.name}",
        workflows=[workflow],
        registry=wfs.registry(),
    ) as engine:
        handle = await engine.start(workflow)
        with pytest.raises(bm.RunFailed, match=advice) as failed:
            await handle.result(timeout=30)
        assert not (await engine.describe(handle.id)).steps  # no model was called
    assert isinstance(failed.value.__cause__, bm.UsageError)


@bm.workflow
async def passes_a_registry_object() -> str:
    response = await bm.call_model("shout", "x", registry=wfs.registry())
    return str(response.output)


async def test_a_registry_object_in_workflow_code_fails_the_run_with_advice(
    temporal_server: TemporalServer,
) -> None:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="err-registry", workflows=[passes_a_registry_object]
    ) as engine:
        handle = await engine.start(passes_a_registry_object)
        with pytest.raises(bm.RunFailed, match=r"give the worker the registry") as failed:
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


async def test_a_retry_predicate_cannot_travel_and_fails_the_run_with_advice(
    temporal_server: TemporalServer,
) -> None:
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue="err-retry",
        workflows=[passes_a_retry_object],
        registry=wfs.registry(),
    ) as engine:
        handle = await engine.start(passes_a_retry_object)
        with pytest.raises(
            bm.RunFailed, match=r"a predicate cannot travel there; give retry_on exception types"
        ) as failed:
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


async def test_a_worker_that_does_not_host_the_graph_cannot_run_its_steps() -> None:
    from bandmaster.temporal._activities import resolve_step

    with pytest.raises(bm.UsageError, match="a step of a graph this worker does not host"):
        resolve_step("graph:nowhere:shout", "no-such-queue")


def test_two_workflows_with_one_name_are_refused() -> None:
    @bm.workflow(name="ordered")
    async def impostor(log: str) -> list[str]:
        return []

    with pytest.raises(bm.UsageError, match="two workflows are named 'ordered'"):
        bm.TemporalEngine("localhost:7233", workflows=[wfs.ordered, impostor])


def test_a_dev_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    server = TemporalServer(tmp_path / "no-such-dir" / "temporal.db", tmp_path / "server.log")
    with pytest.raises(bm.BackendUnavailable, match="temporal dev server exited"):
        server.start(timeout=60)
    assert server.proc is not None
    assert server.proc.poll() is not None  # nothing left running
