"""Pure policy decisions: no I/O, no clock reads, testable with a fake clock and random source."""

from bandmaster.policies.breaker import Breaker, BreakerState
from bandmaster.policies.retry import Retry

__all__ = ["Breaker", "BreakerState", "Retry"]
