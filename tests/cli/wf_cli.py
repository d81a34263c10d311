"""Workflows for the CLI tests, loaded by ``bandmaster`` as ``tests/cli/wf_cli.py:NAME``."""

from __future__ import annotations

from pydantic import BaseModel

import bandmaster as bm


@bm.step
async def shout(name: str) -> str:
    return name.upper()


@bm.workflow
async def greet(name: str) -> dict[str, str]:
    return {"greeting": f"hello {await shout(name)}"}


class Order(BaseModel):
    item: str
    qty: int


@bm.step
async def price(qty: int) -> float:
    return 2.5 * qty


@bm.workflow
async def order(item: str, qty: int) -> Order:
    await price(qty)
    return Order(item=item, qty=qty)


@bm.step
async def check(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * 2


@bm.workflow
async def double(x: int) -> int:
    return await check(x)


@bm.workflow
async def gate(ticket: str) -> dict[str, object]:
    decision = await bm.wait_for("approve")
    return {"ticket": ticket, "decision": decision}
