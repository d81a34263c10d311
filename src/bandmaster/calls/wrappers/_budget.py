"""``Budgeted``: a model call holds its estimated cost against the run's and the tenant's
budgets before it is sent, and settles to what it cost once answered.

The estimate is an upper bound: the request's input tokens (``models.tokenizers``) times the input
price, plus its ``max_tokens`` (else ``DEFAULT_MAX_OUTPUT``) times the output price. The hold is a
check-and-add in one transaction of the ``SpendLedger`` shared by every worker, so a budget is
overshot by at most one call's cost (a call's actual cost can exceed its estimate only when its
``max_tokens`` was not given). What happens to a call that does not fit is the budget's
``on_exceed``: ``fail`` raises ``bm.BudgetExceeded``; ``downgrade`` sends it to a cheaper alias or
model (held against the budgets too); ``approve`` raises a ``BudgetExceeded`` carrying
``approve_timeout``, which ``bm.call_model`` at workflow level turns into a timed ``bm.approval``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.errors import BudgetExceeded
from bandmaster.models import Model, ModelRequest, ModelResponse, Registry, Usage
from bandmaster.models.tokenizers import Tokenizer, default_tokenizer

DEFAULT_MAX_OUTPUT = 1024
"""Output tokens a call is assumed to produce when its request sets no ``max_tokens``."""

MESSAGE_OVERHEAD = 4
"""Tokens a chat message adds beyond its text (role and separators), as OpenAI counts them."""


class SpendLedger(Protocol):
    """Money held and spent per budget scope and day, shared by every worker. ``reserve`` holds
    ``amount`` only if what is spent and held stays within ``limit`` (one atomic step) and
    answers None, else the money already spent and held; ``settle`` gives back ``held`` and
    counts ``cost``."""

    async def reserve(self, scope: str, day: str, limit: float, amount: float) -> float | None: ...

    async def settle(self, scope: str, day: str, held: float, cost: float) -> None: ...


class LocalSpendLedger:
    """A ``SpendLedger`` in this process's memory: for calls outside any journal."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[float]] = {}

    async def reserve(self, scope: str, day: str, limit: float, amount: float) -> float | None:
        row = self.rows.setdefault((scope, day), [0.0, 0.0])
        if row[0] + row[1] + amount > limit:
            return row[0] + row[1]
        row[1] += amount
        return None

    async def settle(self, scope: str, day: str, held: float, cost: float) -> None:
        row = self.rows.setdefault((scope, day), [0.0, 0.0])
        row[1] = max(0.0, row[1] - held)
        row[0] += cost


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One budget a call is held against. ``scope``: ``run:<id>`` or ``tenant:<name>``;
    ``day``: the UTC date for a tenant, ``""`` for a run; ``limit`` in USD."""

    scope: str
    day: str
    limit: float
    on_exceed: str = "fail"
    downgrade_to: str | None = None
    approve_timeout: float | None = None
    how_to_raise: str = ""

    @property
    def label(self) -> str:
        return (
            "run budget"
            if self.scope.startswith("run:")
            else f"tenant {self.scope[7:]!r} budget for {self.day} (UTC)"
        )


def utc_day(now: float) -> str:
    """The UTC calendar date a tenant's daily budget counts in."""
    return datetime.fromtimestamp(now, UTC).date().isoformat()


class CallPrices:
    """Estimates and costs of calls to registry models (and ``Model`` objects by name)."""

    __slots__ = ("registry", "tokenizer")

    def __init__(self, registry: Registry, tokenizer: Tokenizer | None = None) -> None:
        self.registry = registry
        self.tokenizer = tokenizer

    def _priced(self, name: str) -> tuple[str, str | None]:
        return self.registry.model_id(name), self.registry.provider_of(name)

    def input_tokens(self, req: ModelRequest) -> int:
        tokenizer = self.tokenizer = self.tokenizer or default_tokenizer()
        return sum(MESSAGE_OVERHEAD + tokenizer.count(m.content) for m in req.messages())

    def estimate(self, name: str, req: ModelRequest) -> float | None:
        """USD the call may cost at most (None: a billed model whose price is unknown)."""
        model_id, provider = self._priced(name)
        output = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_OUTPUT
        cost = self.registry.prices.estimate(model_id, self.input_tokens(req), output, provider)
        if cost is None and provider is None:
            return 0.0  # a local or Python model: it runs here and bills nothing
        return cost

    def cost(self, name: str, response: ModelResponse) -> float | None:
        if response.cost or not response.cost_known:
            return response.cost if response.cost_known else None
        model_id, provider = self._priced(name)
        usage: Usage = response.usage
        if not usage.total_tokens:
            return 0.0
        cost = self.registry.prices.cost(model_id, usage, provider)
        return cost if cost is not None or provider is not None else 0.0


class Budgeted(Wrapper):
    """Holds each call's estimated cost against ``rules`` in ``ledger`` before ``inner`` is
    asked, and settles to the answer's cost (or releases the hold when the call failed).
    ``downgrade(target)`` builds the stack for a downgrade target; what happened is noted in
    ``notes["budget"]``. ``approvable``: a call over an ``approve`` budget may wait for a
    person (the caller is at workflow level); ``approved``: a person already let it through."""

    __slots__ = ("approvable", "approved", "downgrade", "ledger", "notes", "prices", "rules")

    def __init__(
        self,
        inner: Model,
        *,
        rules: Sequence[BudgetRule],
        ledger: SpendLedger,
        prices: CallPrices,
        downgrade: Callable[[str], Model],
        notes: MutableMapping[str, Any],
        approvable: bool = False,
        approved: bool = False,
    ) -> None:
        super().__init__(inner)
        self.rules, self.ledger, self.prices = tuple(rules), ledger, prices
        self.downgrade, self.notes = downgrade, notes
        self.approvable, self.approved = approvable, approved

    async def request(self, req: ModelRequest) -> ModelResponse:
        return await self._ask(self.inner, req, downgraded_from=None)

    async def _ask(self, model: Model, req: ModelRequest, downgraded_from: str | None) -> ModelResponse:
        estimate = self.prices.estimate(model.name, req)
        if estimate is None:
            raise self._unpriced(model.name)
        held: list[BudgetRule] = []
        try:
            for rule in self.rules:
                spent = await self.ledger.reserve(rule.scope, rule.day, rule.limit, estimate)
                if spent is None:
                    held.append(rule)
                    continue
                if rule.on_exceed == "approve" and self.approved:
                    await self.ledger.reserve(rule.scope, rule.day, math.inf, estimate)  # a person said yes
                    held.append(rule)
                    continue
                await self._release(held, estimate)
                held = []
                if rule.on_exceed == "downgrade" and downgraded_from is None and rule.downgrade_to:
                    cheaper = self.downgrade(rule.downgrade_to)
                    reason = (
                        f"{rule.label}: ${spent:.6f} spent of ${rule.limit:.6f}, "
                        f"call estimated at ${estimate:.6f}"
                    )
                    self.notes["budget"] = {
                        "downgraded_from": model.name,
                        "to": rule.downgrade_to,
                        "reason": reason,
                    }
                    return await self._ask(cheaper, req, downgraded_from=model.name)
                raise self._exceeded(rule, model.name, spent, estimate, downgraded_from)
        except BaseException:
            await self._release(held, estimate)
            raise
        try:
            response = await model.request(req)
        except BaseException:
            await self._release(held, estimate)  # nothing answered: nothing billed
            raise
        cost = self.prices.cost(model.name, response)
        for rule in held:
            await self.ledger.settle(rule.scope, rule.day, estimate, estimate if cost is None else cost)
        return response

    async def _release(self, held: Sequence[BudgetRule], estimate: float) -> None:
        for rule in held:
            await self.ledger.settle(rule.scope, rule.day, estimate, 0.0)

    def _exceeded(
        self, rule: BudgetRule, model: str, spent: float, estimate: float, downgraded_from: str | None
    ) -> BudgetExceeded:
        via = f" (downgraded from {downgraded_from!r})" if downgraded_from else ""
        message = (
            f"{rule.label} exceeded: ${spent:.6f} spent of ${rule.limit:.6f}, and the call to {model!r}{via} "
            f"is estimated at up to ${estimate:.6f}; {rule.how_to_raise}"
        )
        timeout: float | None = None
        if rule.on_exceed == "approve":
            if self.approvable:
                timeout = rule.approve_timeout
            else:
                message += (
                    "; on_exceed: approve asks a person only for bm.call_model at workflow level "
                    "(not inside a step, nor outside a run), so this call fails instead"
                )
        exc = BudgetExceeded(message, scope=rule.scope, limit=rule.limit, spent=spent, estimate=estimate)
        exc.approve_timeout = timeout
        return exc

    def _unpriced(self, model: str) -> BudgetExceeded:
        rule = self.rules[0]
        exc = BudgetExceeded(
            f"{rule.label}: the price of {model!r} is unknown, so its calls cannot be held against a "
            "budget; add price: {input: USD per 1M tokens, output: ...} to the model in models.yaml",
            scope=rule.scope,
            limit=rule.limit,
            spent=0.0,
            estimate=0.0,
        )
        return exc
