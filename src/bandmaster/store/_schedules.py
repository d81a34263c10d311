"""Schedule rows in the journal: what every worker ticks, whether it is paused, and the last
tick started, so that a restarted worker knows what it missed.

Pure storage: cron arithmetic and catch-up live in ``bandmaster.triggers``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from bandmaster.store._sqlite import SQLiteStore

_COLUMNS = "name, workflow, cron, catchup, input, paused, last_tick, updated_at, changed_by"


@dataclass(slots=True)
class ScheduleRow:
    name: str
    workflow: str
    cron: str
    catchup: str
    input: str | None  # JSON
    paused: bool
    last_tick: float  # the newest tick started (or the time the schedule was first seen)
    updated_at: float
    changed_by: str | None


def _row(values: tuple[Any, ...]) -> ScheduleRow:
    row = ScheduleRow(*values)
    row.paused = bool(row.paused)
    return row


class ScheduleStore:
    """The schedules of one journal."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def declare(self, name: str, workflow: str, cron: str, catchup: str, input_json: str | None) -> None:
        """Record a schedule as a worker defines it. A new one starts at now (no backfill from
        the epoch); an existing one keeps its pause state and last tick."""
        now = self.store.now()
        self.store._write(
            lambda conn: conn.execute(
                f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 0, ?, ?, NULL) "
                "ON CONFLICT(name) DO UPDATE SET workflow = excluded.workflow, cron = excluded.cron, "
                "catchup = excluded.catchup, input = excluded.input "
                "WHERE workflow != excluded.workflow OR cron != excluded.cron "
                "OR catchup != excluded.catchup OR input IS NOT excluded.input",
                (name, workflow, cron, catchup, input_json, now, now),
            )
        )

    def get(self, name: str) -> ScheduleRow | None:
        found = self.store._conn.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE name = ?", (name,)
        ).fetchone()
        return _row(found) if found else None

    def list(self) -> list[ScheduleRow]:
        rows = self.store._conn.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY name").fetchall()
        return [_row(r) for r in rows]

    def advance(self, name: str, tick: float) -> None:
        """The ticks up to ``tick`` are started (never moves backwards: workers race here)."""
        self.store._write(
            lambda conn: conn.execute(
                "UPDATE schedules SET last_tick = MAX(last_tick, ?) WHERE name = ?", (tick, name)
            )
        )

    def set_paused(self, name: str, paused: bool, by: str | None) -> ScheduleRow | None:
        """Pause or resume; ``None`` when there is no such schedule. Resuming starts from now:
        the ticks that fell while paused are not caught up."""

        def op(conn: sqlite3.Connection) -> None:
            now = self.store.now()
            if paused:
                conn.execute(
                    "UPDATE schedules SET paused = 1, updated_at = ?, changed_by = ? WHERE name = ?",
                    (now, by, name),
                )
            else:
                conn.execute(
                    "UPDATE schedules SET paused = 0, last_tick = MAX(last_tick, ?), updated_at = ?, "
                    "changed_by = ? WHERE name = ? AND paused = 1",
                    (now, now, by, name),
                )

        self.store._write(op)
        return self.get(name)
