"""Workflows run by ``bandmaster worker`` processes in the model tests."""

from __future__ import annotations

from typing import Any

import bandmaster as bm


@bm.workflow
async def classify_ticket(text: str) -> dict[str, Any]:
    response = await bm.call_model("classification", text)
    return {"output": response.output, "model": response.model}
