"""USD per million tokens, and the cost of one call.

Prices come from the ``genai-prices`` package's bundled data (read offline: bandmaster never
asks it to update over the network), looked up by provider and model id; dated versions and
aliases resolve as that package matches them (``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``).
Overrides win: per model in ``models.yaml`` (``price: {input: ..., output: ...}``), top-level
``prices:``, or ``PriceTable({...})``; an override name also matches dated versions by longest
prefix. A model whose price is known to nobody costs ``None`` ("unknown"), never 0.

Tiered prices (by prompt length) are applied as ``genai-prices`` computes them for the call's
token counts. bandmaster's usage has no cached-token count, so cached input is priced as
ordinary input: the cost is then an upper bound.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from bandmaster.models._base import Usage

BILLED_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}
"""The registry providers that bill per token, and their ``genai-prices`` provider ids. The
others (sklearn, callable, recorded) run here or replay a file: they cost $0 unless a price or
the model itself says otherwise."""


class UnknownPriceWarning(UserWarning):
    """A billed model has no known price: its calls' cost shows as unknown, and a budget
    cannot admit them. Add ``price: {input: ..., output: ...}`` to the model in models.yaml."""


class Price(BaseModel):
    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")


_MILLION = 1_000_000


@lru_cache(maxsize=1024)
def _catalogue_id(provider: str | None, model: str) -> str | None:
    """The id ``genai-prices`` matches ``model`` to, or None when it does not know it."""
    from genai_prices import data_snapshot

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    return str(info.id)


@lru_cache(maxsize=1024)
def _catalogue_cost(provider: str | None, model: str, input_tokens: int, output_tokens: int) -> float | None:
    """The ``genai-prices`` cost of a call, or None when it does not know the model."""
    import genai_prices  # 1.6 MB of price data: loaded on the first lookup, not with bandmaster

    usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    try:
        calc = genai_prices.calc_price(
            usage, model, provider_id=provider, genai_request_timestamp=_TODAY.get()
        )
    except LookupError:
        return None
    return float(calc.total_price)


class _Today:
    """Prices in force at the start of the current UTC day (cached per day, so lookups of one
    day agree and the lru cache above stays valid)."""

    def __init__(self) -> None:
        self._day: tuple[int, int, int] | None = None
        self._at = datetime.now(UTC)

    def get(self) -> datetime:
        now = datetime.now(UTC)
        day = (now.year, now.month, now.day)
        if day != self._day:
            self._day, self._at = day, datetime(*day, tzinfo=UTC)
            _catalogue_cost.cache_clear()
        return self._at


_TODAY = _Today()


class PriceTable:
    """Prices by model id: overrides first, then ``genai-prices`` (``catalogue=False``: only
    the overrides). ``provider`` narrows a catalogue lookup to one provider's price list."""

    def __init__(
        self,
        prices: Mapping[str, Price] | None = None,
        *,
        catalogue: bool = True,
        bundled: bool | None = None,
    ) -> None:
        self._prices: dict[str, Price] = dict(prices or {})
        self.catalogue = catalogue if bundled is None else bundled  # bundled: the old name

    def set(self, model: str, price: Price) -> None:
        self._prices[model] = price

    def override(self, model: str, provider: str | None = None) -> Price | None:
        """The override for ``model``: its own, else the longest name it starts with, unless
        the catalogue knows a more specific model (an override of ``gpt-4o`` prices
        ``gpt-4o-2024-08-06``, not ``gpt-4o-mini``)."""
        if model in self._prices:
            return self._prices[model]
        matches = [name for name in self._prices if model.startswith(name)]
        if not matches:
            return None
        name = max(matches, key=len)
        if self.catalogue:
            found = _catalogue_id(provider, model)
            if found is not None and len(found) > len(name) and model.startswith(found):
                return None
        return self._prices[name]

    def lookup(self, model: str, provider: str | None = None) -> Price | None:
        """USD per million tokens (for a tiered price, the first tier's)."""
        price = self.override(model, provider)
        if price is not None or not self.catalogue:
            return price
        per_input = _catalogue_cost(provider, model, _MILLION, 0)
        if per_input is None:
            return None
        per_output = _catalogue_cost(provider, model, 0, _MILLION)
        return Price(input=per_input, output=per_output or 0.0)

    def known(self, model: str, provider: str | None = None) -> bool:
        return self.lookup(model, provider) is not None

    def cost(self, model: str, usage: Usage, provider: str | None = None) -> float | None:
        """USD for ``usage`` on ``model``; None when its price is unknown."""
        return self.estimate(model, usage.input_tokens, usage.output_tokens, provider)

    def estimate(
        self, model: str, input_tokens: int, output_tokens: int, provider: str | None = None
    ) -> float | None:
        price = self.override(model, provider)
        if price is not None:
            return (input_tokens * price.input + output_tokens * price.output) / _MILLION
        if not self.catalogue:
            return None
        return _catalogue_cost(provider, model, input_tokens, output_tokens)


def warn_unknown_prices(unpriced: Mapping[str, str], source: str) -> None:
    """The load-time warning for billed models without a price (name → provider model id)."""
    if not unpriced:
        return
    names = ", ".join(f"{name!r} ({model})" for name, model in sorted(unpriced.items()))
    warnings.warn(
        f"{source}: no known price for billed model(s) {names}: their cost shows as unknown and "
        "budgets refuse their calls; add price: {input: USD per 1M tokens, output: ...} to each",
        UnknownPriceWarning,
        stacklevel=3,
    )


def usage_cost(prices: PriceTable, model: str, usage: Usage, provider: str | None = None) -> dict[str, Any]:
    """``cost`` and ``cost_known`` for a ``ModelResponse``."""
    cost = prices.cost(model, usage, provider)
    return {"cost": cost or 0.0, "cost_known": cost is not None}
