"""USD per million tokens, and the cost of one call.

The bundled table holds public list prices of common hosted models (as of late 2025); override
or extend it per model in ``models.yaml`` (``price: {input: ..., output: ...}``) or by passing
``PriceTable({...})``. Dated versions match their family by longest prefix
(``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``). Unknown models cost 0 and are reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from bandmaster.models._base import Usage


class Price(BaseModel):
    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")


BUNDLED: dict[str, Price] = {
    name: Price(input=i, output=o)
    for name, (i, o) in {
        "gpt-4o": (2.5, 10.0),
        "gpt-4o-mini": (0.15, 0.6),
        "gpt-4.1": (2.0, 8.0),
        "gpt-4.1-mini": (0.4, 1.6),
        "gpt-4.1-nano": (0.1, 0.4),
        "gpt-4-turbo": (10.0, 30.0),
        "gpt-4": (30.0, 60.0),
        "gpt-3.5-turbo": (0.5, 1.5),
        "o4-mini": (1.1, 4.4),
        "o3-mini": (1.1, 4.4),
        "claude-3-haiku": (0.25, 1.25),
        "claude-3-5-haiku": (0.8, 4.0),
        "claude-haiku-4-5": (1.0, 5.0),
        "claude-3-5-sonnet": (3.0, 15.0),
        "claude-3-7-sonnet": (3.0, 15.0),
        "claude-sonnet-4": (3.0, 15.0),
        "claude-3-opus": (15.0, 75.0),
        "claude-opus-4": (15.0, 75.0),
    }.items()
}


class PriceTable:
    def __init__(self, prices: Mapping[str, Price] | None = None, *, bundled: bool = True) -> None:
        self._prices: dict[str, Price] = dict(BUNDLED) if bundled else {}
        self._prices.update(prices or {})

    def set(self, model: str, price: Price) -> None:
        self._prices[model] = price

    def lookup(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        matches = [name for name in self._prices if model.startswith(name)]
        return self._prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> float:
        price = self.lookup(model)
        if price is None:
            return 0.0
        return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000
