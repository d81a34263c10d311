"""Rate and concurrency limits of one model, as shared state: GCRA for requests and tokens
per minute, AIMD after a provider's 429. Pure arithmetic: the caller passes the time, and the
embedded journal (``bandmaster.store``), a Temporal workflow or one process keep the state.

GCRA (generic cell rate algorithm) keeps one number per rate, the theoretical arrival time
``tat``: the next request may go at ``max(now, tat)``, and taking it moves ``tat`` one
interval (60 / rpm seconds) past that. So permits are evenly spaced (no burst after an idle
spell: ``tat`` never lags ``now``), and a worker can reserve ``n`` future permits in one
round trip, each with its own send time. Written here rather than taken from aiolimiter or
pyrate-limiter: those keep their buckets in one process; ours must live in a journal row or a
workflow and hand out future send times.

AIMD: a 429 halves the rate factor (never below ``MIN_FACTOR``) and nobody sends before its
Retry-After; the factor then grows back by ``RECOVERY`` per second to 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DECREASE = 0.5
"""Multiplicative decrease of a model's rate after a 429."""

MIN_FACTOR = 0.05
"""The rate factor never goes below this: a model keeps 5% of its limit."""

RECOVERY = 0.2
"""Additive increase: the rate factor grows back by this much per second (0.5 → 1 in 2.5 s)."""

DEFAULT_RETRY_AFTER = 1.0
"""Seconds nobody sends after a 429 that gave no Retry-After."""


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A model's limits (``models.<name>.limits``): requests per minute, tokens per minute
    (input + output), requests in flight. ``None``: no such limit."""

    rpm: float | None = None
    tpm: float | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "concurrency"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"RateLimits.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Grant:
    """What one round trip to the shared state gave a worker: ``count`` request permits, the
    first at ``start`` and then one every ``interval`` seconds; tokens from ``tok_start`` at
    ``tok_interval`` seconds per token; ``slots`` concurrency slots; and nobody may send
    before ``not_before``. ``cap``: the model's concurrency now (after AIMD)."""

    start: float = 0.0
    interval: float = 0.0
    count: int = 0
    tok_start: float = 0.0
    tok_interval: float = 0.0
    slots: int = 0
    not_before: float = 0.0
    cap: int = 0


@dataclass(slots=True)
class LimitState:
    """The shared limit state of one model."""

    tat: float = 0.0  # next request permit (GCRA theoretical arrival time), epoch seconds
    tok_tat: float = 0.0  # same for tokens
    factor: float = 1.0  # AIMD rate factor as of factor_at
    factor_at: float = 0.0
    not_before: float = 0.0  # Retry-After: nobody sends before this

    def rate_factor(self, now: float) -> float:
        return min(1.0, self.factor + RECOVERY * max(0.0, now - self.factor_at))

    def cap(self, limits: RateLimits, now: float) -> int:
        """Concurrency allowed now: the limit scaled by the rate factor, at least 1."""
        if limits.concurrency is None:
            return 0
        return max(1, math.floor(limits.concurrency * self.rate_factor(now) + 1e-9))

    def reserve(
        self, limits: RateLimits, now: float, requests: int, tokens: int, correction: int = 0
    ) -> Grant:
        """Take ``requests`` request permits and ``tokens`` tokens (plus ``correction``: tokens
        used beyond earlier estimates, negative for fewer), evenly spaced after every earlier
        reservation."""
        factor = self.rate_factor(now)
        floor = max(now, self.not_before)
        start = interval = tok_start = tok_interval = 0.0
        count = 0
        if limits.rpm is not None and requests > 0:
            interval = 60.0 / (limits.rpm * factor)
            start = max(floor, self.tat)
            count = requests
            self.tat = start + requests * interval
        if limits.tpm is not None:
            tok_interval = 60.0 / (limits.tpm * factor)
            if correction:  # already spent (or returned): moves the token clock, not this grant
                self.tok_tat = max(self.tok_tat, now) + correction * tok_interval
            if tokens > 0:
                tok_start = max(floor, self.tok_tat)
                self.tok_tat = tok_start + tokens * tok_interval
        return Grant(
            start=start,
            interval=interval,
            count=count,
            tok_start=tok_start,
            tok_interval=tok_interval,
            not_before=self.not_before,
            cap=self.cap(limits, now),
        )

    def slow_down(self, now: float, retry_after: float | None) -> None:
        """A 429: halve the rate (for every worker) and hold everyone until Retry-After."""
        self.factor = max(MIN_FACTOR, self.rate_factor(now) * DECREASE)
        self.factor_at = now
        wait = DEFAULT_RETRY_AFTER if retry_after is None else max(0.0, retry_after)
        self.not_before = max(self.not_before, now + wait)
        # Permits already reserved past now were computed at the old rate: push them after the
        # pause so the first send after it starts the new, slower spacing.
        self.tat = max(self.tat, self.not_before)
        self.tok_tat = max(self.tok_tat, self.not_before)
