"""Version 2 of ``triage``: a step runs before the review, so a v1 history replayed on this code
would diverge at once (the non-determinism error the versions keep runs from)."""

from __future__ import annotations

from typing import Any

import bandmaster as bm


@bm.step(timeout=10)
async def classify(text: str) -> str:
    return "billing" if "charge" in text else "other"


@bm.step(timeout=10)
async def answer_v2(text: str, topic: str, action: str) -> str:
    return f"v2:{topic}:{text}:{action}"


@bm.workflow(name="triage", version="2")
async def triage(text: str) -> dict[str, Any]:
    topic = await classify(text)
    decision = await bm.approval("review", {"text": text, "topic": topic}, timeout=3600, default="send")
    return {"version": "2", "reply": await answer_v2(text, topic, decision.action)}


@bm.workflow(name="greet", version="2")
async def greet(name: str) -> dict[str, Any]:
    return {"version": "2", "greeting": f"{await bm.wait_for('go', timeout=600)} {name}"}


WORKFLOWS = [triage, greet]
