"""Workflows for the outbox tests: runs that need their signals to finish."""

from __future__ import annotations

import bandmaster as bm


@bm.step
async def bill(order: str, amount: int) -> str:
    return f"billed {order} {amount}"


@bm.workflow(name="pay")
async def pay(order: str) -> str:
    amount = await bm.wait_for("amount", type=int)
    return await bill(order, amount)


@bm.workflow(name="twice")
async def twice() -> list[int]:
    """Two waits on one signal name: a signal delivered twice would fill both."""
    first = await bm.wait_for("n", type=int)
    second = await bm.wait_for("n", timeout=3, default=-1)
    return [first, second]
