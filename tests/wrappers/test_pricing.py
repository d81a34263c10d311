"""``Priced``: cost from token usage."""

from __future__ import annotations

import pytest
from tests.wrappers.helpers import Scripted

import bandmaster as bm
from bandmaster.calls.wrappers import Priced
from bandmaster.models._pricing import Price

PRICES = bm.PriceTable({"m": Price(input=1.0, output=2.0)}, bundled=False)


async def test_cost_is_computed_from_usage() -> None:
    model = Scripted("m", usage=bm.Usage(input_tokens=1_000_000, output_tokens=500_000))
    response = await Priced(model, PRICES).request(bm.ModelRequest(input="hi"))
    assert response.cost == pytest.approx(2.0)


async def test_a_cost_the_provider_gave_is_kept() -> None:
    class Billed(Scripted):
        async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
            response = await super().request(req)
            return response.model_copy(update={"cost": 0.5})

    model = Billed("m", usage=bm.Usage(input_tokens=1_000_000))
    assert (await Priced(model, PRICES).request(bm.ModelRequest(input="hi"))).cost == 0.5


async def test_an_unknown_model_costs_nothing() -> None:
    model = Scripted("unpriced", usage=bm.Usage(input_tokens=10))
    assert (await Priced(model, PRICES).request(bm.ModelRequest(input="hi"))).cost == 0.0
