"""Policies as wrappers around models.

Each wrapper is a ``Model`` holding a ``Model`` and adding one policy, so they compose in any
order and a new policy is one class (subclass ``Wrapper``, override ``request``)::

    model = ResponseCache(Priced(FallbackChain([primary, backup]), prices), store, ttl=600)

``bm.call_model`` builds this stack for each call from the alias's policy (``bandmaster.calls._stack``).
"""

from bandmaster.calls.wrappers._attempts import Retrying
from bandmaster.calls.wrappers._base import Wrapper, innermost
from bandmaster.calls.wrappers._breaker import (
    BreakerGate,
    BreakerStates,
    Clock,
    LocalBreakers,
    Outcome,
    settle_here,
)
from bandmaster.calls.wrappers._budget import (
    Budgeted,
    BudgetRule,
    CallPrices,
    LocalSpendLedger,
    SpendLedger,
    utc_day,
)
from bandmaster.calls.wrappers._cache import CacheStore, ResponseCache
from bandmaster.calls.wrappers._fallback import FallbackChain, falls_back
from bandmaster.calls.wrappers._guarded import Guarded
from bandmaster.calls.wrappers._limits import Limited, LimitGate, LimitLedger, LocalLimitLedger
from bandmaster.calls.wrappers._pricing import Priced

__all__ = [
    "BreakerGate",
    "BreakerStates",
    "BudgetRule",
    "Budgeted",
    "CacheStore",
    "CallPrices",
    "Clock",
    "FallbackChain",
    "Guarded",
    "LimitGate",
    "LimitLedger",
    "Limited",
    "LocalBreakers",
    "LocalLimitLedger",
    "LocalSpendLedger",
    "Outcome",
    "Priced",
    "ResponseCache",
    "Retrying",
    "SpendLedger",
    "Wrapper",
    "falls_back",
    "innermost",
    "settle_here",
    "utc_day",
]
