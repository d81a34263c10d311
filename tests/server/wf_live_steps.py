"""A workflow with a step that runs until the test lets it end, for step starts published by
a worker with ``--live-steps`` (tests/server/test_live_steps.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import bandmaster as bm

LIMIT = 30.0  # seconds the step waits at most: a failed test never hangs
PAUSE = 0.05


@bm.step
async def wait_for_file(path: str) -> str:
    gate = Path(path)
    await asyncio.to_thread(Path(f"{path}.entered").touch)  # for a test that waits for it
    for _ in range(int(LIMIT / PAUSE)):
        if await asyncio.to_thread(gate.exists):
            return "released"
        await asyncio.sleep(PAUSE)
    return "timed out"


@bm.step
async def shout(text: str) -> str:
    return text.upper()


@bm.workflow
async def gated(path: str) -> str:
    return await shout(await wait_for_file(path))
