"""``FallbackChain``: models asked in order, errors by name, notes of who served."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import pytest
from tests.wrappers.helpers import Scripted, down

import bandmaster as bm
from bandmaster.calls.wrappers import FallbackChain

REQUEST = bm.ModelRequest(input="hello")


async def test_the_first_model_that_answers_serves_and_the_rest_are_not_asked() -> None:
    primary, backup, spare = Scripted("primary", down("primary")), Scripted("backup"), Scripted("spare")
    notes: dict[str, Any] = {}
    response = await FallbackChain([primary, backup, spare], notes=notes).request(REQUEST)
    assert response.output == "backup: hello"
    assert (primary.calls, backup.calls, spare.calls) == (1, 1, 0)
    assert notes == {"served_by": "backup", "fallback": "backup"}


async def test_the_primary_answering_is_no_fallback() -> None:
    notes: dict[str, Any] = {}
    await FallbackChain([Scripted("primary"), Scripted("backup")], notes=notes).request(REQUEST)
    assert notes == {"served_by": "primary", "fallback": None}


async def test_one_failure_is_raised_as_it_is() -> None:
    error = down("only")
    with pytest.raises(bm.ProviderUnavailable) as caught:
        await FallbackChain([Scripted("only", error)]).request(REQUEST)
    assert caught.value is error


async def test_every_failure_is_named_when_all_fail() -> None:
    chain = FallbackChain([Scripted("a", down("a")), Scripted("b", bm.RateLimited("b: 429"))], name="intent")
    with pytest.raises(bm.FallbacksExhausted) as caught:
        await chain.request(REQUEST)
    assert caught.value.target == "intent"
    assert {name: type(e) for name, e in caught.value.errors.items()} == {
        "a": bm.ProviderUnavailable,
        "b": bm.RateLimited,
    }


async def test_a_violation_that_asks_to_be_raised_ends_the_chain() -> None:
    violation = bm.GuardViolation("banned_topics", "output", "mentions a competitor", fallback=False)
    backup = Scripted("backup")
    with pytest.raises(bm.GuardViolation):
        await FallbackChain([Scripted("primary", violation), backup]).request(REQUEST)
    assert backup.calls == 0


async def test_what_the_chain_falls_back_on_is_a_choice() -> None:
    backup = Scripted("backup")
    chain = FallbackChain(
        [Scripted("primary", bm.InvalidRequest("bad prompt")), backup],
        falls_back=lambda error: not isinstance(error, bm.InvalidRequest),
    )
    with pytest.raises(bm.InvalidRequest):
        await chain.request(REQUEST)
    assert backup.calls == 0


class Built(Sequence[bm.Model]):
    """Models made when the chain reaches them; records which were made."""

    def __init__(self, *models: Scripted) -> None:
        self.models = models
        self.built: list[str] = []

    def __len__(self) -> int:
        return len(self.models)

    @overload
    def __getitem__(self, index: int) -> bm.Model: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bm.Model]: ...

    def __getitem__(self, index: int | slice) -> bm.Model | Sequence[bm.Model]:
        if isinstance(index, slice):
            raise TypeError("not sliced by the chain")
        model = self.models[index]
        self.built.append(model.name)
        return model


async def test_a_fallback_is_built_only_when_reached() -> None:
    models = Built(Scripted("primary"), Scripted("backup"))
    await FallbackChain(models, name="alias").request(REQUEST)
    assert models.built == ["primary"]


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(bm.UsageError, match="at least one model"):
        FallbackChain([])
