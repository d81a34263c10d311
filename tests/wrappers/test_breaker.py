"""``BreakerGate``: a circuit breaker in front of a model, driven by a hand-moved clock."""

from __future__ import annotations

import pytest
from tests.wrappers.helpers import Clock, Scripted, down

import bandmaster as bm
from bandmaster.calls.wrappers import BreakerGate, FallbackChain, LocalBreakers
from bandmaster.policies._breaker import Breaker

REQUEST = bm.ModelRequest(input="hello")
POLICY = Breaker(failures=2, window=30, reset=60)


async def test_failures_open_the_breaker_and_the_model_is_no_longer_asked() -> None:
    clock, seen = Clock(), dict[str, str]()
    model = Scripted("primary", down("primary"), down("primary"))
    gate = BreakerGate(model, POLICY, seen=seen, clock=clock)
    for _ in range(2):
        with pytest.raises(bm.ProviderUnavailable):
            await gate.request(REQUEST)
    assert seen == {"primary": "open"}
    with pytest.raises(bm.CircuitOpen, match="primary: circuit open"):
        await gate.request(REQUEST)
    assert model.calls == 2


async def test_after_reset_one_trial_closes_it_again() -> None:
    clock, seen = Clock(), dict[str, str]()
    model = Scripted("primary", down("primary"), down("primary"))
    gate = BreakerGate(model, POLICY, seen=seen, clock=clock)
    for _ in range(2):
        with pytest.raises(bm.ProviderUnavailable):
            await gate.request(REQUEST)
    clock.now += 60
    assert (await gate.request(REQUEST)).output == "primary: hello"
    assert seen == {"primary": "closed"}


async def test_an_invalid_request_says_nothing_about_availability() -> None:
    model = Scripted("primary", *(bm.InvalidRequest("bad") for _ in range(3)))
    gate = BreakerGate(model, POLICY, clock=Clock())
    for _ in range(3):
        with pytest.raises(bm.InvalidRequest):
            await gate.request(REQUEST)
    assert model.calls == 3  # never skipped


async def test_an_open_breaker_sends_the_chain_to_the_fallback() -> None:
    states, clock = LocalBreakers(), Clock()
    primary = Scripted("primary", down("primary"), down("primary"))
    for _ in range(2):
        with pytest.raises(bm.ProviderUnavailable):
            await BreakerGate(primary, POLICY, states=states, clock=clock).request(REQUEST)
    # A new gate (a new call) on the same states sees the breaker open.
    chain = FallbackChain([BreakerGate(primary, POLICY, states=states, clock=clock), Scripted("backup")])
    assert (await chain.request(REQUEST)).output == "backup: hello"
    assert primary.calls == 2
    assert states.breaker("primary").status == "open"
