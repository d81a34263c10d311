"""Workflows and models of the budget tests (``test_budgets.py``), hosted by an in-process
engine and by ``bandmaster worker`` processes on either backend.

Prices make the arithmetic exact: ``big`` costs $0.001 per output token and ``small`` $0.0001,
inputs are free, and each model reports as many output tokens as the request's ``max_tokens``.
So a call with ``max_tokens=1000`` is estimated at, and costs, $1.00 on ``big`` and $0.10 on
``small``."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import bandmaster as bm
from bandmaster.engine import RunTerms, terms_scope

CALL_TOKENS = 1000


def _answer(name: str, req: bm.ModelRequest) -> bm.ModelResponse:
    out = req.max_tokens or 0
    return bm.ModelResponse(output=name, text=name, usage=bm.Usage(input_tokens=0, output_tokens=out))


def big(req: bm.ModelRequest) -> bm.ModelResponse:
    return _answer("big", req)


def small(req: bm.ModelRequest) -> bm.ModelResponse:
    return _answer("small", req)


def greedy(req: bm.ModelRequest) -> bm.ModelResponse:
    """Answers 2,000 tokens whatever it was asked: more than a call without ``max_tokens`` is
    estimated at (1,024)."""
    return bm.ModelResponse(
        output="greedy", text="greedy", usage=bm.Usage(input_tokens=0, output_tokens=2000)
    )


def _terms(plan: dict[str, Any]) -> RunTerms:
    """The run's terms from its input, until ``start(tenant=..., budget_usd=...)`` sets them."""
    return RunTerms(tenant=plan.get("tenant"), budget_usd=plan.get("budget"))


async def _calls(plan: dict[str, Any], registry: bm.Registry | None = None) -> dict[str, Any]:
    answers: list[str] = []
    for i in range(plan["calls"]):
        try:
            response = await bm.call_model(
                plan.get("model", "big"),
                f"call {i}",
                max_tokens=plan.get("max_tokens", CALL_TOKENS),
                registry=registry,
            )
        except bm.BudgetExceeded as exc:
            return {"answers": answers, "exceeded": exc.scope, "error": str(exc)}
        answers.append(str(response.output))
    return {"answers": answers, "exceeded": None, "error": None}


@bm.step(timeout=60, retry=bm.Retry(attempts=1))
def paused(path: str) -> None:
    """Stands still while ``path`` exists (the test kills the worker meanwhile)."""
    Path(path + ".reached").touch()
    while os.path.exists(path):
        time.sleep(0.05)


@bm.workflow
async def spend(plan: dict[str, Any]) -> dict[str, Any]:
    """Model calls at workflow level, with the run's terms set here (embedded engine)."""
    with terms_scope(_terms(plan)):
        return await _calls(plan)


@bm.workflow
async def spend_by_terms(plan: dict[str, Any]) -> dict[str, Any]:
    """Model calls at workflow level under the terms the run was started with."""
    return await _calls(plan)


@functools.cache
def step_registry() -> bm.Registry:
    """What a step calls models with: a Temporal activity has no run registry to inherit."""
    return bm.Registry.load(Path(__file__).with_name("budgets.yaml"))


@bm.step(timeout=60, retry=bm.Retry(attempts=1))
async def spend_step(plan: dict[str, Any]) -> dict[str, Any]:
    with terms_scope(_terms(plan)):
        return await _calls(plan, step_registry())


@bm.workflow
async def spend_in_step(plan: dict[str, Any]) -> dict[str, Any]:
    """Model calls inside a step (an activity on Temporal), with the terms set in the step."""
    return await spend_step(plan)


@bm.workflow
async def spend_across_steps(plan: dict[str, Any]) -> dict[str, Any]:
    """One call in a step, a pause (the test kills the worker there), then the other calls in
    another step: on either backend the second step must see the first step's spend."""
    calls = {k: v for k, v in plan.items() if k != "pause_file"}
    first = await spend_step({**calls, "calls": 1})
    await paused(plan["pause_file"])
    second = await spend_step({**calls, "calls": plan["calls"] - 1})
    return {
        "answers": first["answers"] + second["answers"],
        "exceeded": first["exceeded"] or second["exceeded"],
        "error": first["error"] or second["error"],
    }


WORKFLOWS = [spend, spend_by_terms, spend_in_step, spend_across_steps]
