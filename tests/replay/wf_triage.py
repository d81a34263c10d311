"""A small support-triage workflow for the replay tests: classify with a model, route on its
confidence against THRESHOLD, then reply or escalate. Tests change THRESHOLD (as a deploy
would change the code) and replay the recorded runs."""

from __future__ import annotations

import os

from pydantic import BaseModel

import bandmaster as bm

THRESHOLD = float(os.environ.get("TRIAGE_THRESHOLD", "0.8"))  # the CLI tests change it by env

router = bm.Router(default="human", variables=["label", "confidence", "threshold"], name="triage_router")
router.add_route("label != 'other' and confidence >= threshold", "auto_reply", name="confident")


class Ticket(BaseModel):
    id: str
    text: str


@bm.step
async def send_reply(ticket_id: str, label: str) -> str:
    return f"replied to {ticket_id} about {label}"


@bm.step
async def escalate(ticket_id: str) -> str:
    return f"escalated {ticket_id}"


@bm.workflow
async def triage(ticket: Ticket) -> str:
    intent = await bm.call_model("intent", ticket.text)
    decision = router.decide(label=intent.output, confidence=intent.confidence, threshold=THRESHOLD)
    if decision.route == "auto_reply":
        await send_reply(ticket.id, intent.output)
    else:
        await escalate(ticket.id)
    return decision.route


def intent_today(text: str) -> dict[str, object]:
    """Today's intent model for ``--live-models`` (models.yaml ``function: wf_triage:intent_today``):
    sure of everything, at a cent a call."""
    return {"output": "billing", "confidence": 0.99, "cost": 0.01}
