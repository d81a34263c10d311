"""Server-sent events of one run: its status changes and its steps as they are journaled,
until the run ends. The stream reads the journal, so it works whichever process executes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from bandmaster._types import TERMINAL_STATUSES
from bandmaster.errors import RunNotFound
from bandmaster.server.backend import RunBackend
from bandmaster.server.exposure import shown_run

KEEPALIVE = 15.0  # seconds between comments, so proxies do not close a quiet stream


def _event(number: int, kind: str, data: Any) -> str:
    return f"id: {number}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def run_events(
    engine: RunBackend, run_id: str, *, poll: float, internals: bool = False
) -> AsyncIterator[str]:
    """The stream; ``internals``: tracebacks and lease owner included (``exposure.shown_run``)."""
    seen_steps: dict[int, tuple[str, int, object]] = {}
    last_status: str | None = None
    number = 0
    quiet = 0.0
    while True:
        # describe() reads the run before its steps: a run seen finished has all its steps.
        try:
            info = shown_run(await engine.describe(run_id), internals=internals)
        except RunNotFound:
            return
        sent = False
        if info.status != last_status:
            last_status = info.status
            number += 1
            sent = True
            yield _event(number, "status", {"run_id": run_id, "status": info.status})
        for step in info.steps:
            key = (step.status, step.attempts, step.ended_at)
            if seen_steps.get(step.seq) != key:
                seen_steps[step.seq] = key
                number += 1
                sent = True
                yield _event(number, "step", step.model_dump(mode="json"))
        if info.status in TERMINAL_STATUSES:
            number += 1
            yield _event(number, "end", info.model_dump(mode="json", exclude={"steps"}))
            return
        quiet = 0.0 if sent else quiet + poll
        if quiet >= KEEPALIVE:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll)
