"""``Priced``: the answer's cost from its token usage, when the provider did not give one."""

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
        if not response.cost and response.usage.total_tokens:
            response = response.model_copy(update={"cost": self.prices.cost(response.model, response.usage)})
        return response
