"""Workflows for the redaction and approval-notification tests on both backends (module-level,
as Temporal needs). The PII constants are what must never reach a journal or history."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

import bandmaster as bm

PATIENT = "Margaret Okafor"
EMAIL = "margaret.okafor@example.com"
PHONE = "617-555-0142"
DAUGHTER = "Elena Okafor"
REVIEWER = "Theodore Vance"
REVIEWER_EMAIL = "theo.vance@clinic-mail.org"
SECRETS = (PATIENT, EMAIL, PHONE, DAUGHTER, REVIEWER, REVIEWER_EMAIL, "Okafor", "555-0142", "okafor@")
# (not "0142" alone: history holds timestamps and ids in which any four digits may occur)

TICKET = f"Pt {PATIENT} ({EMAIL}) asks for a callback at {PHONE}"
MODEL = "tredact-drafter"
SIGNING_SECRET = "tredact-signing-secret-0123456789abcdef"

HOOK: dict[str, Any] = {"url": None, "retry": None}
"""Set by the tests: where the approval webhook posts (a module-level setting, as an app's
configuration would be; the workflow builds its notifier from it)."""

SEEN: dict[str, Any] = {}


class Summary(BaseModel):
    text: str
    callback: str
    email: str


@bm.step(timeout=30)
async def summarise(ticket: str) -> Summary:
    # Gets the redacted ticket and returns new PII, as a lookup in the hospital system would.
    SEEN["step_input"] = ticket
    return Summary(text=f"Call back {DAUGHTER} about: {ticket}", callback=f"tel {PHONE}", email=EMAIL)


@bm.step(timeout=30)
async def admit(ticket: str) -> str:
    raise ValueError(f"no bed for {DAUGHTER}, call {PHONE}")


@bm.workflow(name="phi_intake", redact=bm.RedactPII())
async def phi_intake(ticket: str) -> dict[str, Any]:
    summary = await summarise(ticket)
    reply = await bm.call_model(MODEL, f"Draft a reply to: {ticket}")
    try:
        await admit(ticket)
        error = "none"
    except ValueError as exc:
        error = str(exc)
    review = await bm.wait_for("review", timeout=120)
    # A literal with PII in the workflow's own code: the run's output is redacted too.
    return {
        "ticket": ticket,
        "summary": summary.model_dump(),
        "reply": reply.text,
        "error": error,
        "review": review,
        "family": f"daughter {DAUGHTER}",
    }


@bm.step(timeout=30)
async def echo(text: str) -> str:
    return f"echo {text}"


@bm.workflow(name="plain_echo")
async def plain_echo(text: str) -> str:
    """No redactor of its own: the engine's ``redact=`` applies."""
    said = await echo(text)
    if "fail" in said:
        raise RuntimeError(f"could not reach {DAUGHTER} at {PHONE}")
    return said


def _webhook() -> bm.Webhook:
    retry = HOOK["retry"] or bm.Retry(attempts=4, initial=0.05, multiplier=2.0, max_delay=0.2)
    return bm.Webhook(HOOK["url"], secret=SIGNING_SECRET, timeout=2.0, retry=retry)


@bm.workflow(name="announced", redact=bm.RedactPII())
async def announced(ticket: str, timeout: float = 600.0) -> dict[str, Any]:
    decision = await bm.approval(
        "phi_review",
        {"ticket": ticket, "note": f"call {DAUGHTER} at {PHONE}"},
        timeout=timeout,
        default="send",
        notify=[_webhook()],
        approvers=["compliance"],
    )
    return {"action": decision.action, "by": decision.by, "timed_out": decision.timed_out}


Phone = Annotated[str, StringConstraints(pattern=r"^\d{3}-\d{3}-\d{4}$")]


class Contact(BaseModel):
    phone: Phone


@bm.step(timeout=30)
async def lookup() -> Contact:
    return Contact(phone=PHONE)


@bm.workflow(name="strict_contact", redact=bm.RedactPII())
async def strict_contact() -> str:
    try:
        await lookup()
    except bm.RedactionError as exc:
        return f"caught: {exc}"
    return "no error"


@bm.workflow(name="held_for_note", redact=bm.RedactPII())
async def held_for_note(ticket: str) -> dict[str, Any]:
    """Waits for a note that a client without this workflow's code sends."""
    return {"ticket": ticket, "note": await bm.wait_for("note", timeout=120)}


@bm.workflow(name="held_for_note_hashed", redact=bm.RedactPII(mode="hash", key="tredact-hash-key-0123456789"))
async def held_for_note_hashed(ticket: str) -> str:
    return str(await bm.wait_for("note", timeout=120))
