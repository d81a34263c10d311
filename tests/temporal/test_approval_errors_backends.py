"""Deciding an approval gives the same errors on both backends: ``AlreadyDecided`` for a late
decision (also once the run has ended), ``NotAuthorized`` for a decider outside the allow-list
(checked first), ``ApprovalNotFound`` for a run or approval that does not exist."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import wf_tserver as wfs
from temporal_support import EngineFactory

import bandmaster as bm

pytestmark = pytest.mark.timeout(90)

TICKET = wfs.Ticket(id="T-1", text="I was charged twice")


async def _pending(engine: Any, run_id: str) -> None:
    for _ in range(400):
        if await engine.approvals.list(run_id=run_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending approval of {run_id}")


async def test_a_late_decision_after_the_timed_default(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.reviewed])
    handle = await engine.start(wfs.reviewed, TICKET, 0.3)
    assert (await handle.result(timeout=30))["timed_out"] is True
    with pytest.raises(bm.AlreadyDecided, match="by its timed default") as late:
        await engine.approvals.approve(handle.id, by="alice")
    assert (late.value.action, late.value.by, late.value.timed_out) == ("send", None, True)
    with pytest.raises(bm.NotAuthorized, match="'mallory' may not decide"):
        await engine.approvals.approve(handle.id, by="mallory")


async def test_a_late_decision_after_a_person_and_the_end_of_the_run(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.reviewed])
    handle = await engine.start(wfs.reviewed, TICKET)
    await _pending(engine, handle.id)
    with pytest.raises(bm.NotAuthorized):
        await engine.approvals.approve(handle.id, by="mallory")
    await engine.approvals.approve(handle.id, by="alice")
    with pytest.raises(bm.AlreadyDecided, match="'approve' by 'alice'"):  # the run may still be ending
        await engine.approvals.override(handle.id, by="carol")
    await handle.result(timeout=30)
    with pytest.raises(bm.AlreadyDecided, match="'approve' by 'alice'") as late:
        await engine.approvals.override(handle.id, by="carol")
    assert (late.value.run_id, late.value.name, late.value.timed_out) == (handle.id, "phi_review", False)
    with pytest.raises(bm.NotAuthorized):  # the allow-list is checked before the decision
        await engine.approvals.override(handle.id, by="mallory")


async def test_no_such_run_or_approval(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.reviewed, wfs.triage])
    with pytest.raises(bm.ApprovalNotFound):
        await engine.approvals.approve("no-such-run", by="alice")
    with pytest.raises(bm.ApprovalNotFound):
        await engine.approvals.get("no-such-run")
    assert await engine.approvals.list(run_id="no-such-run", status=None) == []
    handle = await engine.start(wfs.triage, TICKET)
    await handle.result(timeout=30)
    with pytest.raises(bm.ApprovalNotFound):
        await engine.approvals.approve(handle.id, by="alice")
