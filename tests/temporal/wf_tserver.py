"""Workflows served by ``bandmaster server --backend temporal`` in the tests, and run by a real
``bandmaster worker --backend temporal`` process (module-level, as Temporal needs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import bandmaster as bm


class Ticket(BaseModel):
    id: str
    text: str


class Redact:
    """A stand-in redactor (Presidio has its own tests): masks one known name."""

    def redact(self, value: Any) -> Any:
        return value.replace("Mrs. Garcia", "<PERSON>") if isinstance(value, str) else value


@bm.step(timeout=10)
async def classify(ticket: Ticket) -> str:
    return "billing" if "charged" in ticket.text else "other"


@bm.workflow
async def triage(ticket: Ticket) -> str:
    label = await classify(ticket)
    return f"{ticket.id}:{label}"


@bm.workflow(redact=Redact())
async def reviewed(ticket: Ticket, timeout: float = 600.0) -> dict[str, Any]:
    label = await classify(ticket)
    decision = await bm.approval(
        "phi_review",
        {"id": ticket.id, "label": label},
        timeout=timeout,
        default="send",
        approvers=["alice", "carol"],
    )
    return {
        "action": decision.action,
        "by": decision.by,
        "comment": decision.comment,
        "timed_out": decision.timed_out,
    }


@bm.workflow
async def two_reviews() -> list[str]:
    first = await bm.approval("legal", timeout=600, default="send")
    second = await bm.approval("medical", timeout=600, default="send")
    return [first.action, second.action]


class Ping:
    """A notifier (bm.Webhook's protocol) that would only print."""

    target = "stdout"
    retry = bm.Retry(attempts=1)
    timeout = 1.0

    async def send(self, request: Any, attempt: int) -> dict[str, Any]:
        print(request)
        return {}


@bm.workflow
async def notifies() -> str:
    decision = await bm.approval("ping", notify=[Ping()])
    return decision.action


@bm.workflow
async def paused(text: str) -> str:
    reply = await bm.wait_for("reply", timeout=600)
    return f"{text}:{reply}"


@bm.workflow
async def sleepy() -> str:
    await bm.sleep(3600)
    return "woke"


@bm.workflow
async def broken(text: str) -> str:
    raise ValueError(f"cannot handle {text}")


class RedactDeep(Redact):
    """The stand-in redactor, applied to every string of a JSON value."""

    def redact(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        if isinstance(value, dict):
            return {key: self.redact(item) for key, item in value.items()}
        return super().redact(value)


@bm.workflow(redact=RedactDeep())
async def intake(ticket: Ticket) -> str:
    return await classify(ticket)
