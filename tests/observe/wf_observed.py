"""The workflow the observed worker process runs (tests/observe/test_prometheus.py)."""

from __future__ import annotations

import bandmaster as bm


@bm.step
async def double(x: int) -> int:
    return 2 * x


@bm.step
async def add_one(x: int) -> int:
    return x + 1


@bm.workflow
async def observed(x: int) -> int:
    return await add_one(await double(x))
