"""Policies as wrappers around models.

Each wrapper is a ``Model`` holding a ``Model`` and adding one policy, so they compose in any
order and a new policy is one class (subclass ``Wrapper``, override ``request``)::

    model = ResponseCache(Priced(FallbackChain([primary, backup]), prices), store, ttl=600)

``bm.call_model`` builds this stack for each call from the alias's policy (``bandmaster.call_stack``).
"""

from bandmaster.wrappers.attempts import Retrying
from bandmaster.wrappers.base import Wrapper, innermost
from bandmaster.wrappers.breaker import BreakerGate, BreakerStates, LocalBreakers
from bandmaster.wrappers.cache import CacheStore, ResponseCache
from bandmaster.wrappers.fallback import FallbackChain, falls_back
from bandmaster.wrappers.guarded import Guarded
from bandmaster.wrappers.pricing import Priced

__all__ = [
    "BreakerGate",
    "BreakerStates",
    "CacheStore",
    "FallbackChain",
    "Guarded",
    "LocalBreakers",
    "Priced",
    "ResponseCache",
    "Retrying",
    "Wrapper",
    "falls_back",
    "innermost",
]
