"""Run and tenant budgets on both backends: ``on_exceed`` fail, downgrade and approve; spend
that survives a killed worker; and a tenant's daily budget shared by worker processes, overshot
by at most one call's cost.

The models (``wf_budgets.py``) cost exactly their estimate: $1.00 a call on ``big``, $0.10 on
``small``. The ``spend`` workflows set the run's terms from their input with ``terms_scope``;
``spend_by_terms`` takes them from ``start(tenant=, budget_usd=)``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import wf_budgets as wfs
from conformance_support import BACKENDS, hosting

import bandmaster as bm
from bandmaster.engine.backend import Backend

HERE = Path(__file__).parent
MODELS = HERE / "budgets.yaml"
WORKFLOWS = HERE / "wf_budgets.py"
REPO = HERE.parent.parent


def registry() -> bm.Registry:
    return bm.Registry.load(MODELS)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The conformance backend, hosting the budget workflows with the budgets' registry."""
    async with hosting(request, tmp_path, wfs.WORKFLOWS, registry()) as opened:
        yield opened


def spend_workflow(backend: Backend) -> Any:
    """Workflow-level calls under terms set in the workflow reach the model only in-process
    (embedded); on Temporal the call runs in an activity, where the run's start terms apply."""
    return wfs.spend if isinstance(backend, bm.Engine) else wfs.spend_in_step


async def start_with_terms(backend: Backend, plan: dict[str, Any]) -> Any:
    """Start workflow-level calls under the plan's tenant and budget: set in the workflow on the
    embedded engine; from ``start`` on Temporal, where the call runs in an activity."""
    if isinstance(backend, bm.Engine):
        return await backend.start(wfs.spend, plan)
    terms = {"tenant": plan.get("tenant"), "budget_usd": plan.get("budget")}
    return await backend.start(wfs.spend_by_terms, {"calls": plan["calls"]}, **terms)


async def run(backend: Backend, workflow: Any, plan: dict[str, Any]) -> dict[str, Any]:
    handle = await backend.start(workflow, plan)
    result: dict[str, Any] = await handle.result(timeout=60)
    return result


# --- fail ------------------------------------------------------------------------------------


async def test_a_run_budget_fails_the_call_that_would_exceed_it(backend: Backend) -> None:
    result = await run(backend, spend_workflow(backend), {"budget": 2.5, "calls": 5})
    assert result["answers"] == ["big", "big"], "two $1 calls fit in $2.50; the third would not"
    assert result["exceeded"].startswith("run:")
    error = result["error"]
    assert "run budget exceeded: $2.000000 spent of $2.500000" in error
    assert "estimated at up to $1.000000" in error
    assert "larger budget_usd" in error, "the error says how to raise the budget"


async def test_a_tenant_budget_is_shared_by_the_tenants_runs(backend: Backend) -> None:
    first = await run(backend, spend_workflow(backend), {"tenant": "acme", "calls": 2})
    second = await run(backend, spend_workflow(backend), {"tenant": "acme", "calls": 2})
    assert first["answers"] == ["big", "big"]
    assert second["answers"] == [], "the tenant's $2.50 a day was $2 spent by the first run"
    assert second["exceeded"] == "tenant:acme"
    assert "tenant 'acme' budget for" in second["error"]
    assert "(UTC)" in second["error"]
    assert "budgets.tenants.acme.usd_per_day" in second["error"]
    other = await run(backend, spend_workflow(backend), {"tenant": "down", "calls": 1})
    assert other["answers"] == ["big"], "another tenant has its own budget"


async def test_an_answer_dearer_than_its_estimate_overshoots_by_at_most_that_call(backend: Backend) -> None:
    # No max_tokens: estimated at 1,024 output tokens ($1.024), it answers 2,000 ($2.00).
    plan = {"budget": 1.5, "calls": 3, "model": "greedy", "max_tokens": None}
    result = await run(backend, spend_workflow(backend), plan)
    assert result["answers"] == ["greedy"], "the first call fit its estimate; none after it did"
    assert "$2.000000 spent of $1.500000" in result["error"], "overshot by less than that one call's $2"
    assert "estimated at up to $1.024" in result["error"]


async def test_start_terms_enforce_the_run_budget(backend: Backend) -> None:
    handle = await backend.start(wfs.spend_by_terms, {"calls": 5}, budget_usd=2.5)
    result = await handle.result(timeout=60)
    assert result["answers"] == ["big", "big"]
    assert result["exceeded"].startswith("run:")


# --- downgrade -------------------------------------------------------------------------------


async def test_downgrade_sends_the_call_to_the_cheaper_model(backend: Backend) -> None:
    handle = await backend.start(spend_workflow(backend), {"tenant": "down", "calls": 3})
    result = await handle.result(timeout=60)
    assert result["answers"] == ["big", "small", "small"], "$1.50 a day: one big call, then small ones"
    assert result["exceeded"] is None
    if isinstance(backend, bm.Engine):  # the workflow-level calls are journaled model steps
        info = await backend.describe(handle.id)
        models = [s for s in info.steps if s.kind == "model"]
        assert "budget" not in models[0].meta
        note = models[1].meta["budget"]
        assert (note["downgraded_from"], note["to"]) == ("big", "small")
        assert "$1.000000 spent of $1.500000" in note["reason"]
        assert models[1].meta["cost"] == pytest.approx(0.10)


async def test_a_downgraded_call_is_held_against_the_budget_too(backend: Backend) -> None:
    result = await run(backend, spend_workflow(backend), {"tenant": "down", "calls": 10})
    # $1 big + four $0.10 small calls = $1.40; a fifth small call would make $1.50000000001 or
    # $1.50 exactly depending on float sums, so count the answers the budget allowed.
    assert result["answers"][0] == "big"
    assert set(result["answers"][1:]) == {"small"}
    assert 4 <= len(result["answers"]) - 1 <= 5
    assert result["exceeded"] == "tenant:down"
    assert "downgraded from 'big'" in result["error"]


# --- approve ---------------------------------------------------------------------------------


async def _approval_of(backend: Backend, run_id: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        pending = await backend.approvals.list(run_id=run_id, status="pending")
        if pending:
            return pending[0]
        assert time.monotonic() < deadline, f"run {run_id} never asked to go over its budget"
        await asyncio.sleep(0.05)


async def test_approve_asks_a_person_and_an_approved_call_proceeds(
    backend: Backend,
) -> None:
    handle = await start_with_terms(backend, {"tenant": "ask", "calls": 2})
    waiting = await _approval_of(backend, handle.id)
    assert waiting.name == "budget:big"
    assert waiting.payload["scope"] == "tenant:ask"
    assert waiting.payload["estimate_usd"] == pytest.approx(1.0)
    await backend.approvals.decide(handle.id, "approve", by="alice")
    result = await handle.result(timeout=30)
    assert result == {"answers": ["big", "big"], "exceeded": None, "error": None}


async def test_approve_rejected_fails_the_call(backend: Backend) -> None:
    handle = await start_with_terms(backend, {"tenant": "ask", "calls": 2})
    await _approval_of(backend, handle.id)
    await backend.approvals.decide(handle.id, "reject", by="bob")
    result = await handle.result(timeout=30)
    assert result["answers"] == ["big"]
    assert result["exceeded"] == "tenant:ask"
    assert "the approval to go over it was 'reject' by bob" in result["error"]


async def test_approve_timed_out_fails_the_call(backend: Backend) -> None:
    handle = await start_with_terms(backend, {"tenant": "hasty", "calls": 2})
    result = await handle.result(timeout=60)
    assert result["answers"] == ["big"]
    assert result["exceeded"] == "tenant:hasty"
    assert "the approval to go over it timed out" in result["error"]


async def test_approve_inside_a_step_fails_and_says_why(backend: Backend) -> None:
    result = await run(backend, wfs.spend_in_step, {"tenant": "ask", "calls": 2})
    assert result["answers"] == ["big"]
    assert result["exceeded"] == "tenant:ask"
    assert "asks a person only for bm.call_model at workflow level" in result["error"]
