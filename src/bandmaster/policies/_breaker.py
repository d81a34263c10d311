"""Circuit breaker: closed → open after ``failures`` failures within ``window`` seconds →
half-open after ``reset`` seconds (one trial call) → closed on its success, open again on its
failure. Pure state machine: the caller passes the time, so tests use a fake clock.

Written here rather than taken from pybreaker/purgatory: those count consecutive failures (no
window) and keep state in their own storage; ours needs a failure window, an injectable clock
and a state that bandmaster shares between worker processes through the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BreakerStatus = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Breaker:
    failures: int = 5
    window: float = 30.0
    reset: float = 60.0

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window <= 0 or self.reset <= 0:
            raise ValueError(
                f"Breaker needs failures >= 1, window > 0 and reset > 0, got "
                f"failures={self.failures}, window={self.window}, reset={self.reset}"
            )


@dataclass(slots=True)
class BreakerState:
    """The state of one breaker. ``changed_at`` orders transitions made by different workers."""

    status: BreakerStatus = "closed"
    recent_failures: list[float] = field(default_factory=list)
    opened_at: float | None = None
    changed_at: float = 0.0
    trial_in_flight: bool = False

    def allow(self, policy: Breaker, now: float) -> bool:
        """May a call go through now? Moves open → half-open once ``reset`` has passed."""
        if self.status == "closed":
            return True
        if self.status == "open":
            if self.opened_at is not None and now - self.opened_at >= policy.reset:
                self.status, self.changed_at, self.trial_in_flight = "half_open", now, True
                return True
            return False
        if self.trial_in_flight:
            return False  # one trial at a time while half-open
        self.trial_in_flight = True
        return True

    def record_success(self, now: float) -> bool:
        """Returns True when this closed the breaker (a transition to share)."""
        self.trial_in_flight = False
        self.recent_failures.clear()
        if self.status != "closed":
            self.status, self.opened_at, self.changed_at = "closed", None, now
            return True
        return False

    def record_failure(self, policy: Breaker, now: float) -> bool:
        """Returns True when this opened the breaker (a transition to share)."""
        self.trial_in_flight = False
        if self.status == "half_open":
            self._open(now)
            return True
        if self.status == "open":
            return False
        cutoff = now - policy.window
        self.recent_failures = [t for t in self.recent_failures if t > cutoff]
        self.recent_failures.append(now)
        if len(self.recent_failures) >= policy.failures:
            self._open(now)
            return True
        return False

    def _open(self, now: float) -> None:
        self.status, self.opened_at, self.changed_at = "open", now, now
        self.recent_failures.clear()

    def adopt(self, status: BreakerStatus, opened_at: float | None, changed_at: float) -> None:
        """Take a newer transition made by another worker."""
        if changed_at > self.changed_at:
            self.status, self.opened_at, self.changed_at = status, opened_at, changed_at
            self.trial_in_flight = False
            if status == "closed":
                self.recent_failures.clear()
