"""Workflows of the limits tests' worker processes: one model call per run, to the model
``limited`` (whose ``limits:`` the test writes into models.yaml)."""

from __future__ import annotations

import asyncio
import os

import bandmaster as bm


@bm.workflow
async def limited_call(number: int) -> str:
    response = await bm.call_model("limited", f"call {number}")
    return response.text


def _warm_up() -> None:
    """A process's first OpenAI SDK request spends ~0.4 s importing and building; made here,
    at import (before any run), to a model without limits, so that the limited calls' send
    times are not bunched behind it (the server counts arrivals, not permits)."""
    url = os.environ.get("LIMITS_WARM_UP_URL")
    if not url:
        return
    from bandmaster.models.openai_compat import OpenAIModel

    async def ask() -> None:
        model = OpenAIModel("warm-up", base_url=url, api_key="test")
        await model.request(bm.ModelRequest(input="warm up"))
        await model.aclose()

    asyncio.run(ask())


_warm_up()
