"""``bm.schedule`` on Temporal: each bandmaster schedule is a Temporal Schedule whose id is the
schedule's name, so Temporal itself starts one workflow per tick (workflow id
``{name}-{tick, RFC 3339}``), keeps the pause state and catches up after an outage.

Mapping: cron → ``ScheduleSpec.cron_expressions`` (a six-field croniter expression, seconds
last, becomes Temporal's seven-field form, seconds first and any year); catch-up ``skip`` →
``catchup_window`` = the schedule's grace (at least Temporal's 10 s minimum), ``all`` → a year
of catch-up; both allow overlapping runs, as the embedded engine does. ``latest`` → a year of
catch-up with ``ScheduleOverlapPolicy.BUFFER_ONE``: Temporal has no "newest missed tick only";
it starts the first missed tick and buffers at most one more while that runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from bandmaster.engine import Schedule as BmSchedule
from bandmaster.engine import ScheduleInfo, Workflow, next_tick
from bandmaster.errors import ScheduleNotFound
from bandmaster.temporal._limits import MAX_PAYLOAD


class ScheduleHost(Protocol):
    """What schedules need of their engine (a ``TemporalEngine``)."""

    @property
    def client(self) -> Client: ...

    @property
    def namespace(self) -> str: ...

    @property
    def task_queue(self) -> str: ...

    @property
    def workflows(self) -> Mapping[str, Workflow[..., Any]]: ...


MEMO = "bandmaster.schedule"  # the bandmaster definition, kept on the Temporal Schedule
MIN_CATCHUP = 10.0  # Temporal refuses a shorter catch-up window
LONG_CATCHUP = timedelta(days=365)


def temporal_cron(cron: str) -> str:
    fields = cron.split()
    if len(fields) == 6:  # croniter: seconds last; Temporal: seconds first, then a year field
        return " ".join([fields[5], *fields[:5], "*"])
    return cron


def temporal_schedule(engine: ScheduleHost, s: BmSchedule) -> Schedule:
    wf = engine.workflows[s.workflow]
    args, kwargs = wf.input_from_json(s.input)
    payload = json.loads(wf.encode_input(args, kwargs, limit=MAX_PAYLOAD))
    if s.catchup == "skip":
        policy = SchedulePolicy(
            overlap=ScheduleOverlapPolicy.ALLOW_ALL,
            catchup_window=timedelta(seconds=max(s.grace, MIN_CATCHUP)),
        )
    elif s.catchup == "all":
        policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=LONG_CATCHUP)
    else:
        policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE, catchup_window=LONG_CATCHUP)
    return Schedule(
        action=ScheduleActionStartWorkflow(wf.name, payload, id=s.name, task_queue=engine.task_queue),
        spec=ScheduleSpec(cron_expressions=[temporal_cron(s.cron)]),
        policy=policy,
    )


def _definition(s: BmSchedule) -> dict[str, Any]:
    return {"workflow": s.workflow, "cron": s.cron, "catchup": s.catchup}


async def declare(engine: ScheduleHost, schedules: list[BmSchedule]) -> None:
    """Create each schedule, or bring an existing one up to date (workers race here: the
    first creates, the others update to the same definition; the pause state is kept)."""
    client = engine.client
    for s in schedules:
        wanted = temporal_schedule(engine, s)
        try:
            await client.create_schedule(s.name, wanted, memo={MEMO: _definition(s)})
        except ScheduleAlreadyRunningError:

            def keep_state(current: ScheduleUpdateInput, wanted: Schedule = wanted) -> ScheduleUpdate:
                wanted.state = current.description.schedule.state
                return ScheduleUpdate(schedule=wanted)

            await client.get_schedule_handle(s.name).update(keep_state)


class TemporalSchedules:
    """List, pause and resume the bandmaster schedules of a Temporal namespace."""

    def __init__(self, engine: ScheduleHost) -> None:
        self.engine = engine

    async def list(self) -> list[ScheduleInfo]:
        found = []
        async for listed in await self.engine.client.list_schedules():
            if (await listed.memo_value(MEMO, None)) is not None:
                found.append(await self.get(listed.id))
        return sorted(found, key=lambda info: info.name)

    async def get(self, name: str) -> ScheduleInfo:
        try:
            described = await self.engine.client.get_schedule_handle(name).describe()
            definition: dict[str, Any] | None = await described.memo_value(MEMO, None)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            definition = None
        if definition is None:
            raise ScheduleNotFound(
                f"no bandmaster schedule {name[:80]!r} on Temporal (namespace {self.engine.namespace}); it "
                "appears once a worker with its @bm.schedule workflow has started"
            )
        state = described.schedule.state
        recent = [a.scheduled_at for a in described.info.recent_actions]
        upcoming = described.info.next_action_times
        return ScheduleInfo(
            name=name,
            workflow=definition["workflow"],
            cron=definition["cron"],
            catchup=definition["catchup"],
            paused=state.paused,
            last_tick=max(recent) if recent else described.info.created_at,
            next_tick=None if state.paused else (upcoming[0] if upcoming else _next(definition["cron"])),
            changed_by=state.note or None,
        )

    async def pause(self, name: str, *, by: str | None = None) -> ScheduleInfo:
        await self.get(name)
        await self.engine.client.get_schedule_handle(name).pause(note=by or "paused")
        return await self.get(name)

    async def resume(self, name: str, *, by: str | None = None) -> ScheduleInfo:
        await self.get(name)
        await self.engine.client.get_schedule_handle(name).unpause(note=by or "resumed")
        return await self.get(name)


def _next(cron: str) -> datetime:
    return datetime.fromtimestamp(next_tick(cron, datetime.now(UTC).timestamp()), UTC)
