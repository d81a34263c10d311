"""Circuit-breaker rows in the journal, counted by every worker on it.

Each change is one short ``BEGIN IMMEDIATE`` transaction: read the row, apply one step of the
breaker state machine (``bandmaster.policies.BreakerState``), write the row back and bump the
revision ``kv.breakers_rev``. SQLite's write lock orders the steps of all workers, so the
N-th failure counted opens the breaker, whichever worker records it, and only one worker
claims a half-open trial. Workers read the revision (one primary-key read) before each call to
know whether their view of the rows is still current.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from bandmaster.policies import BreakerState
from bandmaster.store._sqlite import SQLiteStore

T = TypeVar("T")

_COLUMNS = "key, status, opened_at, changed_at, recent, failures, trial_until"
_SLOTS = ",".join("?" * 7)
_REV = "SELECT value FROM kv WHERE key = 'breakers_rev'"


def _state(row: tuple[object, ...] | None) -> BreakerState:
    if row is None:
        return BreakerState()
    _, status, opened_at, changed_at, recent, failures, trial_until = row
    return BreakerState(
        status=status,  # type: ignore[arg-type]
        recent_failures=json.loads(str(recent)),
        opened_at=opened_at,  # type: ignore[arg-type]
        changed_at=float(changed_at),  # type: ignore[arg-type]
        failures=int(failures),  # type: ignore[call-overload]
        trial_until=trial_until,  # type: ignore[arg-type]
    )


def _values(state: BreakerState) -> tuple[object, ...]:
    return (
        state.status,
        state.opened_at,
        state.changed_at,
        json.dumps(state.recent_failures),
        state.failures,
        state.trial_until,
    )


class BreakerStore:
    """The breaker rows of one journal, by model name."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def revision(self) -> int:
        """Changes made to any breaker so far (0: none): a view read at this revision is current."""
        row = self.store._conn.execute(_REV).fetchone()
        return int(row[0]) if row else 0

    def states(self) -> dict[str, BreakerState]:
        rows = self.store._conn.execute(f"SELECT {_COLUMNS} FROM breakers").fetchall()
        return {str(row[0]): _state(row) for row in rows}

    def change(self, key: str, step: Callable[[BreakerState], T]) -> tuple[T, BreakerState]:
        """Apply ``step`` to the stored state of ``key`` in one transaction; the answer of the
        step and the state after it. Writes (and bumps the revision) only when it changed."""

        def op(conn: sqlite3.Connection) -> tuple[T, BreakerState]:
            row = conn.execute(f"SELECT {_COLUMNS} FROM breakers WHERE key = ?", (key,)).fetchone()
            state = _state(row)
            before = _values(state)
            answer = step(state)
            after = _values(state)
            if after != before:
                conn.execute(
                    f"INSERT OR REPLACE INTO breakers ({_COLUMNS}) VALUES (?,?,?,?,?,?,?)", (key, *after)
                )
                conn.execute(
                    "INSERT INTO kv (key, value) VALUES ('breakers_rev', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
            return answer, state

        return self.store._write(op)
