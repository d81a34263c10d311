"""More load for the dashboard test (tests/observe/test_deploy.py): a step that is retried
once per run and fails for good in every fifth, and an approval that stays pending."""

from __future__ import annotations

import bandmaster as bm

_tries: dict[int, int] = {}


@bm.step(retry=bm.Retry(attempts=2, initial=0.001, jitter=False))
async def check(n: int) -> int:
    _tries[n] = _tries.get(n, 0) + 1
    if _tries[n] == 1 or n % 5 == 0:
        raise bm.ProviderUnavailable(f"check {n} failed")
    return n


@bm.workflow
async def shaky(n: int) -> int:
    return await check(n)


@bm.workflow
async def reviewed(n: int) -> str:
    decision = await bm.approval("release", {"n": n}, timeout=600, default="approve")
    return decision.action
