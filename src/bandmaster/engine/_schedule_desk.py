"""Schedules as the CLI, the API and the dashboard show and steer them: list, pause, resume.

Pausing is a journal write that every worker reads on its next pass (within a second).
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, Field

from bandmaster.engine._schedule import next_tick
from bandmaster.errors import ScheduleNotFound
from bandmaster.store import ScheduleRow, ScheduleStore, SQLiteStore


class ScheduleInfo(BaseModel):
    name: str
    workflow: str
    cron: str = Field(description="Cron expression, in UTC (a sixth field is seconds)")
    catchup: str = Field(description="skip, all or latest: what happens to ticks missed while down")
    paused: bool
    last_tick: datetime = Field(description="The newest tick started (or when the schedule appeared)")
    next_tick: datetime | None = Field(description="When the next run starts; null while paused")
    changed_by: str | None = Field(description="Who paused or resumed it last")


def _info(row: ScheduleRow, now: float) -> ScheduleInfo:
    upcoming = None if row.paused else next_tick(row.cron, max(now, row.last_tick))
    return ScheduleInfo(
        name=row.name,
        workflow=row.workflow,
        cron=row.cron,
        catchup=row.catchup,
        paused=row.paused,
        last_tick=datetime.fromtimestamp(row.last_tick, UTC),
        next_tick=datetime.fromtimestamp(upcoming, UTC) if upcoming is not None else None,
        changed_by=row.changed_by,
    )


class ScheduleDesk(Protocol):
    """List, pause, resume: the embedded journal's ``Schedules`` and Temporal's
    (``bandmaster.temporal._schedules.TemporalSchedules``)."""

    async def list(self) -> builtins.list[ScheduleInfo]: ...
    async def get(self, name: str) -> ScheduleInfo: ...
    async def pause(self, name: str, *, by: str | None = None) -> ScheduleInfo: ...
    async def resume(self, name: str, *, by: str | None = None) -> ScheduleInfo: ...


class Schedules:
    """The schedules declared in one journal."""

    def __init__(self, store: SQLiteStore) -> None:
        self.rows = ScheduleStore(store)
        self._now = store.now  # the engine's clock: next ticks from a FakeClock's now in tests

    async def list(self) -> builtins.list[ScheduleInfo]:
        now = self._now()
        return [_info(r, now) for r in self.rows.list()]

    async def get(self, name: str) -> ScheduleInfo:
        row = self.rows.get(name)
        if row is None:
            raise self._missing(name)
        return _info(row, self._now())

    async def pause(self, name: str, *, by: str | None = None) -> ScheduleInfo:
        return self._set(name, True, by)

    async def resume(self, name: str, *, by: str | None = None) -> ScheduleInfo:
        """Resume; the ticks that fell while paused are not started."""
        return self._set(name, False, by)

    def _set(self, name: str, paused: bool, by: str | None) -> ScheduleInfo:
        row = self.rows.set_paused(name, paused, by)
        if row is None:
            raise self._missing(name)
        return _info(row, self._now())

    def _missing(self, name: str) -> ScheduleNotFound:
        known = ", ".join(r.name for r in self.rows.list()) or "none"
        shown = repr(name) if len(name) <= 80 else repr(name[:80]) + "..."
        return ScheduleNotFound(
            f"no schedule {shown} in this journal (known: {known}); a schedule appears once a worker "
            "with its @bm.schedule workflow has started"
        )
