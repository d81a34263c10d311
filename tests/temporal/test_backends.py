"""The engine's core semantics, checked with the same test code on both backends: embedded
(SQLite) and Temporal (a real dev server)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_workflows as wfs
from temporal_support import EngineFactory

import bandmaster as bm

pytestmark = pytest.mark.timeout(90)


async def test_steps_and_gather_are_numbered_by_call_order(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.ordered])
    handle = await engine.start(wfs.ordered, log)
    assert await handle.result(timeout=30) == ["a", "b", "c"]
    info = await engine.describe(handle.id)
    assert info.status == "completed"
    assert [(s.seq, s.name, s.kind, s.status) for s in info.steps] == [
        (1, "record", "step", "completed"),
        (2, "record", "step", "completed"),
        (3, "record", "step", "completed"),
    ]
    assert [s.output for s in info.steps] == ["a", "b", "c"]
    assert info.steps[1].duration is not None
    assert info.steps[1].duration >= 0.25
    lines = await asyncio.to_thread(Path(log).read_text)
    assert lines.splitlines() == ["a", "c", "b"]  # c really finished first


async def test_retryable_errors_are_retried(make_engine: EngineFactory, tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.retrying])
    handle = await engine.start(wfs.retrying, log, "retryable", 2)
    assert await handle.result(timeout=30) == "ok after 3"
    (row,) = (await engine.describe(handle.id)).steps
    assert (row.status, row.attempts) == ("completed", 3)


async def test_retries_exhausted_after_the_last_attempt(make_engine: EngineFactory, tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.retrying])
    handle = await engine.start(wfs.retrying, log, "retryable", 5)
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.RetriesExhausted)
    assert "after 3 attempts" in failed.value.message
    assert wfs.count(log, "flaky-retryable") == 3


async def test_non_retryable_errors_fail_at_once(make_engine: EngineFactory, tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.retrying])
    handle = await engine.start(wfs.retrying, log, "invalid", 1)
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.InvalidRequest)
    assert wfs.count(log, "flaky-invalid") == 1
    (row,) = (await engine.describe(handle.id)).steps
    assert row.status == "failed"
    assert row.error is not None
    assert row.error["type"] == "bandmaster.errors.InvalidRequest"


async def test_step_timeout_raises_step_timeout_in_the_workflow(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.timing_out])
    assert await (await engine.start(wfs.timing_out, 0.0)).result(timeout=30) == "done"
    assert await (await engine.start(wfs.timing_out, 5.0)).result(timeout=30) == "timed out"


async def test_durable_sleep(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.sleeper])
    handle = await engine.start(wfs.sleeper, 1.5)
    assert 1.5 <= await handle.result(timeout=30) < 10
    sleeps = [s for s in (await engine.describe(handle.id)).steps if s.kind == "sleep"]
    assert [(s.name, s.status) for s in sleeps] == [("sleep", "completed")]
    assert sleeps[0].duration is not None
    assert sleeps[0].duration >= 1.4


async def test_wait_for_returns_the_signal_payload(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.review])
    handle = await engine.start(wfs.review, wfs.Ticket(id="T-1", text="hi"), 60.0)
    info = await _until(engine, handle.id, lambda i: any(s.kind == "wait" for s in i.steps))
    assert info.status == "waiting"
    await engine.signal(handle.id, "review", "hold")
    assert await handle.result(timeout=30) == "T-1:hold"
    (wait,) = (await engine.describe(handle.id)).steps
    assert (wait.name, wait.kind, wait.status, wait.output) == ("review", "wait", "completed", "hold")


async def test_a_signal_sent_before_the_wait_is_kept(make_engine: EngineFactory, tmp_path: Path) -> None:
    str(tmp_path / "effects.log")
    engine = await make_engine([wfs.review])
    handle = await engine.start(wfs.review, wfs.Ticket(id="T-2", text="hi"), 60.0)
    await engine.signal(handle.id, "review", "early")
    assert await handle.result(timeout=30) == "T-2:early"


async def test_wait_for_times_out_with_its_default(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.review])
    handle = await engine.start(wfs.review, wfs.Ticket(id="T-3", text="hi"), 0.5)
    assert await handle.result(timeout=30) == "T-3:send"
    (wait,) = (await engine.describe(handle.id)).steps
    assert wait.meta.get("timed_out") is True
    assert wait.output == "send"


async def test_wait_for_without_default_raises_wait_timeout(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.strict_review])
    handle = await engine.start(wfs.strict_review)
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, bm.WaitTimeout)


async def test_cancel_a_waiting_run(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.forever])
    handle = await engine.start(wfs.forever)
    await _until(engine, handle.id, lambda i: any(s.kind == "wait" for s in i.steps))
    await engine.cancel(handle.id)
    with pytest.raises(bm.RunCancelled):
        await handle.result(timeout=30)
    assert (await engine.describe(handle.id)).status == "cancelled"


async def test_pydantic_values_round_trip(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.triage])
    handle = await engine.start(wfs.triage, wfs.Ticket(id="T-4", text="I was charged twice"))
    intent = await handle.result(timeout=30)
    assert intent == wfs.Intent(label="billing", confidence=0.9)
    info = await engine.describe(handle.id)
    assert info.input == [{"id": "T-4", "text": "I was charged twice"}]
    assert info.output == {"label": "billing", "confidence": 0.9}
    assert [(s.name, s.status, s.output) for s in info.steps] == [
        ("classify", "completed", {"label": "billing", "confidence": 0.9})
    ]


async def test_failed_run_keeps_its_error(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.failing])
    handle = await engine.start(wfs.failing)
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert isinstance(failed.value.__cause__, ValueError)
    assert failed.value.error_type == "builtins.ValueError"
    info = await engine.describe(handle.id)
    assert info.status == "failed"
    assert info.error is not None
    assert "the step broke" in info.error["message"]


async def test_start_with_run_id_is_idempotent(make_engine: EngineFactory, tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.ordered, wfs.sleeper])
    first = await engine.start(wfs.ordered, log, run_id="order-1")
    await first.result(timeout=30)
    again = await engine.start(wfs.ordered, log, run_id="order-1")
    assert await again.result(timeout=30) == ["a", "b", "c"]
    assert wfs.count(log, "a") == 1
    with pytest.raises(bm.IdempotencyConflict, match="already used"):
        await engine.start(wfs.sleeper, 0.1, run_id="order-1")


async def test_list_filters_by_workflow(make_engine: EngineFactory, tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.ordered, wfs.sleeper])
    ordered = await engine.start(wfs.ordered, log)
    await ordered.result(timeout=30)
    await (await engine.start(wfs.sleeper, 0.01)).result(timeout=30)
    runs = await _until_list(engine, "ordered", 1)
    assert [(r.id, r.workflow, r.status) for r in runs] == [(ordered.id, "ordered", "completed")]


async def test_unknown_run_is_run_not_found(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.ordered])
    with pytest.raises(bm.RunNotFound):
        await engine.describe("no-such-run")


async def _until(engine: object, run_id: str, check: object, timeout: float = 20.0) -> bm.RunInfo:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info: bm.RunInfo = await engine.describe(run_id)  # type: ignore[attr-defined]
        if check(info):  # type: ignore[operator]
            return info
        assert loop.time() < deadline, f"run {run_id}: {info}"
        await asyncio.sleep(0.05)


async def _until_list(engine: object, workflow: str, n: int, timeout: float = 20.0) -> list[bm.RunInfo]:
    # Temporal's visibility store is eventually consistent: poll briefly.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        runs: list[bm.RunInfo] = await engine.list(workflow=workflow, status="completed")  # type: ignore[attr-defined]
        if len(runs) >= n or loop.time() > deadline:
            return runs
        await asyncio.sleep(0.1)


async def test_call_model_with_fallback_from_the_registry(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.ask], registry=wfs.registry())
    handle = await engine.start(wfs.ask, "hello")
    assert await handle.result(timeout=30) == "HELLO HELLO? shout"
    info = await engine.describe(handle.id)
    assert [(s.seq, s.name, s.kind, s.status) for s in info.steps] == [
        (1, "shout", "model", "completed"),
        (2, "answer", "model", "completed"),
    ]


async def test_stream_model_answers_in_one_chunk_with_the_fallback(make_engine: EngineFactory) -> None:
    """A callable model cannot stream: one chunk, on both backends (on Temporal, always)."""
    engine = await make_engine([wfs.ask_streamed], registry=wfs.registry())
    handle = await engine.start(wfs.ask_streamed, "hello")
    assert await handle.result(timeout=30) == ["HELLO", "shout"]
    info = await engine.describe(handle.id)
    assert [(s.seq, s.name, s.kind, s.status) for s in info.steps] == [(1, "answer", "model", "completed")]


async def test_run_ids_starting_finds_runs_by_the_start_of_their_id(make_engine: EngineFactory) -> None:
    """How the CLI turns a shortened id into the run: the same answer on both backends."""
    engine = await make_engine([wfs.sleeper])
    prefix = f"prefix-{uuid.uuid4().hex[:8]}-"  # the Temporal namespace is shared by the tests
    for suffix in ("a1", "a2", "b1"):
        await (await engine.start(wfs.sleeper, 0.01, run_id=prefix + suffix)).result(timeout=30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20  # Temporal's visibility store is eventually consistent
    while True:
        if len(await engine.run_ids_starting(prefix)) == 3 or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert await engine.run_ids_starting(prefix + "a") == [prefix + "a1", prefix + "a2"]
    assert await engine.run_ids_starting(prefix + "b1") == [prefix + "b1"]
    assert await engine.run_ids_starting(prefix + "c") == []
    assert len(await engine.run_ids_starting(prefix, limit=2)) == 2
