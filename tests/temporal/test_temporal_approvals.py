"""``bm.approval`` on the Temporal backend and ``TemporalEngine.approvals`` (the desk), against
a real Temporal dev server with an in-process worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import wf_tserver as wfs
from temporal_support import TemporalServer

import bandmaster as bm

pytestmark = pytest.mark.timeout(90)

WORKFLOWS = [wfs.reviewed, wfs.two_reviews, wfs.notifies, wfs.triage]
TICKET = wfs.Ticket(id="T-1", text="I was charged twice")


@pytest.fixture
async def engine(temporal_server: TemporalServer) -> AsyncIterator[bm.TemporalEngine]:
    async with bm.TemporalEngine(
        temporal_server.target, task_queue=f"appr-{uuid.uuid4().hex[:8]}", workflows=WORKFLOWS
    ) as opened:
        yield opened


async def pending_of(engine: bm.TemporalEngine, run_id: str, count: int = 1) -> list[bm.Decision]:
    for _ in range(200):
        found = [a for a in await engine.approvals.list() if a.run_id == run_id]
        if len(found) >= count:
            return found  # type: ignore[return-value]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending approval of {run_id}")


async def test_a_person_decides_and_the_desk_lists_it(engine: bm.TemporalEngine) -> None:
    handle = await engine.start(wfs.reviewed, TICKET)
    [pending] = await pending_of(engine, handle.id)
    assert (pending.name, pending.status, pending.workflow) == ("phi_review", "pending", "reviewed")  # type: ignore[attr-defined]
    assert pending.payload == {"id": "T-1", "label": "billing"}  # type: ignore[attr-defined]
    assert pending.approvers == ["alice", "carol"]  # type: ignore[attr-defined]
    assert 590 < (pending.time_left or 0) <= 600  # type: ignore[attr-defined]
    assert (await engine.describe(handle.id)).status == "waiting"

    with pytest.raises(bm.NotAuthorized, match="mallory"):
        await engine.approvals.approve(handle.id, by="mallory")
    decision = await engine.approvals.override(handle.id, by="alice", comment="Mrs. Garcia asked for a call")
    assert (decision.action, decision.by, decision.timed_out) == ("override", "alice", False)
    assert decision.comment == "<PERSON> asked for a call"  # the workflow's redactor, before Temporal

    result = await handle.result(timeout=30)
    assert result == {
        "action": "override",
        "by": "alice",
        "comment": "<PERSON> asked for a call",
        "timed_out": False,
    }
    decided = await engine.approvals.list(status="decided", run_id=handle.id)
    assert [d.decision.by for d in decided if d.decision] == ["alice"]
    assert await engine.approvals.list(run_id=handle.id) == []  # nothing pending any more
    step = next(s for s in (await engine.describe(handle.id)).steps if s.kind == "approval")
    assert (step.name, step.status, step.meta["action"], step.meta["by"]) == (
        "phi_review",
        "completed",
        "override",
        "alice",
    )

    with pytest.raises(bm.AlreadyDecided, match="'override' by 'alice'"):  # as on the embedded desk
        await engine.approvals.approve(handle.id, by="carol")


async def test_the_timed_default_wins_and_a_late_decision_is_refused(engine: bm.TemporalEngine) -> None:
    handle = await engine.start(wfs.reviewed, TICKET, 0.5)
    result = await handle.result(timeout=30)
    assert result == {"action": "send", "by": None, "comment": None, "timed_out": True}
    [approval] = await engine.approvals.list(status=None, run_id=handle.id)
    assert approval.decision is not None
    assert approval.decision.timed_out
    with pytest.raises(bm.AlreadyDecided, match="by its timed default"):
        await engine.approvals.approve(handle.id, by="alice")


async def test_already_decided_when_the_run_waits_on_its_next_approval(engine: bm.TemporalEngine) -> None:
    handle = await engine.start(wfs.two_reviews)
    await pending_of(engine, handle.id)
    await engine.approvals.approve(handle.id, by="bob", name="legal")
    with pytest.raises(bm.AlreadyDecided, match="'approve' by 'bob'"):
        await engine.approvals.override(handle.id, by="eve", name="legal")
    for _ in range(200):  # the second approval opens once the first is settled
        pending = await engine.approvals.list(run_id=handle.id)
        if pending and pending[0].name == "medical":
            break
        await asyncio.sleep(0.05)
    await engine.approvals.decide(handle.id, "hold", by="bob")
    assert await handle.result(timeout=30) == ["approve", "hold"]


async def test_mistakes_get_specific_errors(engine: bm.TemporalEngine) -> None:
    with pytest.raises(bm.ApprovalNotFound):  # as on the embedded desk
        await engine.approvals.approve("no-such-run", by="alice")
    handle = await engine.start(wfs.triage, TICKET)
    await handle.result(timeout=30)
    with pytest.raises(bm.ApprovalNotFound, match="has no approval"):
        await engine.approvals.approve(handle.id, by="alice")
    with pytest.raises(bm.InvalidInput, match="give an action"):
        await engine.approvals.decide(handle.id, " ", by="alice")
    with pytest.raises(bm.InvalidInput, match="status='maybe'"):
        await engine.approvals.list(status="maybe")  # type: ignore[arg-type]
    with pytest.raises(bm.NotSupported, match="approval_audit is not available on the temporal backend"):
        await engine.approvals.audit()


async def test_a_client_that_cannot_redact_refuses_a_comment_and_decides_without_one(
    engine: bm.TemporalEngine, temporal_server: TemporalServer
) -> None:
    handle = await engine.start(wfs.reviewed, TICKET)
    await pending_of(engine, handle.id)
    # A bare client does not host `reviewed`, so it does not know its redactor; the memo says it has one.
    async with bm.TemporalEngine(temporal_server.target, task_queue=engine.task_queue) as bare:
        with pytest.raises(bm.UsageError, match="decide without a comment"):
            await bare.approvals.override(handle.id, by="alice", comment="Mrs. Garcia asked for a call")
        assert [a.status for a in await bare.approvals.list(run_id=handle.id)] == ["pending"]
        decision = await bare.approvals.approve(handle.id, by="alice")
    assert (decision.action, decision.comment) == ("approve", None)
    assert (await handle.result(timeout=30))["action"] == "approve"
