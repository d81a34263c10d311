"""bm.approval on the embedded engine: approve, override, timed default, the race between a
decision and the default, the allow-list, durability across a worker restart, bad input."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from tests.conftest import StatusWaiter

import bandmaster as bm
from bandmaster.testing import FakeClock


class Review(BaseModel):
    ticket: str
    findings: list[str]


@bm.workflow
async def wf_review(ticket: str, timeout: float | None = 30.0) -> bm.Decision:
    return await bm.approval(
        "phi_review",
        Review(ticket=ticket, findings=["PERSON"]),
        timeout=timeout,
        default="approve",
        approvers=["alice", "bob"],
    )


@bm.workflow
async def wf_open(timeout: float) -> bm.Decision:
    return await bm.approval("check", {"n": 1}, timeout=timeout, default="send")


@bm.step
async def after(action: str) -> str:
    return f"did {action}"


@bm.workflow
async def wf_two_approvals() -> list[str]:
    first = await bm.approval("first", timeout=0.05, default="skip")
    second = await bm.approval("second", timeout=30, default="skip")
    return [first.action, second.action, await after(second.action)]


def _audit(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT who, event, action, default_fired FROM approval_audit ORDER BY id"
        ).fetchall()


async def test_approve(clocked_engine: bm.Engine, clock: FakeClock, db_path: Path) -> None:
    engine = clocked_engine
    handle = await engine.start(wf_review, "T-1")
    await clock.elapse(10)
    [pending] = await engine.approvals.list()
    assert (pending.run_id, pending.name, pending.status) == (handle.id, "phi_review", "pending")
    assert pending.payload == {"ticket": "T-1", "findings": ["PERSON"]}
    assert pending.approvers == ["alice", "bob"]
    assert pending.time_left == 20.0

    decided = await engine.approvals.approve(handle.id, by="alice", comment="name, not PHI")
    decision = await handle.result(timeout=15)

    assert isinstance(decision, bm.Decision)
    assert (decision.action, decision.by, decision.comment, decision.timed_out) == (
        "approve",
        "alice",
        "name, not PHI",
        False,
    )
    assert decision == decided
    assert await engine.approvals.list() == []
    [done] = await engine.approvals.list(status="decided")
    assert done.decision == decision
    assert _audit(db_path) == [("alice", "decided", "approve", 0)]
    kinds = [(s.kind, s.status) for s in (await handle.describe()).steps]
    assert kinds == [("approval", "completed"), ("wait", "completed"), ("decision", "completed")]


async def test_override_with_custom_action_and_name(engine: bm.Engine, until_status: StatusWaiter) -> None:
    handle = await engine.start(wf_review, "T-2")
    await until_status(engine, handle.id, "waiting")
    await engine.approvals.decide(handle.id, "escalate", by="bob", name="phi_review")
    assert (await handle.result(timeout=15)).action == "escalate"

    handle = await engine.start(wf_review, "T-3")
    await until_status(engine, handle.id, "waiting")
    await engine.approvals.override(handle.id, by="bob", comment="unusable after redaction")
    decision = await handle.result(timeout=15)
    assert (decision.action, decision.by, decision.comment) == ("override", "bob", "unusable after redaction")


async def test_timeout_applies_the_default_once(
    clocked_engine: bm.Engine, clock: FakeClock, db_path: Path
) -> None:
    engine = clocked_engine
    handle = await engine.start(wf_open, 0.3)
    await clock.elapse(0.29)
    assert (await engine.describe(handle.id)).status == "waiting"
    assert _audit(db_path) == []
    await clock.elapse(0.01)
    decision = await handle.result(timeout=15)
    assert (decision.action, decision.by, decision.timed_out) == ("send", None, True)
    assert _audit(db_path) == [(None, "default", "send", 1)]
    with pytest.raises(bm.AlreadyDecided, match="by its timed default") as caught:
        await engine.approvals.approve(handle.id, by="carol")
    assert (caught.value.action, caught.value.by, caught.value.timed_out) == ("send", None, True)
    # The late attempt is audited, and changed nothing.
    assert _audit(db_path)[-1] == ("carol", "too_late", "approve", 0)
    [approval] = await engine.approvals.list(status="decided")
    assert approval.decision == decision


async def test_a_late_decision_on_a_first_approval_does_not_leak_into_the_next(
    clocked_engine: bm.Engine, clock: FakeClock
) -> None:
    engine = clocked_engine
    handle = await engine.start(wf_two_approvals)
    await clock.settle()
    assert [a.name for a in await engine.approvals.list()] == ["first"]
    await clock.elapse(0.05)  # the first one's default applies; the second opens
    assert [a.name for a in await engine.approvals.list()] == ["second"]
    assert (await engine.describe(handle.id)).status == "waiting"
    with pytest.raises(bm.AlreadyDecided):
        await engine.approvals.decide(handle.id, "go", by="x", name="first")
    assert (await engine.describe(handle.id)).status == "waiting"
    await engine.approvals.decide(handle.id, "go", by="x")
    assert await handle.result(timeout=15) == ["skip", "go", "did go"]


def _decide_in_thread(db: Path, run_id: str, at: float, outcomes: dict[str, object]) -> None:
    """Decide from another connection and thread at wall time ``at`` (a real write race)."""

    async def decide() -> None:
        client = bm.Engine(db, worker=False)
        await client.open()
        try:
            await asyncio.sleep(max(0.0, at - time.time()))
            outcomes[run_id] = await client.approvals.approve(run_id, by="alice")
        except bm.AlreadyDecided as exc:
            outcomes[run_id] = exc
        finally:
            await client.close()

    asyncio.run(decide())


async def test_decision_racing_the_timeout_applies_exactly_once(
    engine: bm.Engine, db_path: Path, until_status: StatusWaiter
) -> None:
    trials = 40
    handles = [await engine.start(wf_open, 2.0) for _ in range(trials)]
    for handle in handles:
        await until_status(engine, handle.id, "waiting")
    approvals = {a.run_id: a for a in await engine.approvals.list(limit=trials)}
    outcomes: dict[str, object] = {}
    threads = []
    for i, handle in enumerate(handles):
        deadline = approvals[handle.id].deadline
        assert deadline is not None
        # From clearly before the deadline, through it, to clearly after.
        offset = -0.3 + 1.0 * i / (trials - 1)
        thread = threading.Thread(
            target=_decide_in_thread, args=(db_path, handle.id, deadline.timestamp() + offset, outcomes)
        )
        thread.start()
        threads.append(thread)
    results = [await h.result(timeout=30) for h in handles]
    for thread in threads:
        await asyncio.to_thread(thread.join, 30)

    person_won = default_won = 0
    for handle, decision in zip(handles, results, strict=True):
        outcome = outcomes[handle.id]
        if isinstance(outcome, bm.AlreadyDecided):
            default_won += 1
            assert decision.timed_out
            assert decision.by is None
            assert decision.action == "send"
            assert outcome.timed_out
            assert outcome.action == "send"
        else:
            person_won += 1
            assert outcome == decision
            assert not decision.timed_out
            assert decision.by == "alice"
    with sqlite3.connect(db_path) as conn:
        applied = conn.execute(
            "SELECT run_id, COUNT(*) FROM approval_audit "
            "WHERE event IN ('decided', 'default') GROUP BY run_id"
        ).fetchall()
    assert sorted(applied) == sorted((h.id, 1) for h in handles)  # exactly one decision per run
    print(f"\n[race] {trials} trials: the person won {person_won}, the timed default won {default_won}")
    # Both sides of the race really happened.
    assert person_won > 0
    assert default_won > 0


async def test_unauthorised_decider_is_refused_and_only_audited(
    engine: bm.Engine, db_path: Path, until_status: StatusWaiter
) -> None:
    handle = await engine.start(wf_review, "T-4")
    await until_status(engine, handle.id, "waiting")
    steps_before = (await handle.describe()).steps
    with pytest.raises(bm.NotAuthorized, match="'mallory' may not decide approval 'phi_review'"):
        await engine.approvals.approve(handle.id, by="mallory")
    [pending] = await engine.approvals.list()
    assert pending.status == "pending"
    assert (await handle.describe()).steps == steps_before
    assert (await handle.describe()).status == "waiting"
    assert _audit(db_path) == [("mallory", "refused", "approve", 0)]
    await engine.approvals.approve(handle.id, by="alice")
    assert (await handle.result(timeout=15)).by == "alice"


async def test_decision_survives_a_worker_restart(
    db_path: Path, until_status: StatusWaiter, tmp_path: Path
) -> None:
    first = bm.Engine(db_path, workflows=[wf_review], poll_interval=0.02)
    await first.open()
    handle = await first.start(wf_review, "T-5")
    await until_status(first, handle.id, "waiting")
    await first.close()  # the worker is gone; the run waits in the journal only

    client = bm.Engine(db_path, worker=False)
    await client.open()
    try:
        info = await client.describe(handle.id)
        assert (info.status, info.lease_owner) == ("waiting", None)
        await client.approvals.approve(handle.id, by="bob", comment="after restart")
    finally:
        await client.close()

    second = bm.Engine(db_path, workflows=[wf_review], poll_interval=0.02)
    await second.open()
    try:
        decision = await second.result(handle.id, timeout=15)
        assert (decision.action, decision.by, decision.comment) == ("approve", "bob", "after restart")
        assert (await second.describe(handle.id)).claims == 2
    finally:
        await second.close()


@bm.workflow
async def wf_bad(case: str) -> Any:
    if case == "no_default":
        return await bm.approval("x", timeout=5)
    if case == "payload":
        return await bm.approval("x", object(), timeout=5, default="a")
    if case == "approvers":
        return await bm.approval("x", timeout=5, default="a", approvers="alice")
    return await bm.approval("x", timeout=5, default="a", notify=["http://example.org"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_default", "default='approve'"),
        ("payload", "payload of approval 'x' is not JSON-serialisable"),
        ("approvers", "give a list of decider names"),
        ("notify", "is not a notifier; use bm.Webhook"),
    ],
)
async def test_bad_arguments_fail_the_run_without_opening_an_approval(
    engine: bm.Engine, db_path: Path, case: str, message: str
) -> None:
    handle = await engine.start(wf_bad, case)
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=15)
    assert isinstance(caught.value.__cause__, bm.InvalidInput)
    assert message in str(caught.value)
    assert await engine.approvals.list(status=None) == []
    assert (await handle.describe()).steps == []


async def test_deciding_bad_or_unknown_approvals(engine: bm.Engine, until_status: StatusWaiter) -> None:
    with pytest.raises(bm.ApprovalNotFound, match="has no approval"):
        await engine.approvals.approve("no-such-run", by="alice")
    handle = await engine.start(wf_review, "T-6")
    await until_status(engine, handle.id, "waiting")
    with pytest.raises(bm.InvalidInput, match="give an action"):
        await engine.approvals.decide(handle.id, " ", by="alice")
    with pytest.raises(bm.InvalidInput, match="say who decides"):
        await engine.approvals.decide(handle.id, "approve", by="")
    with pytest.raises(bm.ApprovalNotFound):
        await engine.approvals.approve(handle.id, by="alice", name="other")
    with pytest.raises(bm.InvalidInput, match="use 'pending', 'decided' or None"):
        await engine.approvals.list(status="maybe")  # type: ignore[arg-type]
    await engine.cancel(handle.id)
    assert await engine.approvals.list() == []  # a cancelled run's approval is no longer pending
    with pytest.raises(bm.UsageError, match="is cancelled"):
        await engine.approvals.approve(handle.id, by="alice")


async def test_approval_outside_a_workflow_is_a_usage_error() -> None:
    with pytest.raises(bm.UsageError, match=r"inside a @bm\.workflow"):
        await bm.approval("x", timeout=1, default="a")
