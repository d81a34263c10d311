"""Pure policy decisions: no I/O, no clock reads, testable with a fake clock and random source."""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.policies._breaker import Admission, Breaker, BreakerState, BreakerStatus
from bandmaster.policies._limits import DEFAULT_RETRY_AFTER, Grant, LimitState, RateLimits
from bandmaster.policies._retry import Retry

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_RETRY_ON",
    "NO_RETRY",
    "Admission",
    "Breaker",
    "BreakerState",
    "BreakerStatus",
    "Grant",
    "LimitState",
    "RateLimits",
    "Retry",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "DEFAULT_RETRY_ON": "bandmaster.policies._retry",
    "NO_RETRY": "bandmaster.policies._retry",
}

if TYPE_CHECKING:
    from bandmaster.policies._retry import DEFAULT_RETRY_ON, NO_RETRY
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
