"""A redacting workflow the idempotency and redaction server tests import (by path)."""

from __future__ import annotations

from typing import Any

import bandmaster as bm


@bm.step
async def note(text: str) -> str:
    return f"noted: {text}"


@bm.workflow(name="intake", redact=bm.RedactPII())
async def intake(ticket: str) -> dict[str, Any]:
    first = await note(ticket)
    review = await bm.wait_for("review", timeout=600)
    return {"note": first, "review": review}
