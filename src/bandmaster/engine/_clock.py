"""The engine's one source of time. Journal timestamps, durable timers (``bm.sleep``),
``bm.wait_for`` and approval deadlines, leases and heartbeats, retry delays and step timeouts
all go through a ``Clock``, so a test can pass ``Engine(clock=FakeClock())``
(``bandmaster.testing``) and move time by hand instead of waiting for it.

``SystemClock`` is the real one: its ``time``, ``monotonic`` and ``sleep`` *are*
``time.time``, ``time.monotonic`` and ``asyncio.sleep``, so the hot path pays no extra Python
call for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time as _time
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the engine asks of time. Times are wall-clock seconds since the epoch (what the
    journal stores); ``monotonic`` is for durations only."""

    def time(self) -> float:
        """Now, in seconds since the epoch: journal stamps, deadlines, leases."""
        ...

    def monotonic(self) -> float:
        """A clock for measuring durations; never goes backwards."""
        ...

    async def sleep(self, seconds: float, /) -> None:
        """Wait ``seconds`` (inline timers, retry delays, heartbeats)."""
        ...

    def timeout(self, seconds: float | None, /) -> AbstractAsyncContextManager[asyncio.Timeout]:
        """``async with clock.timeout(s) as scope``: cancel the body after ``s`` seconds and
        raise ``TimeoutError`` (``scope.expired()`` tells it from other timeouts), as
        ``asyncio.timeout`` does. ``None``: no limit."""
        ...

    async def poll(self, wake: asyncio.Event, interval: float) -> None:
        """Return when ``wake`` is set or about ``interval`` seconds have passed: how polling
        loops (claiming runs, waiting for results) pause. The interval is a latency bound,
        not a deadline, so a fake clock may also return early (whenever it moves)."""
        ...

    def due_at(self, when: float) -> None:
        """Something (a suspended run's timer, a wait's deadline) becomes due at ``when``.
        The polling loops find it; a fake clock stops there when it moves past it."""
        ...


class SystemClock:
    """The wall clock and asyncio's timers."""

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(asyncio.sleep)
    timeout = staticmethod(asyncio.timeout)

    async def poll(self, wake: asyncio.Event, interval: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)

    def due_at(self, when: float) -> None:
        """Nothing to do: the worker's poll finds due runs within ``poll_interval``."""

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
"""The default clock of every engine."""
