"""``Limited``: a model's rate and concurrency limits (``models.<name>.limits``), held across
every worker.

Before each attempt is sent it takes a permit from the model's ``LimitGate``: one request
(rpm), its estimated tokens (tpm: input characters / 4 plus the request's ``max_tokens``,
corrected with the real usage afterwards) and a concurrency slot (given back when the attempt
ends, however it ends). A call over the limit waits, inside its attempt's timeout; it is never
sent only to get a 429. A 429 lowers the model's rate for every worker (``LimitLedger``).

The gate batches its round trips to the shared state (a ``LimitLedger``: the journal on the
embedded engine, a workflow on Temporal): it reserves a block of future permits, each with its
own send time (GCRA, ``bandmaster.policies.LimitState``), and keeps concurrency slots for a
moment after use, so an unsaturated call usually needs no round trip at all. Waiters in one
process are served by priority (``current_terms().priority``, growing with time waited so
nothing starves), then round-robin between tenants.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.engine import current_terms
from bandmaster.errors import RateLimited
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.policies import DEFAULT_RETRY_AFTER, Grant, LimitState, RateLimits

log = logging.getLogger("bandmaster.calls.limits")

BLOCK_SPAN = 0.1
"""At most this many seconds of a model's permits are reserved in one round trip (the batch
that keeps an unsaturated call cheap), and a worker sends only within this many seconds of its
last round trip, so another worker's 429 stops it within about this long."""

LINGER = 0.02
"""A concurrency slot a worker no longer uses goes back to the shared pool after this long
idle (a worker calling in a loop keeps its slot without a round trip per call)."""

POLL = 0.01
"""How often a worker waiting for a slot held by another worker looks again."""

AGING = 1.0
"""Priority points a waiter gains per second waited: a low priority is served eventually."""

RETRY_LEDGER = 0.5
"""Seconds before a worker asks the ledger again after it failed to answer (waiters wait on,
within their attempt's timeout)."""

OUTPUT_GUESS = 256
"""Output tokens charged to a request without ``max_tokens`` until its usage is known."""


class LimitLedger(Protocol):
    """The shared state of every model's limits: ``bandmaster.store.LimitStore`` for workers on
    one journal, a limiter workflow for Temporal workers, ``LocalLimitLedger`` for one process."""

    async def take(
        self, model: str, limits: RateLimits, *, requests: int, tokens: int, slots: int, correction: int
    ) -> Grant:
        """Reserve ``requests`` request permits and ``tokens`` tokens (evenly spaced after every
        earlier reservation), lease up to ``slots`` concurrency slots, and add ``correction``
        tokens used beyond earlier estimates."""
        ...

    def give_back(self, model: str, slots: int) -> None:
        """Return concurrency slots (may be written later, batched)."""
        ...

    def rate_limited(self, model: str, retry_after: float | None) -> None:
        """The provider answered 429: slow the model down for every worker."""
        ...


class LocalLimitLedger:
    """Limits held in this process only (a registry without a journal)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.states: dict[str, LimitState] = {}
        self.used: dict[str, int] = {}

    async def take(
        self, model: str, limits: RateLimits, *, requests: int, tokens: int, slots: int, correction: int
    ) -> Grant:
        now = self.clock()
        state = self.states.setdefault(model, LimitState())
        grant = state.reserve(limits, now, requests, tokens, correction)
        used = self.used.get(model, 0)
        granted = min(slots, max(0, grant.cap - used))
        self.used[model] = used + granted
        return replace(grant, slots=granted)

    def give_back(self, model: str, slots: int) -> None:
        self.used[model] = max(0, self.used.get(model, 0) - slots)

    def rate_limited(self, model: str, retry_after: float | None) -> None:
        self.states.setdefault(model, LimitState()).slow_down(self.clock(), retry_after)


@dataclass(eq=False, slots=True)
class _Waiter:
    priority: int
    tenant: str | None
    tokens: int
    since: float
    future: asyncio.Future[None]


class LimitGate:
    """One model's limits in this process: the permits it holds from the ledger, and its
    waiters, served in priority order."""

    def __init__(
        self,
        model: str,
        limits: RateLimits,
        ledger: LimitLedger,
        *,
        clock: Callable[[], float] = time.time,
        aging: float = AGING,
    ) -> None:
        self.model, self.limits, self.ledger, self.clock, self.aging = model, limits, ledger, clock, aging
        self.spec: object = None  # what the limits were read from (the hub's cache key)
        self.poll: float = getattr(ledger, "poll", POLL)  # a ledger a round trip away polls less often
        self.rated = limits.rpm is not None
        self.counts_tokens = limits.tpm is not None
        self.bounded = limits.concurrency is not None
        self._next = 0.0  # send time of the next request permit of the block
        self._left = 0  # request permits left in the block
        self._interval = 0.0
        self._block = 1  # permits to reserve next (doubles while blocks run out)
        self._tok_next = 0.0  # token clock: when the next token may be spent
        self._tok_end = 0.0  # end of the reserved tokens
        self._tok_interval = 0.0
        self._not_before = 0.0
        self._checked_at = float("-inf")  # when the ledger last answered
        self._held = 0  # concurrency slots leased from the ledger
        self._busy = 0  # of which in use
        self._used_since_linger = False
        self._linger: asyncio.TimerHandle | None = None
        self._correction = 0
        self._waiters: list[_Waiter] = []
        self._served: dict[str | None, int] = {}
        self._driver: asyncio.Task[None] | None = None
        self._poke: asyncio.Future[None] | None = None

    # --- the call's side ------------------------------------------------------------------

    def estimate(self, req: ModelRequest) -> int:
        """Tokens to charge before the answer: input characters / 4 plus the output allowed."""
        chars = len(req.text()) + (len(req.system) if req.system else 0)
        return chars // 4 + 1 + (req.max_tokens if req.max_tokens is not None else OUTPUT_GUESS)

    async def acquire(self, tokens: int) -> None:
        """Wait for a permit (``tokens`` estimated). Cancellation (a timeout) leaves cleanly."""
        now = self.clock()
        if not self._waiters and self._ready(tokens, now):
            self._take(tokens, now)
            return
        terms = current_terms()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(terms.priority, terms.tenant, tokens, now, future)
        self._waiters.append(waiter)
        if self._driver is None:
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        else:
            self._wake()
        try:
            await waiter.future
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(tokens, None)  # granted as we were cancelled: the permit goes back
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self, tokens: int, used: int | None) -> None:
        """The attempt ended; ``used``: its real token usage (None: unknown, the estimate stays)."""
        if self.bounded:
            self._busy -= 1
        if used is not None and self.counts_tokens:
            self._correction += used - tokens
        if self._waiters:
            self._wake()
        elif self.bounded and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(LINGER, self._give_back_idle)

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: nobody here sends before Retry-After, the reserved permits are dropped (their
        spacing was too tight), and every worker slows down."""
        wait = DEFAULT_RETRY_AFTER if retry_after is None else max(0.0, retry_after)
        self._not_before = max(self._not_before, self.clock() + wait)
        self._left = 0
        self._tok_end = self._tok_next
        self._block = 1
        self.ledger.rate_limited(self.model, retry_after)

    # --- permits --------------------------------------------------------------------------

    def _ready(self, tokens: int, now: float) -> bool:
        if now < self._not_before or now - self._checked_at > BLOCK_SPAN:
            return False  # held back, or not heard from the ledger lately (a 429 elsewhere?)
        if self.bounded and self._busy >= self._held:
            return False
        if self.rated:
            self._drop_stale(now)
            if self._left <= 0 or self._next > now:
                return False
        return not (self.counts_tokens and (self._tok_next > now or not self._fits(tokens)))

    def _drop_stale(self, now: float) -> None:
        """Permits whose time passed by a whole interval unused are dropped: sent late, they
        would bunch with other workers' on-time permits (a burst the provider sees)."""
        lag = now - self._next
        if self._left > 0 and lag >= self._interval > 0:
            skip = min(int(lag / self._interval), self._left)
            self._next += skip * self._interval
            self._left -= skip

    def _fits(self, tokens: int) -> bool:
        return self._tok_next + tokens * self._tok_interval <= self._tok_end + 1e-9

    def _take(self, tokens: int, now: float) -> None:
        if self.bounded:
            self._busy += 1
            self._used_since_linger = True
        if self.rated:  # the permit due now (``_ready`` dropped the stale ones)
            self._next += self._interval
            self._left -= 1
        if self.counts_tokens:
            self._tok_next += tokens * self._tok_interval

    def _exhausted(self, tokens: int, now: float) -> bool:
        # The caller's ``now``, not a fresh reading: with permits closer than one pass of the
        # driver (a high rpm), dropping by a later clock put the next permit just past ``now``
        # every pass, and the driver paused once per permit through a whole block.
        if self.rated:
            self._drop_stale(now)
        return (self.rated and self._left <= 0) or (self.counts_tokens and not self._fits(tokens))

    def _block_size(self, tokens: int) -> int:
        """Permits to reserve: double the last block (it ran out), at least one per waiter,
        and at most ``BLOCK_SPAN`` seconds of the model's rate."""
        cap = math.inf
        if self.limits.rpm is not None:
            cap = min(cap, BLOCK_SPAN * self.limits.rpm / 60.0)
        if self.limits.tpm is not None:
            cap = min(cap, BLOCK_SPAN * self.limits.tpm / 60.0 / max(1, tokens))
        size = max(self._block, len(self._waiters))
        return max(1, min(size, int(cap))) if cap != math.inf else max(1, size)

    async def _refill(self, tokens: int, now: float) -> bool:
        """One round trip to the ledger for what the best waiter lacks (or just for news: a
        later Retry-After); False: no slot free."""
        idle = self._held - self._busy
        need_slots = self.bounded and idle <= 0
        # Permits only with a slot in hand: a permit that waits for a slot goes stale, lost to
        # every worker.
        need_rate = (self.rated or self.counts_tokens) and not need_slots and self._exhausted(tokens, now)
        size = self._block_size(tokens) if need_rate else 0
        wanted = 0
        if need_slots:
            assert self.limits.concurrency is not None
            wanted = max(1, min(len(self._waiters), self.limits.concurrency) - max(0, idle))
        correction, self._correction = self._correction, 0
        if need_rate and self.counts_tokens and self._tok_interval > 0:
            # Tokens reserved for permits that went unused go back: else the token clock runs
            # ahead of time by a block per refill.
            unused = self._tok_end - max(self._tok_next, now)
            correction -= max(0, int(unused / self._tok_interval))
        grant = await self.ledger.take(
            self.model,
            self.limits,
            requests=size if need_rate and self.rated else 0,
            tokens=max(size * tokens, tokens) if need_rate and self.counts_tokens else 0,
            slots=wanted,
            correction=correction,
        )
        self._not_before = max(self._not_before, grant.not_before)
        self._checked_at = self.clock()
        if need_rate:
            self._block = min(2 * size, 1 << 20)
            if self.rated:
                self._next, self._left, self._interval = grant.start, grant.count, grant.interval
            if self.counts_tokens:
                reserved = max(size * tokens, tokens)
                self._tok_next, self._tok_interval = grant.tok_start, grant.tok_interval
                self._tok_end = grant.tok_start + reserved * grant.tok_interval
        self._held += grant.slots
        return not need_slots or grant.slots > 0

    def _best(self, now: float) -> _Waiter:
        aging, served = self.aging, self._served

        def rank(w: _Waiter) -> tuple[int, int, float]:  # effective priority, tenant's turn, age
            return (w.priority + math.floor(aging * (now - w.since)), -served.get(w.tenant, 0), -w.since)

        return max(self._waiters, key=rank)

    async def _drive(self) -> None:
        """Serve the waiters one by one, best first, fetching permits as they run out."""
        try:
            while self._waiters:
                now = self.clock()
                best = self._best(now)
                if (
                    (self.bounded and self._busy >= self._held)
                    or self._exhausted(best.tokens, now)
                    or now - self._checked_at > BLOCK_SPAN  # about to send: any news (a 429)?
                ):
                    try:
                        got = await self._refill(best.tokens, now)
                    except Exception as exc:  # the ledger is slow or away: the waiters wait on
                        log.warning("limits of %s: shared state unreachable (retrying): %s", self.model, exc)
                        await self._pause(RETRY_LEDGER)
                        continue
                    if not got:
                        await self._pause(self.poll)
                    continue
                start = max(self._not_before, self._next if self.rated else 0.0)
                if self.counts_tokens:
                    start = max(start, self._tok_next)
                if start > now:
                    await self._pause(start - now)
                    continue
                self._waiters.remove(best)
                self._take(best.tokens, now)
                self._served[best.tenant] = self._served.get(best.tenant, 0) + 1
                best.future.set_result(None)
        except BaseException:  # the loop is closing: the waiters end too
            for waiter in self._waiters:
                waiter.future.cancel()
            self._waiters.clear()
            raise
        finally:
            self._driver = None

    async def _pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        poke = self._poke = loop.create_future()
        timer = loop.call_later(seconds, _settle, poke)
        try:
            await poke
        finally:
            timer.cancel()
            self._poke = None

    def _wake(self) -> None:
        if self._poke is not None:
            _settle(self._poke)

    def _give_back_idle(self) -> None:
        self._linger = None
        if self._used_since_linger:  # still in use: look again later
            self._used_since_linger = False
            self._linger = asyncio.get_running_loop().call_later(LINGER, self._give_back_idle)
            return
        idle = self._held - self._busy
        if idle > 0 and not self._waiters:
            self._held -= idle
            self.ledger.give_back(self.model, idle)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Limited(Wrapper):
    """Asks ``inner`` once ``gate`` gives a permit; gives it back when the attempt ends and
    reports a 429 to the gate. Put it inside ``Retrying``: each attempt takes a permit, and
    the attempt's timeout bounds the wait."""

    __slots__ = ("gate",)

    def __init__(self, inner: Model, gate: LimitGate, *, name: str | None = None) -> None:
        super().__init__(inner, name=name)
        self.gate = gate

    async def request(self, req: ModelRequest) -> ModelResponse:
        gate = self.gate
        tokens = gate.estimate(req) if gate.counts_tokens else 0
        await gate.acquire(tokens)
        try:
            response = await self.inner.request(req)
        except RateLimited as exc:
            gate.release(tokens, None)
            gate.rate_limited(exc.retry_after)
            raise
        except BaseException:
            gate.release(tokens, None)
            raise
        gate.release(tokens, response.usage.total_tokens)
        return response
