"""Workflows of the conformance suite, hosted by an in-process engine (``test_backend_api.py``)
and by a ``bandmaster worker`` process (``test_http_and_cli.py``) on either backend."""

from __future__ import annotations

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


WORKFLOWS = [echo, waits, reviewed, yearly]


def fast(text: str) -> str:
    """A model of models.yaml (``provider: callable``)."""
    return "fast"


def careful(text: str) -> str:
    return "careful"
