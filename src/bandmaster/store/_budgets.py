"""Money spent on model calls, per budget scope, in the journal: one row per scope and day.

A call first *holds* its estimated cost (``reserve``: check-and-add in one immediate
transaction, so two workers cannot both take the last dollars), then *settles* to what it
actually cost once it answered (``settle``), or gives the hold back when nothing was billed.
A worker that dies between the two leaves its hold counted: the provider may have billed the
call, so the budget never forgets money that may be gone.

Scopes are ``run:<run id>`` (``day`` is ``""``: a run's budget is for its whole life) and
``tenant:<name>`` (``day`` is the UTC calendar date, ``2026-12-06``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the schema imports this module's migration, and the store the schema
    from bandmaster.store._sqlite import SQLiteStore

MIGRATION: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS budget_spend (
        scope      TEXT NOT NULL,            -- run:<id> or tenant:<name>
        day        TEXT NOT NULL,            -- UTC date for a tenant; '' for a run
        spent      REAL NOT NULL DEFAULT 0,  -- USD settled: what answered calls cost
        held       REAL NOT NULL DEFAULT 0,  -- USD held by calls in flight (or whose worker died)
        calls      INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (scope, day)
    ) WITHOUT ROWID
    """,
    # Model calls of unknown price, for stats to count without reading every step's meta: a
    # substring test of the compact meta JSON, cheap on every model-step write.
    """
    CREATE INDEX IF NOT EXISTS steps_unknown_cost ON steps (run_id)
    WHERE kind = 'model' AND instr(meta, '"cost_known":false') > 0
    """,
]
"""The schema migration that adds spend (number 15 in the migration list)."""


@dataclass(frozen=True, slots=True)
class Spend:
    """A scope's money on one day: settled, and held by calls not settled yet."""

    spent: float = 0.0
    held: float = 0.0

    @property
    def committed(self) -> float:
        return self.spent + self.held


class SpendStore:
    """The spend rows of one SQLite journal (immediate transactions, not batched: a hold must
    be durable before the call it pays for is sent)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def reserve(self, scope: str, day: str, limit: float, amount: float) -> Spend | None:
        """Hold ``amount`` if what is spent and held stays within ``limit``: None when held,
        else the spend that left no room (nothing written)."""
        now = self.store.now()

        def hold(conn: sqlite3.Connection) -> Spend | None:
            row = conn.execute(
                "SELECT spent, held FROM budget_spend WHERE scope = ? AND day = ?", (scope, day)
            ).fetchone()
            spend = Spend(*row) if row else Spend()
            if spend.committed + amount > limit:
                return spend
            conn.execute(
                "INSERT INTO budget_spend (scope, day, held, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(scope, day) DO UPDATE SET held = held + excluded.held, "
                "updated_at = excluded.updated_at",
                (scope, day, amount, now),
            )
            return None

        return self.store._write(hold)

    def settle(self, scope: str, day: str, held: float, cost: float) -> None:
        """Give back ``held`` and count ``cost`` (0 with no call: the hold is released)."""
        now = self.store.now()
        self.store._write(
            lambda conn: conn.execute(
                "INSERT INTO budget_spend (scope, day, spent, held, calls, updated_at) "
                "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT(scope, day) DO UPDATE SET "
                "held = MAX(0, held - ?), spent = spent + excluded.spent, "
                "calls = calls + excluded.calls, updated_at = excluded.updated_at",
                (scope, day, cost, 1 if cost > 0 else 0, now, held),
            )
        )

    def spend(self, scope: str, day: str) -> Spend:
        row = self.store._conn.execute(
            "SELECT spent, held FROM budget_spend WHERE scope = ? AND day = ?", (scope, day)
        ).fetchone()
        return Spend(*row) if row else Spend()
