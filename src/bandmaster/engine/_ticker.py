"""The loop in every worker that starts the runs of due schedule ticks.

Workers race on purpose: each one that sees a tick due starts its run with the tick's run id,
and the journal keeps the first (``Engine.start`` is idempotent on a run id). The tick is
marked started only after its run is in the journal, so a worker that dies in between leaves
the tick to the next pass, which starts it once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bandmaster.engine._schedule import Schedule, next_tick, tick_run_id, ticks_between, ticks_to_start
from bandmaster.errors import BandmasterError, StoreError
from bandmaster.store import ScheduleStore

if TYPE_CHECKING:
    from bandmaster.engine._runtime import Engine

log = logging.getLogger("bandmaster.schedules")
MAX_NAP = 1.0  # pause/resume from another process is seen within this


class Ticker:
    def __init__(
        self, engine: Engine, schedules: Sequence[Schedule], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.schedules = {s.name: s for s in schedules}
        self.clock = clock
        self.rows = ScheduleStore(engine.store)
        self.next_tick: float | None = None  # the earliest tick seen by the last pass

    def declare(self) -> None:
        for s in self.schedules.values():
            self.rows.declare(s.name, s.workflow, s.cron, s.catchup, s.input_json)

    async def run(self) -> None:
        self.declare()
        clock = self.engine.clock
        never = asyncio.Event()  # a timed pause: woken early only by a fake clock moving
        while True:
            try:
                nap = await self.tick_once()
            except (StoreError, OSError) as exc:
                log.warning("schedules: %s", exc)
                nap = MAX_NAP
            except Exception:  # a bug must not silently end every schedule of this worker
                log.exception("schedules: a pass failed; trying again")
                nap = MAX_NAP
            if self.next_tick is not None:
                clock.due_at(self.next_tick)  # a fake clock stops there
            await clock.poll(never, nap)

    async def tick_once(self) -> float:
        """Start every due tick; return how long to sleep before the next one may be due."""
        now = self.clock()
        nap = MAX_NAP
        self.next_tick = None
        for s in self.schedules.values():
            row = self.rows.get(s.name)
            if row is None:  # deleted from the journal by hand: declare it again
                self.declare()
                continue
            if row.paused:
                continue
            due = ticks_between(row.cron, row.last_tick, now)
            for tick in ticks_to_start(row.catchup, due, now, s.grace):
                await self._start(s, tick)
            if due:
                self.rows.advance(s.name, due[-1])
                if len(due) > 1 and row.catchup == "all":
                    nap = 0.0  # a batch of a long catch-up: take the next one at once
                    continue
            upcoming = next_tick(row.cron, max(now, row.last_tick))
            self.next_tick = min(upcoming, self.next_tick or upcoming)
            nap = min(nap, max(upcoming - now, 0.0))
        return nap

    async def _start(self, s: Schedule, tick: float) -> None:
        run_id = tick_run_id(s.name, tick)
        wf = self.engine.workflows[s.workflow]
        args, kwargs = wf.input_from_json(s.input)
        try:
            await self.engine.start(wf, *args, run_id=run_id, **kwargs)
        except BandmasterError as exc:  # its input no longer fits the workflow: say so, tick on
            log.error("schedule %s: could not start run %s: %s", s.name, run_id, exc)
