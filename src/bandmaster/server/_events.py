"""Server-sent events of one run: its status changes, its steps as they are journaled, and the
token chunks of its model streams as they arrive, until the run ends (``observe.live``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from bandmaster.engine import RunInfo
from bandmaster.engine.backend import Backend
from bandmaster.observe import ChunkReader, run_updates
from bandmaster.server._exposure import shown_run

KEEPALIVE = 15.0  # seconds between comments, so proxies do not close a quiet stream


def _event(number: int, kind: str, data: Any) -> str:
    return f"id: {number}\nevent: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def run_events(
    engine: Backend,
    run_id: str,
    *,
    poll: float,
    internals: bool = False,
    chunks: ChunkReader | None = None,
) -> AsyncIterator[str]:
    """The stream; ``internals``: tracebacks and lease owner included (``exposure.shown_run``);
    ``chunks``: where model streams' token chunks are read (None: no ``token`` events)."""

    async def describe(run: str) -> RunInfo:
        return shown_run(await engine.describe(run), internals=internals)

    number = 0
    async for kind, data in run_updates(describe, run_id, poll=poll, chunks=chunks, quiet_after=KEEPALIVE):
        if kind == "quiet":
            yield ": keep-alive\n\n"
            continue
        number += 1
        yield _event(number, kind, data)
