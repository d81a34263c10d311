"""Patient-support triage: the field report's healthcare system, on bandmaster.

"Route incoming patient support tickets to the right agent or automated response, in under
5 seconds." For each ticket, in parallel: classify the intent with a cascade of three local
models (cheap first, escalating only when unsure) and scan for PHI. Tickets with PHI are
flagged for review and wait; unless a reviewer holds them, they go on when the review window
closes ("redact, flag for review, wait, then send unless overridden"). Confident billing
questions get an automated reply, checked against a schema; everything else goes to the right
human queue, with a summary of the customer's earlier messages when there are any.

Run it with ``bandmaster demo`` (see ``demo.py``); build the engine yourself with
``build_models`` and ``triage`` as below to embed it:

    models = build_models(load_tickets(TRAIN), cache_dir=Path(".bandmaster/models"))
    async with bm.Engine("triage.db", workflows=[triage], registry=models.registry) as engine:
        outcome = await (await engine.start(triage, ticket)).result()
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from pydantic import BaseModel

import bandmaster as bm

HERE = Path(__file__).parent
TRAIN, TICKETS = HERE / "train.jsonl", HERE / "tickets.jsonl"
REVIEW_WINDOW = 2.0  # seconds a flagged ticket waits for a reviewer (the report used 5 minutes)
AUTO_REPLY_CONFIDENCE = 0.9  # the report's "billing with > 0.9 confidence"

# PHI never reaches the journal: the workflow's redactor (Presidio with clinical recognizers)
# rewrites the ticket, every step output and every approval payload before they are written,
# and the workflow itself sees the redacted text. Entities become placeholders (<PERSON>).
REDACTOR = bm.RedactPII()
PLACEHOLDER = re.compile(r"<([A-Z_]+)>")


class Ticket(BaseModel):
    id: str
    customer: str
    text: str
    history: list[str] = []


class Intent(BaseModel):
    label: str
    confidence: float
    model: str  # the cascade stage whose answer was taken
    stages: int  # how many models were asked
    cost: float


class PhiScan(BaseModel):
    found: bool
    entities: list[str]  # entity types, never the values


class Reply(BaseModel):
    subject: str
    body: str


class Outcome(BaseModel):
    ticket: str
    route: str  # auto_reply, or a human queue: billing_team / nurse / it_support / accounts
    intent: Intent
    phi: list[str]
    review: str | None = None  # what the PHI review decided: "send" (the timed default) or "hold"
    reply: Reply | None = None
    summary: str | None = None


def read_intent(response: bm.ModelResponse) -> Intent:
    """The cascade's answer as an Intent: which stage answered, and how many were asked."""
    stages = (response.raw or {}).get("stages", [])
    accepted = next((s for s in stages if s["accepted"]), stages[-1] if stages else None)
    return Intent(
        label=str(response.output),
        confidence=round(float(response.confidence or 0.0), 4),
        model=accepted["model"] if accepted else response.model,
        stages=len(stages) or 1,
        cost=response.cost,
    )


@bm.step(timeout=1.5, retry=bm.Retry(attempts=3, initial=0.05))
def scan_phi(text: str) -> PhiScan:
    """What the redactor found in this ticket, by entity type (the values never get here)."""
    entities = sorted(set(PLACEHOLDER.findall(text)))
    return PhiScan(found=bool(entities), entities=entities)


# The auto-reply is held to the legal guard set: low temperature, no promises the clinic cannot
# make, a bounded length, and a Reply-shaped JSON answer (re-asked with the error when it is not).
REPLY_GUARD = [
    bm.ModelSettings(temperature=0.2, response_format="json"),
    bm.BannedTopics(["diagnosis", "guarantee", "legal advice"], direction="output"),
    bm.MaxTokens(300, direction="output"),
    bm.JsonSchema(Reply, reask=2),
]


@bm.step(timeout=2.0)
async def summarize_history(customer: str, history: list[str]) -> str:
    response = await bm.call_model("summarizer", "\n".join(history), max_tokens=120)
    return response.text


ROUTER = bm.Router(default="human", variables=["intent"])
ROUTER.add_route(
    f"intent.label == 'billing' and intent.confidence > {AUTO_REPLY_CONFIDENCE}",
    "auto_reply",
    name="confident_billing",
)


QUEUES = {"billing": "billing_team", "clinical": "nurse", "technical": "it_support", "account": "accounts"}


@bm.workflow(name="support_triage", redact=REDACTOR)
async def triage(ticket: Ticket) -> Outcome:
    # Both journaled, side by side: the model call (with its retries, timeout and fallback from
    # the registry's policy) and the PHI scan.
    response, phi = await asyncio.gather(bm.call_model("intent", ticket.text), scan_phi(ticket.text))
    intent = read_intent(response)
    review = None
    if phi.found:
        # Redacted already; flag for review, wait; send unless a reviewer holds it (the report's fix).
        decision = await bm.approval(
            "phi_review",
            {"ticket": ticket.id, "redacted": ticket.text, "entities": phi.entities},
            timeout=REVIEW_WINDOW,
            default="send",
            approvers=["compliance"],
        )
        review = decision.action
        if review == "hold":
            return Outcome(
                ticket=ticket.id, route="held_for_review", intent=intent, phi=phi.entities, review=review
            )
    decision = ROUTER.decide(intent=intent)
    if decision.route == "auto_reply":
        drafted = await bm.call_model("reply", ticket.text, guard=REPLY_GUARD)
        reply = drafted.output
        return Outcome(
            ticket=ticket.id, route="auto_reply", intent=intent, phi=phi.entities, review=review, reply=reply
        )
    summary = await summarize_history(ticket.customer, ticket.history) if ticket.history else None
    route = QUEUES.get(intent.label, "general")
    return Outcome(
        ticket=ticket.id, route=route, intent=intent, phi=phi.entities, review=review, summary=summary
    )


def load_tickets(path: Path, limit: int | None = None) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows
