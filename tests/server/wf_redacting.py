"""A redacting workflow the idempotency and redaction server tests import (by path)."""

from __future__ import annotations

from typing import Any

import bandmaster as bm

# What the tests write in and must never find in the journal.
PATIENT = "Margaret Okafor"
PHONE = "617-555-0142"
DAUGHTER = "Elena Okafor"
SECRETS = (PATIENT, PHONE, DAUGHTER, "Okafor", "0142")


@bm.step
async def note(text: str) -> str:
    return f"noted: {text}"


@bm.workflow(name="intake", redact=bm.RedactPII())
async def intake(ticket: str) -> dict[str, Any]:
    first = await note(ticket)
    review = await bm.wait_for("review", timeout=600)
    return {"note": first, "review": review}
