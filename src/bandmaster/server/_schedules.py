"""``/api/v1/schedules``: list the journal's schedules, pause and resume them (audited)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bandmaster.engine import ScheduleDesk, ScheduleInfo
from bandmaster.server._api import Reader, Writer
from bandmaster.server._bodies import StrictJsonRoute
from bandmaster.server._deps import ServerState, state_of
from bandmaster.server._errors import AUTHENTICATED, documented
from bandmaster.store import TokenStore

router = APIRouter(
    prefix="/api/v1/schedules",
    route_class=StrictJsonRoute,
    responses=documented(*AUTHENTICATED),
    tags=["schedules"],
)


def desk_of(state: ServerState) -> ScheduleDesk:
    """The schedules of the server's backend."""
    return state.backend.schedules


@router.get("", operation_id="listSchedules", response_model=list[ScheduleInfo])
async def list_schedules(request: Request, principal: Reader) -> list[ScheduleInfo]:
    """Schedules declared by the workers, by name, with their next tick (UTC)."""
    return await desk_of(state_of(request)).list()


@router.get("/{name}", operation_id="getSchedule", response_model=ScheduleInfo, responses=documented(404))
async def get_schedule(name: str, request: Request, principal: Reader) -> ScheduleInfo:
    return await desk_of(state_of(request)).get(name)


@router.post(
    "/{name}/pause", operation_id="pauseSchedule", response_model=ScheduleInfo, responses=documented(404)
)
async def pause_schedule(name: str, request: Request, principal: Writer) -> ScheduleInfo:
    """Stop starting runs of the schedule on every worker (within a second)."""
    state = state_of(request)
    info = await desk_of(state).pause(name, by=principal.name)
    TokenStore(state.store).audit(principal.name, "schedule.pause", name, None)
    return info


@router.post(
    "/{name}/resume", operation_id="resumeSchedule", response_model=ScheduleInfo, responses=documented(404)
)
async def resume_schedule(name: str, request: Request, principal: Writer) -> ScheduleInfo:
    """Start runs again from the next tick; ticks missed while paused are not started."""
    state = state_of(request)
    info = await desk_of(state).resume(name, by=principal.name)
    TokenStore(state.store).audit(principal.name, "schedule.resume", name, None)
    return info
