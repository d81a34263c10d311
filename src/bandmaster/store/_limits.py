"""Models' rate and concurrency limits in the journal, shared by every worker on it.

One row per model holds its GCRA clocks, AIMD factor and Retry-After (``limit_rates``; the
arithmetic is ``bandmaster.policies.LimitState``); concurrency slots are leased per worker
process with an expiry renewed while held (``limit_slots``), so a SIGKILLed worker's slots
come back after ``lease`` seconds.

Cost: a write transaction is ~100 µs here (one WAL frame). So the reads and writes join the
journal's group commit (``SQLiteStore._enqueue``: one ``BEGIN IMMEDIATE … COMMIT`` for every
write of an event-loop turn), and the limiter reserves blocks of future permits per round
trip (``bandmaster.calls.wrappers.LimitGate``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from bandmaster.policies import Grant, LimitState, RateLimits
from bandmaster.store._sqlite import SQLiteStore

DEFAULT_LEASE = 10.0
"""Seconds a worker's concurrency slots outlive its last renewal (a run's lease is as long)."""


class LimitStore:
    """The limits ledger of one journal (``bandmaster.calls.wrappers.LimitLedger``). Time is
    the wall clock, shared by every process (not the engine's clock, which a test may fake)."""

    def __init__(
        self, store: SQLiteStore, *, lease: float = DEFAULT_LEASE, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.lease = lease
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: dict[str, int] = {}  # slots this process holds, by model
        self._renewal: asyncio.TimerHandle | None = None

    async def take(
        self, model: str, limits: RateLimits, *, requests: int, tokens: int, slots: int, correction: int
    ) -> Grant:
        def op(conn: sqlite3.Connection) -> Grant:
            now = self.clock()
            state = _state(conn, model)
            grant = state.reserve(limits, now, requests, tokens, correction)
            if requests or tokens or correction:
                conn.execute(
                    "INSERT INTO limit_rates (model, tat, tok_tat, factor, factor_at, not_before) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(model) DO UPDATE SET tat = excluded.tat, "
                    "tok_tat = excluded.tok_tat",
                    (model, state.tat, state.tok_tat, state.factor, state.factor_at, state.not_before),
                )
            if not slots:
                return grant
            conn.execute("DELETE FROM limit_slots WHERE model = ? AND expires < ?", (model, now))
            (used,) = conn.execute(
                "SELECT COALESCE(SUM(slots), 0) FROM limit_slots WHERE model = ?", (model,)
            ).fetchone()
            granted = min(slots, max(0, grant.cap - used))
            if granted:
                conn.execute(
                    "INSERT INTO limit_slots (model, owner, slots, expires) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(model, owner) DO UPDATE SET slots = slots + excluded.slots, "
                    "expires = excluded.expires",
                    (model, self.owner, granted, now + self.lease),
                )
            return replace(grant, slots=granted)

        grant: Grant = await self.store._enqueue(op)
        if grant.slots:
            self.held[model] = self.held.get(model, 0) + grant.slots
            self._keep_renewing()
        return grant

    def give_back(self, model: str, slots: int) -> None:
        self.held[model] = max(0, self.held.get(model, 0) - slots)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE limit_slots SET slots = MAX(0, slots - ?) WHERE model = ? AND owner = ?",
                (slots, model, self.owner),
            )
            conn.execute(
                "DELETE FROM limit_slots WHERE model = ? AND owner = ? AND slots = 0", (model, self.owner)
            )

        self.store._enqueue(op, wait=False)

    def rate_limited(self, model: str, retry_after: float | None) -> None:
        def op(conn: sqlite3.Connection) -> None:
            now = self.clock()
            state = _state(conn, model)
            state.slow_down(now, retry_after)
            conn.execute(
                "INSERT OR REPLACE INTO limit_rates (model, tat, tok_tat, factor, factor_at, not_before) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (model, state.tat, state.tok_tat, state.factor, state.factor_at, state.not_before),
            )

        self.store._enqueue(op, wait=False)

    def slots_in_use(self, model: str) -> int:
        """Concurrency slots of ``model`` leased by live workers (expired leases not counted)."""
        (used,) = self.store._conn.execute(
            "SELECT COALESCE(SUM(slots), 0) FROM limit_slots WHERE model = ? AND expires >= ?",
            (model, self.clock()),
        ).fetchone()
        return int(used)

    def _keep_renewing(self) -> None:
        if self._renewal is None:
            self._renewal = asyncio.get_running_loop().call_later(self.lease / 3, self._renew)

    def _renew(self) -> None:
        self._renewal = None
        if not any(self.held.values()):
            return
        expires = self.clock() + self.lease
        owner = self.owner
        self.store._enqueue(
            lambda conn: conn.execute("UPDATE limit_slots SET expires = ? WHERE owner = ?", (expires, owner)),
            wait=False,
        )
        self._keep_renewing()


def _state(conn: sqlite3.Connection, model: str) -> LimitState:
    row = conn.execute(
        "SELECT tat, tok_tat, factor, factor_at, not_before FROM limit_rates WHERE model = ?", (model,)
    ).fetchone()
    return LimitState(*row) if row else LimitState()
