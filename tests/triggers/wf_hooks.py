"""Workflows of the triggers server tests: started by signed webhooks, on a schedule, and one
whose approval notification is signed in the Standard Webhooks format."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

import bandmaster as bm


class Ticket(BaseModel):
    id: str
    text: str = Field(min_length=1)


@bm.workflow
async def triage(ticket: Ticket) -> str:
    return f"{ticket.id}: {ticket.text}"


@bm.workflow
async def inbox(message: dict[str, Any]) -> str:
    """Receives bandmaster's own approval notifications (the Slack-compatible body)."""
    return str(message["bandmaster"]["approval"])


@bm.schedule("0 3 * * *", name="nightly-report", catchup="latest")
@bm.workflow
async def nightly() -> str:
    return "report"


@bm.workflow
async def notified(url: str, secret: str) -> bm.Decision:
    hook = bm.Webhook(url, secret=secret, signature="standard", retry=bm.Retry(attempts=3, initial=0.1))
    return await bm.approval("review", {"ticket": "T-1"}, timeout=60, default="approve", notify=[hook])
