"""Circuit breaker: closed → open at the ``failures``-th failure within ``window`` seconds →
half-open after ``reset`` seconds (one trial call) → closed on its success, open again on its
failure. Pure state machine: the caller passes the time, so tests use a fake clock.

The same machine runs wherever the state is kept: in one process (``LocalBreakers``), inside a
journal transaction (embedded workers share it through SQLite) and inside the Temporal registry
workflow's update handlers. Each of those applies one method at a time, so counting is exact.

Written here rather than taken from pybreaker/purgatory: those count consecutive failures (no
window) and keep state in their own storage; ours needs a failure window, an injectable clock
and a state that bandmaster shares between worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BreakerStatus = Literal["closed", "open", "half_open"]
Admission = Literal["go", "trial", "refused"]
"""What a breaker says to a call: go ahead, go ahead as the half-open trial, or skip the model."""


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
    """The state of one breaker.

    ``recent_failures``: the times of the failures counted in the window while closed.
    ``failures``: failures counted since the last success or close, including those of calls
    that were already in flight when it opened (they are counted, they change nothing).
    ``trial_until``: while half-open, when the trial's claim lapses; a trial whose worker died
    then lets another worker try (``None``: no trial claimed).
    """

    status: BreakerStatus = "closed"
    recent_failures: list[float] = field(default_factory=list)
    opened_at: float | None = None
    changed_at: float = 0.0
    failures: int = 0
    trial_until: float | None = None

    def admit(self, policy: Breaker, now: float) -> Admission:
        """May a call start now? Once ``reset`` has passed since it opened, exactly one call
        (the trial) is let through until its outcome is recorded or its claim lapses
        (``reset`` seconds later)."""
        if self.status == "closed":
            return "go"
        if self.opened_at is not None and now - self.opened_at < policy.reset:
            return "refused"
        if self.status == "half_open" and self.trial_until is not None and now < self.trial_until:
            return "refused"  # one trial at a time
        self.status, self.changed_at, self.trial_until = "half_open", now, now + policy.reset
        return "trial"

    def fail(self, policy: Breaker, now: float, *, trial: bool = False) -> bool:
        """Count a failed call; True when this failure opened the breaker."""
        self.failures += 1
        if self.status == "closed":
            cutoff = now - policy.window
            self.recent_failures = [t for t in self.recent_failures if t > cutoff]
            self.recent_failures.append(now)
            if len(self.recent_failures) >= policy.failures:
                self._open(now)
                return True
            return False
        if trial and self.status == "half_open":
            self._open(now)  # the trial failed: open again from now
            return True
        return False  # a call in flight when it opened: counted, changes nothing

    def succeed(self, now: float, *, trial: bool = False) -> bool:
        """Record a successful call; True when that changed the state (to share it). Only the
        trial closes a breaker that is not closed: a call that was in flight when it opened
        says nothing about the model now."""
        if self.status == "closed":
            changed = bool(self.recent_failures) or self.failures > 0
            self.recent_failures, self.failures = [], 0
            return changed
        if trial and self.status == "half_open":
            self.status, self.opened_at, self.changed_at = "closed", None, now
            self.recent_failures, self.failures, self.trial_until = [], 0, None
            return True
        return False

    def release(self, *, trial: bool) -> bool:
        """The call ended saying nothing about availability (an invalid request, a cancelled
        call): a trial gives its claim back so that the next call tries. True when changed."""
        if trial and self.status == "half_open" and self.trial_until is not None:
            self.trial_until = None
            return True
        return False

    def has_news(self) -> bool:
        """Would a success change this state? (Most calls succeed on a clean breaker: no write.)"""
        return self.status != "closed" or bool(self.recent_failures) or self.failures > 0

    def _open(self, now: float) -> None:
        self.status, self.opened_at, self.changed_at = "open", now, now
        self.recent_failures, self.trial_until = [], None
