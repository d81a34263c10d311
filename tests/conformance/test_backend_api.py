"""The ``Backend`` interface, with the same test code on every backend: start (idempotent),
result, signal, cancel, describe, list, run ids by prefix, approvals, models, stats,
schedules, chunks, health and the capabilities that say what a backend lacks, and why."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import wf_conformance as wfs

import bandmaster as bm
from bandmaster.engine.backend import CAPABILITIES, Backend

pytestmark = pytest.mark.timeout(90)

TEMPORAL_MISSING = {
    "token_streaming",
    "approval_audit",
    "injected_clock",
    "run_input_search",
    "run_ordering",
}  # README, "Backends"


def key() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


async def until(backend: Backend, run_id: str, *statuses: str, timeout: float = 30.0) -> bm.RunInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = await backend.describe(run_id)
        if info.status in statuses:
            return info
        assert time.monotonic() < deadline, f"run {run_id} is {info.status}, not {statuses}"
        await asyncio.sleep(0.05)


async def pending(backend: Backend, run_id: str, timeout: float = 30.0) -> bm.Decision | None:
    deadline = time.monotonic() + timeout
    while not await backend.approvals.list(run_id=run_id):
        assert time.monotonic() < deadline, f"run {run_id} never asked for its approval"
        await asyncio.sleep(0.05)
    return None


@pytest.mark.timeout(360)
def test_both_engines_are_a_backend_for_mypy(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``backend: Backend = engine`` type-checks for both engines (backends_typed.py)."""
    pytest.importorskip("mypy", reason="needs mypy (bandmaster[dev]): pip install 'bandmaster[dev]'")
    pytest.importorskip("temporalio", reason="needs bandmaster[temporal] for bm.TemporalEngine")
    pytest_cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    cache = pytest_cache.mkdir("mypy") if pytest_cache is not None else tmp_path / ".mypy_cache"
    typed = Path(__file__).with_name("backends_typed.py")
    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(typed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert found.returncode == 0, found.stdout + found.stderr


async def test_capabilities_name_what_is_missing_and_why(backend: Backend) -> None:
    caps = backend.capabilities
    assert caps.name in ("embedded", "temporal")
    assert set(caps.missing) <= set(CAPABILITIES)
    expected = set() if caps.name == "embedded" else TEMPORAL_MISSING
    assert set(caps.missing) == expected
    for capability, reason in caps.missing.items():
        assert not caps.supports(capability)
        with pytest.raises(bm.NotSupported, match=capability) as refused:
            caps.require(capability)
        assert reason in str(refused.value)
        assert len(reason) > 30  # a reason, not a label
    for capability in set(CAPABILITIES) - set(caps.missing):
        assert caps.supports(capability)
        caps.require(capability)  # no error
    assert await backend.health() is None


async def test_start_and_result(backend: Backend) -> None:
    handle = await backend.start(wfs.echo, "hi")
    assert handle.created
    assert await handle.result(timeout=30) == "HI"
    assert await backend.result(handle.id, timeout=30) == "HI"
    by_name = await backend.start("echo", "by name")
    assert await by_name.result(timeout=30) == "BY NAME"


async def test_a_repeated_start_returns_the_run_and_another_request_conflicts(backend: Backend) -> None:
    run_id = key()
    first = await backend.start(wfs.echo, "once", run_id=run_id)
    assert (first.id, first.created) == (run_id, True)
    assert await first.result(timeout=30) == "ONCE"
    again = await backend.start(wfs.echo, "once", run_id=run_id)
    assert (again.id, again.created, again.status) == (run_id, False, "completed")
    with pytest.raises(bm.IdempotencyConflict, match="already used for a different request"):
        await backend.start(wfs.echo, "another input", run_id=run_id)
    with pytest.raises(bm.IdempotencyConflict, match="use a new id"):
        await backend.start(wfs.waits, "once", run_id=run_id)
    listed = await backend.list(workflow="echo", limit=100)
    assert [r.id for r in listed].count(run_id) == 1


async def test_signal_reaches_the_wait(backend: Backend) -> None:
    handle = await backend.start(wfs.waits, "x")
    await backend.signal(handle.id, "go", {"n": 1})
    assert await handle.result(timeout=30) == {"text": "x", "got": {"n": 1}}
    with pytest.raises(bm.UsageError, match="already completed"):
        await backend.signal(handle.id, "go", 2)


async def test_cancel_a_waiting_run(backend: Backend) -> None:
    handle = await backend.start(wfs.waits, "x")
    await until(backend, handle.id, "running", "waiting")
    await backend.cancel(handle.id)
    with pytest.raises(bm.RunCancelled):
        await handle.result(timeout=30)
    assert (await backend.describe(handle.id)).status == "cancelled"


async def test_describe_list_and_run_ids_starting(backend: Backend) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}-{n}" for n in range(3)]
    for run_id in ids:
        await (await backend.start(wfs.echo, run_id, run_id=run_id)).result(timeout=30)
    info = await backend.describe(ids[0])
    assert (info.id, info.workflow, info.status, info.output) == (ids[0], "echo", "completed", ids[0].upper())
    assert [(s.name, s.status) for s in info.steps] == [("shout", "completed")]
    listed = {r.id for r in await backend.list(workflow="echo", status="completed", limit=100)}
    assert set(ids) <= listed
    assert not {r.id for r in await backend.list(workflow="waits", limit=100)} & set(ids)
    assert sorted(await backend.run_ids_starting(prefix)) == ids
    two = await backend.run_ids_starting(prefix, limit=2)
    assert len(two) == 2
    assert set(two) <= set(ids)
    with pytest.raises(bm.RunNotFound):
        await backend.describe(f"{prefix}-missing")


async def test_list_filters_by_time_and_id_and_says_what_it_cannot(backend: Backend) -> None:
    prefix = f"f{uuid.uuid4().hex[:6]}"
    first = await backend.start(wfs.echo, "needle <b>in</b> a haystack", run_id=f"{prefix}-a")
    await first.result(timeout=30)
    middle = (await backend.describe(first.id)).created_at + timedelta(milliseconds=1)
    await asyncio.sleep(0.05)
    second = await backend.start(wfs.echo, "plain hay", run_id=f"{prefix}-b")
    await second.result(timeout=30)
    ids = {first.id, second.id}
    by_prefix = [r.id for r in await backend.list(id_prefix=prefix)]
    assert by_prefix == [second.id, first.id]  # newest first
    later = {r.id for r in await backend.list(id_prefix=prefix, created_after=middle)}
    earlier = {r.id for r in await backend.list(id_prefix=prefix, created_before=middle)}
    assert (later, earlier) == ({second.id}, {first.id})
    if backend.capabilities.supports("run_input_search"):
        assert [r.id for r in await backend.list(search="<b>IN</b> a hay")] == [first.id]
        assert {r.id for r in await backend.list(search=prefix)} == ids  # ids match too
        assert await backend.list(search="100%_") == []  # LIKE wildcards are plain text
    else:
        with pytest.raises(bm.NotSupported, match=r"run_input_search.*id_prefix"):
            await backend.list(search="needle")
    if backend.capabilities.supports("run_ordering"):
        oldest = [r.id for r in await backend.list(id_prefix=prefix, order="oldest")]
        assert oldest == [first.id, second.id]
        assert {r.id for r in await backend.list(id_prefix=prefix, order="longest")} == ids
    else:
        with pytest.raises(bm.NotSupported, match=r"run_ordering.*newest first"):
            await backend.list(order="oldest")


async def test_approvals_list_decide_audit_and_a_late_decision(backend: Backend) -> None:
    handle = await backend.start(wfs.reviewed, "refund")
    await pending(backend, handle.id)
    (waiting,) = await backend.approvals.list(run_id=handle.id)
    assert (waiting.name, waiting.status, waiting.approvers) == ("review", "pending", ["alice"])
    assert (await backend.approvals.get(handle.id)).name == "review"
    with pytest.raises(bm.NotAuthorized):
        await backend.approvals.decide(handle.id, "approve", by="mallory")
    decision = await backend.approvals.decide(handle.id, "approve", by="alice", comment="ok")
    assert (decision.action, decision.by) == ("approve", "alice")
    assert await handle.result(timeout=30) == {"action": "approve", "by": "alice"}
    decided = await backend.approvals.list(status="decided", run_id=handle.id)
    assert [a.decision.action for a in decided if a.decision] == ["approve"]
    with pytest.raises(bm.AlreadyDecided):
        await backend.approvals.decide(handle.id, "override", by="alice")
    if not backend.capabilities.supports("approval_audit"):
        with pytest.raises(bm.NotSupported, match="approval_audit is not available"):
            await backend.approvals.audit(handle.id)
        return
    trail = await backend.approvals.audit(handle.id)
    assert any(e.who == "alice" and e.action == "approve" for e in trail)


async def test_schedules_are_listed_pausable_and_resumable(backend: Backend) -> None:
    deadline = time.monotonic() + 30
    while "yearly-echo" not in [s.name for s in await backend.schedules.list()]:
        assert time.monotonic() < deadline, "the schedule was never declared"
        await asyncio.sleep(0.1)
    paused = await backend.schedules.pause("yearly-echo", by="alice")
    assert paused.paused
    resumed = await backend.schedules.resume("yearly-echo", by="alice")
    assert not resumed.paused
    with pytest.raises(bm.ScheduleNotFound):
        await backend.schedules.get("no-such-schedule")


async def test_models_stats_and_chunks_or_not_supported_with_why(backend: Backend) -> None:
    caps = backend.capabilities
    if caps.supports("model_switch"):
        (answer,) = await backend.models.describe()
        assert (answer.alias, answer.weights) == ("answer", {"production": 1.0, "canary": 0.0})
        switched = await backend.models.switch("answer", weights={"production": 0.5, "canary": 0.5}, by="ops")
        assert switched.weights == {"production": 0.5, "canary": 0.5}
        assert [h["changed_by"] for h in await backend.models.history("answer")] == ["ops"]
    else:
        with pytest.raises(bm.NotSupported, match=caps.missing["model_switch"][:40]):
            await backend.models.describe()
    if caps.supports("stats"):
        await (await backend.start(wfs.echo, "counted")).result(timeout=30)
        found = await backend.stats(workflow="echo")
        assert [w.workflow for w in found.workflows] == ["echo"]
    else:
        with pytest.raises(bm.NotSupported, match="stats is not available on the temporal backend"):
            await backend.stats()
    if caps.supports("token_streaming"):
        assert backend.chunks("no-such-run", 0) == []
    else:
        with pytest.raises(bm.NotSupported, match="token_streaming"):
            backend.chunks("no-such-run", 0)
