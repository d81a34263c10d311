"""The chains of bench_temporal_redact.py: the same 10 steps without a redactor and with
``RedactPII()``, on values that repeat (the redactor's cache answers) or change every step."""

from __future__ import annotations

import bandmaster as bm

STEPS = 10
NOTE = "Call back Margaret Okafor at 617-555-0142 about her refund"


@bm.step(timeout=30)
async def same(text: str) -> str:
    return text  # the same string every step and run: after the first, a cache hit


@bm.step(timeout=30)
async def fresh(text: str, i: int) -> str:
    return f"{text} (#{i})"  # a new string every step: one Presidio analysis each


async def _run(text: str, varied: bool) -> str:
    for i in range(STEPS):
        text = await fresh(text, i) if varied else await same(text)
    return text


@bm.workflow
async def plain(text: str, varied: bool) -> str:
    return await _run(text, varied)


@bm.workflow(redact=bm.RedactPII())
async def redacted(text: str, varied: bool) -> str:
    return await _run(text, varied)
