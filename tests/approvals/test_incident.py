"""The reported incident, end to end (field report: healthcare support triage, December 2023).

A PHI detector flagged a false positive; the orchestrator redacted and sent the ticket to
billing, who could not use it; 47 tickets fell through. The fix: "redact, flag for review,
wait 5 minutes, then send unless overridden". Here: a rule-based detector (a stand-in for the
PHI model) flags an invoice number that looks like an SSN and a customer's name; the workflow
redacts, opens a ``phi_review`` approval announced by a signed webhook to a real receiver
process, and waits. Nobody answers → the redacted ticket is sent on the timed default. A
compliance reviewer overrides → nothing is sent and a person gets the ticket.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from tests.approvals.conftest import SECRET, Receiver
from tests.conftest import StatusWaiter
from tests.extras import needs

import bandmaster as bm

pytestmark = needs("approvals", "httpx2")  # bm.Webhook announces the approval

# Patterns a naive PHI detector uses; the first one also matches invoice numbers.
PHI_RULES = {
    "SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "PERSON": re.compile(r"\b(?:Mr|Mrs|Ms|Dr)\.? [A-Z][a-z]+\b"),
    "MRN": re.compile(r"\bMRN[:#]? ?\d{6,}\b"),
}

TICKET_TEXT = "Hello, this is Mrs. Garcia. Invoice 123-45-6789 was charged twice, please refund one."
BILLING_OUTBOX: dict[str, str] = {}  # idempotency key -> text sent to the billing team
HUMAN_QUEUE: dict[str, str] = {}


class Ticket(BaseModel):
    id: str
    text: str


class Finding(BaseModel):
    entity: str
    start: int
    end: int


class Outcome(BaseModel):
    ticket_id: str
    routed: Literal["billing", "human"]
    sent_text: str | None
    review: bm.Decision | None


@bm.step
def detect_phi(text: str) -> list[Finding]:
    return [
        Finding(entity=entity, start=m.start(), end=m.end())
        for entity, rule in PHI_RULES.items()
        for m in rule.finditer(text)
    ]


@bm.step
def redact(text: str, findings: list[Finding]) -> str:
    for finding in sorted(findings, key=lambda f: f.start, reverse=True):
        text = text[: finding.start] + f"<{finding.entity}>" + text[finding.end :]
    return text


@bm.step
async def send_to_billing(text: str) -> str:
    step = bm.current_step()
    assert step is not None
    BILLING_OUTBOX[step.idempotency_key] = text  # a re-execution overwrites, never duplicates
    return "sent"


@bm.step
async def queue_for_human(ticket_id: str, reason: str) -> str:
    HUMAN_QUEUE[ticket_id] = reason
    return "queued"


@bm.workflow
async def triage_ticket(ticket: Ticket, hook_url: str, review_timeout: float = 300.0) -> Outcome:
    findings = await detect_phi(ticket.text)
    if not findings:
        await send_to_billing(ticket.text)
        return Outcome(ticket_id=ticket.id, routed="billing", sent_text=ticket.text, review=None)
    redacted = await redact(ticket.text, findings)
    review = await bm.approval(
        "phi_review",
        {"ticket_id": ticket.id, "redacted": redacted, "entities": [f.entity for f in findings]},
        timeout=review_timeout,
        default="send",
        notify=[bm.Webhook(hook_url, secret=SECRET, retry=bm.Retry(attempts=3, initial=0.05))],
        approvers=["compliance-officer"],
    )
    if review.action == "send":
        await send_to_billing(redacted)
        return Outcome(ticket_id=ticket.id, routed="billing", sent_text=redacted, review=review)
    await queue_for_human(ticket.id, review.comment or review.action)
    return Outcome(ticket_id=ticket.id, routed="human", sent_text=None, review=review)


def _assert_review_was_announced_redacted(receiver: Receiver, run_id: str) -> None:
    [request] = receiver.requests()
    assert request["verified"], request["error"]
    body = request["body"]
    assert run_id in body
    assert "Garcia" not in body  # the reviewer sees the redacted ticket only
    assert "123-45-6789" not in body
    assert json.loads(body)["bandmaster"]["payload"]["entities"] == ["SSN", "PERSON"]


async def test_nobody_answers_so_the_redacted_ticket_is_sent_on_the_default(
    engine: bm.Engine, receiver: Receiver, db_path: Path
) -> None:
    BILLING_OUTBOX.clear()
    HUMAN_QUEUE.clear()
    handle = await engine.start(triage_ticket, Ticket(id="T-47", text=TICKET_TEXT), receiver.url, 0.5)
    outcome = await handle.result(timeout=20)

    assert outcome.routed == "billing"
    assert outcome.review is not None
    assert (outcome.review.action, outcome.review.by, outcome.review.timed_out) == ("send", None, True)
    expected = "Hello, this is <PERSON>. Invoice <SSN> was charged twice, please refund one."
    assert outcome.sent_text == expected
    assert list(BILLING_OUTBOX.values()) == [expected]
    assert HUMAN_QUEUE == {}
    _assert_review_was_announced_redacted(receiver, handle.id)
    with sqlite3.connect(db_path) as conn:
        audit = conn.execute("SELECT who, event, action, default_fired FROM approval_audit").fetchall()
    assert audit == [(None, "default", "send", 1)]


async def test_the_reviewer_overrides_so_nothing_is_sent(
    engine: bm.Engine, receiver: Receiver, until_status: StatusWaiter
) -> None:
    BILLING_OUTBOX.clear()
    HUMAN_QUEUE.clear()
    handle = await engine.start(triage_ticket, Ticket(id="T-48", text=TICKET_TEXT), receiver.url, 30.0)
    await until_status(engine, handle.id, "waiting")
    _assert_review_was_announced_redacted(receiver, handle.id)
    [pending] = await engine.approvals.list()
    assert pending.payload["redacted"].startswith("Hello, this is <PERSON>. Invoice <SSN>")

    with_comment = "invoice number, not an SSN: billing needs it"
    await engine.approvals.override(handle.id, by="compliance-officer", comment=with_comment)
    outcome = await handle.result(timeout=20)

    assert outcome.routed == "human"
    assert outcome.review is not None
    assert (outcome.review.action, outcome.review.by, outcome.review.timed_out) == (
        "override",
        "compliance-officer",
        False,
    )
    assert BILLING_OUTBOX == {}
    assert {"T-48": with_comment} == HUMAN_QUEUE
    steps = [(s.name, s.kind) for s in (await handle.describe()).steps]
    assert steps == [
        ("detect_phi", "step"),
        ("redact", "step"),
        ("phi_review", "approval"),
        ("notify:phi_review", "notify"),
        (f"approval:phi_review:{pending.seq}", "wait"),
        ("phi_review", "decision"),
        ("queue_for_human", "step"),
    ]
