"""``Priced``: the answer's cost from its token usage, when the provider did not give one.

The models that reach it without a cost are local or Python models (the billed providers price
their own answers, saying when the price is unknown): one whose price nobody knows costs $0."""

from __future__ import annotations

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.models import Model, ModelRequest, ModelResponse, PriceTable


class Priced(Wrapper):
    """Attaches ``cost`` (USD, from ``prices``) to an answer that has token usage and no cost."""

    __slots__ = ("prices",)

    def __init__(self, inner: Model, prices: PriceTable) -> None:
        self.inner, self.name, self.prices = inner, inner.name, prices

    async def request(self, req: ModelRequest) -> ModelResponse:
        response = await self.inner.request(req)
        if not response.cost and response.cost_known and response.usage.total_tokens:
            cost = self.prices.cost(response.model, response.usage)
            if cost:
                response = response.model_copy(update={"cost": cost})
        return response
