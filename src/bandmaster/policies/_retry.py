"""Retry policy: which errors to retry, how often, and how long to wait in between.

The backoff is "exponential with full jitter" (AWS architecture blog, 2015): the delay before
retry *n* is uniform in ``[0, min(max_delay, initial * multiplier**(n-1))]``. It is three lines,
so it lives here rather than in a dependency: the engine needs the pure function (no sleeping,
no wrapped callable) to journal attempts and to test schedules on a fake random source.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field

from bandmaster.errors import RateLimited, RetryableError

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]

DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (
    RetryableError,  # StepTimeout, RateLimited, ProviderUnavailable and users' subclasses
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """How a step retries.

    ``attempts`` counts the first try (``attempts=1`` means no retry). ``retry_on`` is a tuple
    of exception types or a predicate; by default only transient errors are retried (timeouts,
    rate limits, unavailable providers, connection errors), never validation errors.
    ``total`` bounds the summed backoff delay in seconds.
    """

    attempts: int = 3
    initial: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: bool = True
    total: float | None = None
    retry_on: RetryOn = field(default=DEFAULT_RETRY_ON)

    def __post_init__(self) -> None:
        if isinstance(self.retry_on, type):
            if not issubclass(self.retry_on, BaseException):
                raise TypeError(f"Retry(retry_on={self.retry_on!r}): give exception types or a predicate")
            object.__setattr__(self, "retry_on", (self.retry_on,))  # a bare class, not a predicate
        if self.total is not None and self.total < 0:
            raise ValueError(f"Retry(total={self.total}): total must not be negative")
        if self.attempts < 1:
            raise ValueError(f"Retry(attempts={self.attempts}): attempts must be at least 1")
        if self.initial < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError(
                "Retry needs initial >= 0, max_delay >= 0 and multiplier >= 1, got "
                f"initial={self.initial}, max_delay={self.max_delay}, multiplier={self.multiplier}"
            )

    def is_retryable(self, error: BaseException) -> bool:
        if not isinstance(error, Exception):
            return False  # cancellation and suspension are never retried
        if isinstance(self.retry_on, tuple):
            return isinstance(error, self.retry_on)
        return bool(self.retry_on(error))

    def backoff(self, attempt: int, rng: Callable[[], float] = _random.random) -> float:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed."""
        ceiling = min(self.max_delay, self.initial * self.multiplier ** (attempt - 1))
        return ceiling * rng() if self.jitter else ceiling

    def next_delay(
        self,
        attempt: int,
        error: BaseException,
        waited: float,
        rng: Callable[[], float] = _random.random,
    ) -> float | None:
        """The delay before the next attempt, or ``None`` when the step must give up."""
        if attempt >= self.attempts or not self.is_retryable(error):
            return None
        delay = self.backoff(attempt, rng)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            delay = max(delay, error.retry_after)  # the provider knows better than our guess
        if self.total is not None and waited + delay > self.total:
            return None
        return delay


NO_RETRY = Retry(attempts=1)
