"""Wrappers composed by hand and given to ``bm.call_model`` as its model, and a policy of
one's own added as one class."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.wrappers.helpers import Scripted, down

import bandmaster as bm
from bandmaster.calls.wrappers import BreakerGate, FallbackChain, Priced, ResponseCache, Wrapper, innermost
from bandmaster.models._pricing import Price
from bandmaster.policies._breaker import Breaker

PRICES = bm.PriceTable({"backup": Price(input=1.0, output=1.0)}, bundled=False)


async def test_a_stack_built_by_hand_serves_a_journaled_call(tmp_path: Path) -> None:
    primary = Scripted("primary", down("primary"), down("primary"))
    backup = Scripted("backup", usage=bm.Usage(input_tokens=1_000_000))

    @bm.workflow
    async def ask(text: str) -> float:
        chain = FallbackChain([BreakerGate(primary, Breaker(failures=1)), backup], name="mine")
        response = await bm.call_model(Priced(chain, PRICES), text, retry=bm.Retry(attempts=1))
        return response.cost

    async with bm.Engine(tmp_path / "journal.db", workflows=[ask]) as engine:
        handle = await engine.start(ask, "hello")
        cost = await handle.result(timeout=10)
        (step,) = (await handle.describe()).steps
    assert cost == pytest.approx(1.0)
    assert (primary.calls, backup.calls) == (1, 1)
    assert (step.name, step.kind, step.status) == ("mine", "model", "completed")
    assert (step.meta["model"], step.meta["cost"]) == ("backup", pytest.approx(1.0))


class CountingLimit(Wrapper):
    """A policy of one's own: at most ``limit`` requests, then refuse (one class)."""

    __slots__ = ("asked", "limit")

    def __init__(self, inner: bm.Model, limit: int) -> None:
        super().__init__(inner)
        self.limit, self.asked = limit, 0

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        if self.asked >= self.limit:
            raise bm.RateLimited(f"{self.name}: {self.limit} requests used")
        self.asked += 1
        return await self.inner.request(req)


async def test_a_new_policy_is_one_class_that_composes_with_the_others() -> None:
    primary, backup = Scripted("primary"), Scripted("backup")
    model = FallbackChain([CountingLimit(primary, 1), backup])
    answers = [(await bm.call_model(model, "hi")).output for _ in range(3)]
    assert answers == ["primary: hi", "backup: hi", "backup: hi"]
    assert innermost(CountingLimit(primary, 1)) is primary


async def test_a_cache_around_a_chain_answers_from_the_journal(tmp_path: Path) -> None:
    from bandmaster.store._sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "journal.db")
    try:
        backup = Scripted("backup")
        model = ResponseCache(FallbackChain([Scripted("primary", down("primary")), backup]), store, ttl=60)
        for _ in range(2):
            assert (await model.request(bm.ModelRequest(input="hi"))).output == "backup: hi"
            await asyncio.sleep(0)  # the store commits on the next loop turn
        assert backup.calls == 1
    finally:
        store.close()
