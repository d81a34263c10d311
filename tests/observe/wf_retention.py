"""A small workflow for the retention test: three journaled steps, a few KB of journal."""

from __future__ import annotations

import bandmaster as bm


@bm.step
async def enrich(text: str) -> str:
    return text.upper() * 20


@bm.workflow(name="retained")
async def retained(text: str) -> int:
    first = await enrich(text)
    second = await enrich(first[:10])
    stamp = bm.now()
    return len(first) + len(second) + (1 if stamp else 0)
