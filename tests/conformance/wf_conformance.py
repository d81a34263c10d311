"""Workflows of the conformance suite, hosted by an in-process engine (``test_backend_api.py``)
and by a ``bandmaster worker`` process (``test_http_and_cli.py``) on either backend."""

from __future__ import annotations

import asyncio
from typing import Any

import bandmaster as bm


@bm.step(timeout=10)
async def shout(text: str) -> str:
    return text.upper()


@bm.workflow
async def echo(text: str) -> str:
    return await shout(text)


@bm.workflow
async def waits(text: str) -> dict[str, Any]:
    got = await bm.wait_for("go", timeout=600)
    return {"text": text, "got": got}


@bm.workflow
async def reviewed(text: str) -> dict[str, Any]:
    decision = await bm.approval("review", {"text": text}, timeout=600, default="send", approvers=["alice"])
    return {"action": decision.action, "by": decision.by}


@bm.schedule("0 0 1 1 *", name="yearly-echo", input="happy new year")
@bm.workflow
async def yearly(text: str) -> str:
    return await shout(text)


def _terms_data() -> dict[str, Any]:
    terms = bm.engine.current_terms()
    return {"priority": terms.priority, "tenant": terms.tenant, "budget_usd": terms.budget_usd}


@bm.step(timeout=10)
async def terms_in_step() -> dict[str, Any]:
    return _terms_data()


@bm.workflow
async def terms_seen(wait: bool) -> dict[str, Any]:
    """What a step and a model call see as the run's terms (before and after a wait)."""
    before = await terms_in_step()
    if wait:
        await bm.wait_for("go", timeout=600)
    model = await bm.call_model("terms_model", "which terms?")
    return {"before": before, "step": await terms_in_step(), "model": model.output}


@bm.workflow
async def terms_in_workflow() -> dict[str, Any]:
    return await terms_in_step()


@bm.step(timeout=10)
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@bm.workflow
async def paced(seconds: float) -> float:
    """One step that takes ``seconds``: runs that hold a worker's capacity for a while."""
    return await nap(seconds)


WORKFLOWS = [echo, waits, reviewed, yearly, terms_seen, paced]


def fast(text: str) -> str:
    """A model of models.yaml (``provider: callable``)."""
    return "fast"


def careful(text: str) -> str:
    return "careful"


def terms_model(text: str) -> dict[str, Any]:
    """A model that answers with the terms it sees (its call's context)."""
    return {"output": _terms_data(), "cost": 0.001}
