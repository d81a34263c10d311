"""Version 1 of ``triage`` for the rolling-upgrade test: it waits on a review, then answers."""

from __future__ import annotations

from typing import Any

import bandmaster as bm


@bm.step(timeout=10)
async def answer(text: str, action: str) -> str:
    return f"v1:{text}:{action}"


@bm.workflow(name="triage", version="1")
async def triage(text: str) -> dict[str, Any]:
    decision = await bm.approval("review", {"text": text}, timeout=3600, default="send")
    return {"version": "1", "reply": await answer(text, decision.action)}


WORKFLOWS = [triage]
