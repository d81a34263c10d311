"""A run followed live: its status changes, its steps as they are journaled (and model streams
as they start), the token chunks of its model streams as they arrive, and its end. Read from
the journal and its ``stream_chunks`` side channel by polling, so it works whichever process
executes the run. The server's SSE endpoint and ``bandmaster runs watch`` are both made of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from bandmaster._types import TERMINAL_STATUSES
from bandmaster.engine import RunInfo
from bandmaster.errors import RunNotFound
from bandmaster.store import ChunkRow

UpdateKind = Literal["status", "step", "token", "end", "quiet"]
ChunkReader = Callable[[str, int], list[ChunkRow]]
"""``(run_id, after)`` → the run's chunk rows written after row ``after``."""


async def run_updates(
    describe: Callable[[str], Awaitable[RunInfo]],
    run_id: str,
    *,
    poll: float,
    chunks: ChunkReader | None = None,
    quiet_after: float = 15.0,
) -> AsyncIterator[tuple[UpdateKind, dict[str, Any]]]:
    """``(kind, data)`` until the run ends (or is gone). ``step`` data is a journaled step
    (``StepInfo`` as JSON), or ``{"seq", "name", "kind": "model", "status": "running"}`` when
    a model stream starts, or ``{"seq", "name", "kind", "status": "running", "marker":
    "started"}`` when a step starts (a worker with ``live_steps``); ``token`` is ``{"seq",
    "text", "restart"}``; ``quiet`` comes after ``quiet_after`` seconds without news (a
    keep-alive for the SSE stream). ``chunks`` None: no tokens (the Temporal backend)."""
    seen_steps: dict[int, tuple[str, int, object]] = {}
    last_chunk = 0
    last_status: str | None = None
    quiet = 0.0
    while True:
        # describe() reads the run before its steps: a run seen finished has all its steps.
        try:
            info = await describe(run_id)
        except RunNotFound:
            return
        sent = False
        started: list[ChunkRow] = []
        ended = info.status in TERMINAL_STATUSES
        status = None if info.status == last_status else {"run_id": run_id, "status": info.status}
        last_status = info.status
        if status is not None and not ended:
            sent = True
            yield "status", status
        # Read after the run: the chunks of a stream whose step is journaled are all written.
        for row in chunks(run_id, last_chunk) if chunks is not None else ():
            last_chunk, sent = row.id, True
            if row.step_kind is not None:  # a step started: told after the steps that ended
                started.append(row)
                continue
            if seen_steps.get(row.seq, ("started",))[0] == "started":  # the stream started
                seen_steps[row.seq] = ("running", 0, None)
                yield "step", {"seq": row.seq, "name": row.name, "kind": "model", "status": "running"}
            if row.text or row.restart:
                yield "token", {"seq": row.seq, "text": row.text, "restart": row.restart}
        for step in info.steps:
            key = (step.status, step.attempts, step.ended_at)
            if seen_steps.get(step.seq) != key:
                seen_steps[step.seq] = key
                sent = True
                yield "step", step.model_dump(mode="json")
        for row in started:  # one that ended already was told as such
            if row.seq not in seen_steps:
                seen_steps[row.seq] = ("started", 0, None)
                marker = {"seq": row.seq, "name": row.name, "kind": row.step_kind, "status": "running"}
                yield "step", {**marker, "marker": "started"}
        if ended:  # its last tokens and steps first, then the outcome
            if status is not None:
                yield "status", status
            yield "end", info.model_dump(mode="json", exclude={"steps"})
            return
        quiet = 0.0 if sent else quiet + poll
        if quiet >= quiet_after:
            quiet = 0.0
            yield "quiet", {}
        await asyncio.sleep(poll)
