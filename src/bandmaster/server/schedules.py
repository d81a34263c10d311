"""``/api/v1/schedules``: list the journal's schedules, pause and resume them (audited)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bandmaster.server import backend
from bandmaster.server.api import Reader, Writer
from bandmaster.server.bodies import StrictJsonRoute
from bandmaster.server.deps import ServerState, state_of
from bandmaster.server.errors import AUTHENTICATED, documented
from bandmaster.store.tokens import TokenStore
from bandmaster.triggers.desk import ScheduleInfo, Schedules

router = APIRouter(
    prefix="/api/v1/schedules",
    route_class=StrictJsonRoute,
    responses=documented(*AUTHENTICATED, 501),
    tags=["schedules"],
)
SCHEDULES_INSTEAD = (
    "schedules live in Temporal there (Temporal Schedules); use `temporal schedule list|toggle` or "
    "the Temporal UI"
)


def _desk(state: ServerState) -> Schedules:
    if state.temporal is not None:
        raise backend.not_on_temporal("/api/v1/schedules", SCHEDULES_INSTEAD)
    return Schedules(state.store)


@router.get("", response_model=list[ScheduleInfo])
async def list_schedules(request: Request, principal: Reader) -> list[ScheduleInfo]:
    """Schedules declared by the workers, by name, with their next tick (UTC)."""
    return _desk(state_of(request)).list()


@router.get("/{name}", response_model=ScheduleInfo, responses=documented(404))
async def get_schedule(name: str, request: Request, principal: Reader) -> ScheduleInfo:
    return _desk(state_of(request)).get(name)


@router.post("/{name}/pause", response_model=ScheduleInfo, responses=documented(404))
async def pause_schedule(name: str, request: Request, principal: Writer) -> ScheduleInfo:
    """Stop starting runs of the schedule on every worker (within a second)."""
    state = state_of(request)
    info = _desk(state).pause(name, by=principal.name)
    TokenStore(state.store).audit(principal.name, "schedule.pause", name, None)
    return info


@router.post("/{name}/resume", response_model=ScheduleInfo, responses=documented(404))
async def resume_schedule(name: str, request: Request, principal: Writer) -> ScheduleInfo:
    """Start runs again from the next tick; ticks missed while paused are not started."""
    state = state_of(request)
    info = _desk(state).resume(name, by=principal.name)
    TokenStore(state.store).audit(principal.name, "schedule.resume", name, None)
    return info
