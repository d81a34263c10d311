"""Support-ticket triage on the embedded engine: the quickstart example.

Classify intent and scan for PHI in parallel, then route: billing tickets with a confident
intent get an automated reply, tickets with PHI wait for a reviewer (with a timed default),
everything else goes to a human queue with a summary. The "models" here are small local rules
so the example runs offline; the flaky one fails now and then so retries show in the journal.

    bandmaster run examples/quickstart/triage.py:triage --batch examples/quickstart/tickets.jsonl
"""

from __future__ import annotations

import asyncio
import hashlib
import re

from pydantic import BaseModel

import bandmaster as bm


class Ticket(BaseModel):
    id: str
    text: str


class Intent(BaseModel):
    label: str
    confidence: float


class Routing(BaseModel):
    route: str  # auto_reply / phi_review / human
    intent: str
    confidence: float
    reply: str | None = None


KEYWORDS = {
    "billing": ("bill", "charge", "invoice", "refund", "payment", "insurance", "copay"),
    "clinical": ("pain", "symptom", "medication", "dose", "prescription", "fever", "side effect"),
    "technical": ("app", "login", "password", "portal", "error", "crash", "website"),
    "account": ("address", "email", "account", "profile", "name change", "cancel my"),
}
PHI = re.compile(r"\b(\d{3}-\d{2}-\d{4}|MRN[:\s]*\d{6,}|\d{2}/\d{2}/\d{4})\b")


def _flaky(text: str, attempt: int) -> bool:
    # One ticket in ten fails its first attempt, deterministically, like a 503 would.
    return attempt == 1 and hashlib.sha256(text.encode()).digest()[0] < 26


@bm.step(timeout=2.0, retry=bm.Retry(attempts=3, initial=0.05))
async def classify(text: str) -> Intent:
    step = bm.current_step()
    if step is not None and _flaky(text, step.attempt):
        raise bm.ProviderUnavailable("intent model returned 503")
    await asyncio.sleep(0.01)  # stands in for a model call
    lowered = text.lower()
    hits = {label: sum(word in lowered for word in words) for label, words in KEYWORDS.items()}
    label, best = max(hits.items(), key=lambda kv: kv[1])
    total = sum(hits.values())
    if best == 0:
        return Intent(label="general", confidence=0.3)
    return Intent(label=label, confidence=round(0.5 + 0.5 * best / total * min(best, 2) / 2, 3))


@bm.step(timeout=2.0)
def scan_phi(text: str) -> bool:
    return PHI.search(text) is not None


@bm.step
async def draft_reply(ticket: Ticket, intent: Intent) -> str:
    return f"Hi, thanks for reaching out about your {intent.label} question (ticket {ticket.id}). ..."


@bm.workflow
async def triage(ticket: Ticket) -> Routing:
    intent, has_phi = await asyncio.gather(classify(ticket.text), scan_phi(ticket.text))
    if has_phi:
        # A reviewer may override; if nobody answers in time, the safe default applies.
        decision = await bm.wait_for("phi_review", timeout=0.2, default="human")
        return Routing(route=f"phi_review:{decision}", intent=intent.label, confidence=intent.confidence)
    if intent.label == "billing" and intent.confidence >= 0.75:
        reply = await draft_reply(ticket, intent)
        return Routing(route="auto_reply", intent=intent.label, confidence=intent.confidence, reply=reply)
    return Routing(route="human", intent=intent.label, confidence=intent.confidence)
